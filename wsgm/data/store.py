"""Zarr v3 I/O: the dataset store (array ``x``, N×C×H×W, chunked along N) and its helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from wsgm.errors import UserError


class StoreError(UserError, RuntimeError):
    """A Zarr store is missing, incomplete or not what the stage expects."""


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], chunk_n: int,
                 dtype: str = "float32") -> zarr.Array:
    """An array chunked along its first axis only (whole images per chunk)."""
    chunks = (max(1, min(chunk_n, shape[0])), *shape[1:])
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0)


def open_group(path: str | Path, *required: str) -> zarr.Group:
    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as exc:
        raise StoreError(f"{path} is not a readable Zarr store ({exc}). Fix: delete it and rerun "
                         "the stage that makes it") from None
    missing = [name for name in required if name not in group]
    if missing:
        raise StoreError(f"{path} lacks array(s) {missing}; it is incomplete or from another "
                         "stage. Fix: delete it and rerun the stage that makes it")
    return group


def read_array(path: str | Path, name: str, limit: int | None = None) -> np.ndarray:
    arr = open_group(path, name)[name]
    return np.asarray(arr[: limit if limit is not None else arr.shape[0]])


def write_uint8_images(out: str | Path, blocks, channels: int, size: int, chunk_n: int) -> zarr.Group:
    """The dataset store from an iterable of uint8 N×C×L×L blocks, stored as float32 in [-1, 1]
    (x = u/127.5 - 1: what decompose and the models expect; the attrs record the mapping)."""
    group = zarr.open_group(str(out), mode="w-")
    x = create_array(group, "x", (chunk_n, channels, size, size), chunk_n)
    n = 0
    for block in blocks:
        if block.dtype != np.uint8 or block.shape[1:] != (channels, size, size):
            raise StoreError(f"internal: image block {block.dtype} {block.shape} is not uint8 "
                             f"N×{channels}×{size}×{size}")
        x.resize((n + len(block), channels, size, size))
        x[n:n + len(block)] = block.astype(np.float32) / 127.5 - 1.0
        n += len(block)
    if n == 0:
        raise StoreError(f"no images were found for {out}. Fix: check the archive or folder")
    x.resize((n, channels, size, size))
    group.attrs.update({"value_range": [-1.0, 1.0], "pixel_map": "x = uint8 / 127.5 - 1"})
    return group
