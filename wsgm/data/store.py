"""Zarr v3 I/O: the dataset store (array ``x``, N×C×H×W, chunked along N) and its helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from wsgm.errors import UserError
from wsgm.provenance import rebuild_hint


class StoreError(UserError, RuntimeError):
    """A Zarr store is missing, incomplete or not what the stage expects."""


# Every chunk we write is a zstd frame with its content checksum (xxhash64), so a flipped bit or
# a truncated chunk file fails the read instead of decoding to wrong values. The values are those
# of zarr's default codec (zstd level 0, no checksum); only the 4-byte checksum is added per chunk.
CHUNK_CODEC = zarr.codecs.ZstdCodec(level=0, checksum=True)


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], chunk_n: int,
                 dtype: str = "float32") -> zarr.Array:
    """An array chunked along its first axis only (whole images per chunk), checksummed chunks."""
    chunks = (max(1, min(chunk_n, shape[0])), *shape[1:])
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                              compressors=CHUNK_CODEC)


def save_array(group: zarr.Group, name: str, data: np.ndarray) -> zarr.Array:
    """A small array written whole (one chunk, zarr's default chunking), checksummed chunks."""
    return group.create_array(name, data=data, compressors=CHUNK_CODEC)


def _unreadable(path: Path, name: str, exc: Exception) -> StoreError:
    return StoreError(f"{path}: array {name!r} has a corrupt chunk ({exc}); the store was damaged "
                      f"after it was written (a flipped bit, a truncated or replaced chunk file). "
                      f"{rebuild_hint(path)}")


def _is_decode_error(exc: Exception) -> bool:
    """An error of zarr's codec pipeline decoding a damaged chunk (zstd: RuntimeError 'Zstd
    decompression error: ... checksum' / 'invalid input data'; a chunk of the wrong size:
    ValueError 'cannot reshape array ...')."""
    text = str(exc).lower()
    if isinstance(exc, StoreError):
        return False
    return (isinstance(exc, RuntimeError) and ("decompress" in text or "checksum" in text)) or \
        (isinstance(exc, ValueError) and ("reshape" in text or "buffer" in text))


class ReadArray:
    """A read-only Zarr array whose reads turn a damaged chunk into one :class:`StoreError`
    naming the store, the array and the fix. Anything else is the wrapped ``zarr.Array``'s."""

    def __init__(self, array: zarr.Array, store: Path, name: str) -> None:
        self.array, self.store, self.name = array, Path(store), name

    def __getitem__(self, selection) -> np.ndarray:
        try:
            return self.array[selection]
        except Exception as exc:
            if _is_decode_error(exc):
                raise _unreadable(self.store, self.name, exc) from None
            raise

    def __getattr__(self, attr):
        if attr in ("array", "store", "name"):  # not set yet (unpickling)
            raise AttributeError(attr)
        return getattr(self.array, attr)

    def __len__(self) -> int:
        return len(self.array)

    def __reduce__(self):  # Dask's process/distributed schedulers ship it to workers
        return ReadArray, (self.array, self.store, self.name)

    def __repr__(self) -> str:
        return f"<ReadArray {self.store}/{self.name} {self.array.shape} {self.array.dtype}>"


class ReadGroup:
    """A read-only Zarr group whose arrays are :class:`ReadArray` (checked reads)."""

    def __init__(self, group: zarr.Group, store: Path, prefix: str = "") -> None:
        self.group, self.store, self.prefix = group, Path(store), prefix

    def __getitem__(self, name: str):
        try:
            node = self.group[name]
        except (ValueError, RuntimeError) as exc:  # a damaged zarr.json
            raise StoreError(f"{self.store}: the metadata of {self.prefix + name!r} is unreadable ({exc}). "
                             f"{rebuild_hint(self.store)}") from None
        if isinstance(node, zarr.Array):
            return ReadArray(node, self.store, self.prefix + name)
        return ReadGroup(node, self.store, f"{self.prefix}{name}/")

    def __contains__(self, name: str) -> bool:
        return name in self.group

    def __iter__(self):
        return iter(self.group)

    def __getattr__(self, attr):
        if attr in ("group", "store", "prefix"):
            raise AttributeError(attr)
        return getattr(self.group, attr)


def open_group(path: str | Path, *required: str) -> ReadGroup:
    """The store at ``path`` for reading, with ``required`` arrays; reads of its arrays raise one
    :class:`StoreError` naming the store and the fix if a chunk is damaged."""
    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError) as exc:
        raise StoreError(f"{path} is not a readable Zarr store ({exc}). {rebuild_hint(path)}") from None
    missing = [name for name in required if name not in group]
    if missing:
        raise StoreError(f"{path} lacks array(s) {missing}; it is incomplete or from another "
                         f"stage. {rebuild_hint(path)}")
    return ReadGroup(group, path)


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
