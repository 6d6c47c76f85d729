"""A user's own images from a local ``.npz`` file (array N×C×H×W or N×H×W) into the dataset Zarr.

Only real numbers are converted: integer (uint8 included), bool (as 0/1) and float arrays. Complex,
object, string and other arrays, an empty one (N = 0), a ``.npy`` file and a file that is not a
``.npz`` archive at all are each refused with one message naming the file, the key and the fix;
nothing is ever silently cast (a complex array would lose its imaginary part). Pickles are never
loaded (``allow_pickle`` stays False).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import zarr

from wsgm.data import split
from wsgm.data.store import StoreError, create_array
from wsgm.provenance import content_hash


def convert(spec: dict, source: Path, out: Path) -> dict:
    d = spec["dataset"]
    if not source.is_file():
        raise StoreError(f"dataset {spec['name']!r}: {source} does not exist. Fix: correct "
                         f"datasets.{spec['name']}.path")
    x = _read(spec, source)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise StoreError(f"{source}:{d['key']} has shape {x.shape}; expected N×C×L×L or N×L×L "
                         f"square images. Fix: np.savez(path, {d['key']}=images) with images of such a shape")
    if x.shape[2] != d["size"] or x.shape[1] != d["channels"]:
        raise StoreError(f"{source}:{d['key']} holds {x.shape[1]}-channel {x.shape[2]}² images but the "
                         f"config says channels={d['channels']}, size={d['size']}. Fix: set "
                         f"datasets.{spec['name']}.size and .channels to match the file")
    x = x.astype(np.float32)  # exact for bool and uint8/int8/int16 and float16
    if not np.isfinite(x).all():
        raise StoreError(f"{source}:{d['key']} contains NaN or infinite values. Fix: drop "
                         "or repair those images and save the file again")
    x = (x - d["offset"]) * d["scale"]
    group = zarr.open_group(str(out), mode="w-")
    arr = create_array(group, "x", x.shape, d["chunk"])
    arr[:] = x
    attrs = {"kind": "npz", "size": int(x.shape[2]), "channels": int(x.shape[1]), "n": int(x.shape[0]),
             "source": str(source), "source_sha256": content_hash(source)}
    attrs["split"] = split.layout(int(group["x"].shape[0]), d["n_test"], d["n_floor"], spec["name"])
    group.attrs.update(attrs)
    return attrs


ALLOWED_KINDS = {"b": "bool", "u": "unsigned integer", "i": "integer", "f": "float"}
NPY_MAGIC, ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")


def _read(spec: dict, source: Path) -> np.ndarray:
    """The array ``dataset.key`` of the .npz file ``source``: real numbers with at least one image."""
    key, name = spec["dataset"]["key"], spec["name"]
    with open(source, "rb") as fh:
        head = fh.read(6)
    if head.startswith(NPY_MAGIC):
        raise StoreError(f"{source} is a .npy file, not .npz (one bare array, no key {key!r}). Fix: "
                         f"rewrite it as a .npz: np.savez({str(source)!r}, {key}=np.load({str(source)!r}))")
    if not head.startswith(ZIP_MAGICS):
        raise StoreError(f"{source} is not a .npz archive (it starts with {head!r}, not a zip header). "
                         f"Fix: save the images with np.savez(path, {key}=images) and point "
                         f"datasets.{name}.path at that file")
    try:
        with np.load(source, allow_pickle=False) as npz:
            if key not in npz:
                raise StoreError(f"{source} has no array {key!r} (it has {sorted(npz.files)}). "
                                 f"Fix: set datasets.{name}.key")
            x = npz[key]
    except ValueError as exc:
        if "Object arrays" in str(exc) or "pickle" in str(exc):
            raise StoreError(f"{source}:{key} is an object array (dtype=object), refused: only real "
                             f"integer, bool or float arrays are images. Fix: np.savez(path, "
                             f"{key}=images.astype(np.float32))") from None
        raise StoreError(f"{source} is not a readable .npz archive (truncated or corrupt: {exc}). Fix: "
                         "write it again with np.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        reason = str(exc) or type(exc).__name__
        raise StoreError(f"{source} is not a readable .npz archive (truncated or corrupt: {reason}). "
                         "Fix: write it again with np.savez") from None
    if x.dtype.kind not in ALLOWED_KINDS:
        what = {"c": "complex", "U": "string", "S": "bytes", "O": "object", "V": "structured",
                "M": "datetime", "m": "timedelta"}.get(x.dtype.kind, "non-numeric")
        fix = (f"keep the part you mean, e.g. np.savez(path, {key}=images.real) or {key}=np.abs(images)"
               if x.dtype.kind == "c" else f"np.savez(path, {key}=images.astype(np.float32)) with numbers")
        raise StoreError(f"{source}:{key} is a {what} array (dtype {x.dtype}, shape {x.shape}), refused: "
                         f"only real integer, bool or float arrays are images. Fix: {fix}")
    if x.size == 0:
        raise StoreError(f"{source}:{key} is empty (shape {x.shape}): no images. Fix: save at least one "
                         f"image, np.savez(path, {key}=images) with images of shape N×C×L×L or N×L×L, N ≥ 1")
    return x
