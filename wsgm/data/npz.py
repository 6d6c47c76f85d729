"""A user's own images from a local ``.npz`` file (array N×C×H×W or N×H×W) into the dataset Zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from wsgm.data.store import StoreError, create_array
from wsgm.provenance import content_hash


def convert(spec: dict, source: Path, out: Path) -> dict:
    d = spec["dataset"]
    if not source.is_file():
        raise StoreError(f"dataset {spec['name']!r}: {source} does not exist. Fix: correct "
                         f"datasets.{spec['name']}.path")
    try:
        with np.load(source) as npz:
            if d["key"] not in npz:
                raise StoreError(f"{source} has no array {d['key']!r} (it has {sorted(npz.files)}). "
                                 f"Fix: set datasets.{spec['name']}.key")
            x = npz[d["key"]]
    except (ValueError, OSError) as exc:
        raise StoreError(f"{source} is not a readable .npz file ({exc})") from None
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise StoreError(f"{source}:{d['key']} has shape {x.shape}; expected N×C×L×L or N×L×L "
                         "square images")
    if x.shape[2] != d["size"] or x.shape[1] != d["channels"]:
        raise StoreError(f"{source}:{d['key']} holds {x.shape[1]}-channel {x.shape[2]}² images but the "
                         f"config says channels={d['channels']}, size={d['size']}. Fix: set "
                         f"datasets.{spec['name']}.size and .channels to match the file")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise StoreError(f"{source}:{d['key']} contains NaN or infinite values")
    x = (x - d["offset"]) * d["scale"]
    group = zarr.open_group(str(out), mode="w-")
    arr = create_array(group, "x", x.shape, d["chunk"])
    arr[:] = x
    attrs = {"kind": "npz", "size": int(x.shape[2]), "channels": int(x.shape[1]), "n": int(x.shape[0]),
             "source": str(source), "source_sha256": content_hash(source)}
    group.attrs.update(attrs)
    return attrs
