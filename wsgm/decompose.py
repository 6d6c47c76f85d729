"""Dataset Zarr → per-scale Zarr (low-pass ``low{k}`` and detail bands ``detail{k}``) + stats.

One Dask graph reads the dataset in chunks along N, applies one DWT level at a time (torch, on
each chunk), writes every band into pre-created Zarr arrays whose chunks match the Dask chunks,
and computes per-channel mean/std of every band in the same pass (float64 Welford/Chan merge).
For J = 0 (plain SGM) the store holds ``low0`` = the data itself, with its stats, so both paths
read normalization from the same place.
"""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import torch
import zarr

from wsgm import wavelets
from wsgm.data.store import StoreError, create_array, open_group


def _dwt_block(block: np.ndarray, wavelet: str) -> np.ndarray:
    low, details = wavelets.dwt2(torch.from_numpy(np.ascontiguousarray(block)), wavelet)
    return torch.cat([low, details], dim=1).numpy()


def _block_stats(block: np.ndarray) -> np.ndarray:
    """(3, C): count, mean, M2 per channel, in float64."""
    x = np.moveaxis(block.astype(np.float64), 1, 0).reshape(block.shape[1], -1)
    mean = x.mean(axis=1)
    m2 = ((x - mean[:, None]) ** 2).sum(axis=1)
    return np.stack([np.full_like(mean, x.shape[1]), mean, m2])


def merge_stats(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Chan et al.'s parallel merge of (count, mean, M2) → per-channel mean and std."""
    n, mean, m2 = parts[0]
    for nb, mb, m2b in parts[1:]:
        tot = n + nb
        delta = mb - mean
        mean = mean + delta * nb / tot
        m2 = m2 + m2b + delta**2 * n * nb / tot
        n = tot
    return mean, np.sqrt(m2 / n)


def band_names(J: int) -> list[str]:
    return ["low0"] if J == 0 else [f"{kind}{k}" for k in range(1, J + 1) for kind in ("low", "detail")]


def decompose(spec: dict, data: Path, out: Path, threads: int = 1) -> dict:
    """Write the per-scale store at ``out`` (a fresh path); returns its attrs."""
    wavelet, J = spec["wavelet"], spec["J"]
    src = open_group(data, "x")["x"]
    n, c, h, w = src.shape
    if h % 2**J or w % 2**J:
        raise StoreError(f"{data}: images are {h}x{w}, not divisible by 2^J = {2**J}. "
                         f"Fix: lower J for this dataset")
    x = da.from_zarr(src)
    chunk_n = src.chunks[0]
    bands: dict[str, da.Array] = {}
    if J == 0:
        bands["low0"] = x
    low = x
    for k in range(1, J + 1):
        hk, wk = h // 2**k, w // 2**k
        packed = low.map_blocks(_dwt_block, wavelet, dtype=np.float32,
                                chunks=(low.chunks[0], (4 * c,), (hk,), (wk,)),
                                meta=np.empty((0, 0, 0, 0), dtype=np.float32))
        low = packed[:, :c]
        bands[f"low{k}"], bands[f"detail{k}"] = low, packed[:, c:]

    group = zarr.open_group(str(out), mode="w-")
    writes, stats = [], {}
    for name, arr in bands.items():
        target = create_array(group, name, arr.shape, chunk_n)
        arr = arr.rechunk({0: target.chunks[0], 1: -1, 2: -1, 3: -1})
        writes.append(da.to_zarr(arr, target, compute=False))
        stats[name] = [dask.delayed(_block_stats)(b) for b in arr.to_delayed().ravel()]
    torch.set_num_threads(1)  # parallelism comes from Dask's workers
    _, computed = dask.compute(writes, stats, scheduler="threads", num_workers=max(1, threads))

    attrs = {"wavelet": wavelet, "J": J, "shape": [n, c, h, w], "stats": {}}
    for name, parts in computed.items():
        mean, std = merge_stats(parts)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise StoreError(f"{data}: band {name} has NaN or infinite values; the dataset is "
                             "corrupt. Fix: regenerate or clean the dataset")
        if (std <= 0).any():
            raise StoreError(f"{data}: band {name} has zero variance in some channel, so it "
                             "cannot be normalized. Fix: check the dataset (constant images?)")
        attrs["stats"][name] = {"mean": mean.tolist(), "std": std.tolist()}
    group.attrs.update(attrs)
    return attrs


def read_stats(store: Path) -> dict:
    """Per-band {'mean': [...], 'std': [...]} written by ``decompose``."""
    group = open_group(store)
    if "stats" not in group.attrs:
        raise StoreError(f"{store} has no normalization stats; it was not written by "
                         "`wsgm decompose`. Fix: delete it and rerun the decompose stage")
    return dict(group.attrs["stats"])
