"""The CIFAR-10 python tarball (cifar-10-python.tar.gz) into the dataset Zarr (N×3×32×32).

The batches are pickles; they are read with an unpickler that only admits the few numpy
constructors a CIFAR batch needs, so a tampered archive cannot run code. Labels go to array ``y``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import PurePosixPath

import numpy as np

from wsgm.data import archive, split
from wsgm.data.store import StoreError, save_array, write_uint8_images
from wsgm.provenance import content_hash

SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
SPLITS["all"] = SPLITS["train"] + SPLITS["test"]
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
            ("numpy.core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _batch(name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _Unpickler(io.BytesIO(data), encoding="bytes").load()
        x, y = np.asarray(d[b"data"]), np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{name} is not a CIFAR-10 python batch ({exc}). Fix: check that the source "
                         "is cifar-10-python.tar.gz") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
        raise StoreError(f"{name}: data is {x.dtype} {x.shape} with {len(y)} labels; a CIFAR-10 batch "
                         "holds uint8 N×3072 and N labels. Fix: check the source archive")
    return x.reshape(-1, 3, 32, 32), y


def convert(spec: dict, source, out) -> dict:
    d = spec["dataset"]
    if (d["size"], d["channels"]) != (32, 3):
        raise StoreError(f"dataset {spec['name']!r}: CIFAR-10 images are 3×32×32. Fix: set "
                         f"datasets.{spec['name']}.size: 32 and channels: 3")
    wanted = SPLITS[d["split"]]
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, data in archive.members(source):
        base = PurePosixPath(name).name
        if base in wanted:
            found[base] = _batch(name, data)
    missing = [b for b in wanted if b not in found]
    if missing:
        raise StoreError(f"{source} lacks CIFAR-10 batch(es) {missing}. Fix: use cifar-10-python.tar.gz "
                         "(the python version)")
    x = np.concatenate([found[b][0] for b in wanted])
    y = np.concatenate([found[b][1] for b in wanted])
    if d["limit"]:
        x, y = x[: d["limit"]], y[: d["limit"]]
    chunk = d["chunk"]
    group = write_uint8_images(out, (x[i:i + chunk] for i in range(0, len(x), chunk)), 3, 32, chunk)
    save_array(group, "y", y)
    attrs = {"kind": "cifar10", "size": 32, "channels": 3, "n": int(len(x)), "split": d["split"],
             "source": d.get("url") or str(source), "license": d["license"],
             "source_sha256": content_hash(source)}
    attrs["split"] = split.layout(int(group["x"].shape[0]), d["n_test"], d["n_floor"], spec["name"])
    group.attrs.update(attrs)
    return attrs
