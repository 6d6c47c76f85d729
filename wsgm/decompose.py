"""Dataset Zarr → per-scale Zarr (low-pass ``low{k}`` and detail bands ``detail{k}``) + stats.

One Dask graph reads the dataset in chunks along N, applies one DWT level at a time (torch, on
each chunk), stores every band into pre-created Zarr arrays whose chunks match the Dask chunks,
and computes per-channel mean/std of every band in the same pass (float64 Welford/Chan merge), and
the largest mode variance of every normalized band (``max_mode_variance``: :mod:`wsgm.prior`).
For J = 0 (plain SGM) the store holds ``low0`` = the data itself, with its stats, so both paths
read normalization from the same place.

The graph runs on Dask's local threaded scheduler by default, or on any scheduler named by
``--dask`` / ``WSGM_DASK``: ``processes``, ``synchronous``, ``local`` (a ``dask.distributed``
LocalCluster), ``slurm:N`` (a dask-jobqueue SLURMCluster started here, N workers submitted as
SLURM jobs; site settings such as account, queue, memory and walltime come from Dask's
``jobqueue.slurm`` config, e.g. ``~/.config/dask/jobqueue.yaml``) or the address of a running
``dask.distributed`` scheduler; the workers must see the same filesystem. The scheduler changes
speed only, never the result, so it is not part of the stage's spec.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import torch
import zarr

from wsgm import prior, wavelets
from wsgm.data import split
from wsgm.data.store import StoreError, create_array, open_group


LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
# Chunks per Dask graph: the graph (and its memory) stays the same size whatever the dataset size.
WINDOW_CHUNKS = 16
log = logging.getLogger("wsgm.decompose")


@contextlib.contextmanager
def dask_scheduler(name: str | None, workers: int) -> Iterator[None]:
    """Make ``name`` (see the module docstring) Dask's scheduler inside the block."""
    name = name or os.environ.get("WSGM_DASK") or "threads"
    if name in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=name, num_workers=max(1, workers)):
            yield
        return
    slurm = SLURM_WORKERS.fullmatch(name)
    if name != "local" and "://" not in name and not slurm:
        raise StoreError(f"unknown Dask scheduler {name!r}. Fix: use one of {LOCAL_SCHEDULERS}, "
                         "'local', 'slurm:N' or a dask.distributed address such as tcp://host:8786")
    from distributed import Client, LocalCluster

    if slurm:
        cluster = slurm_cluster(int(slurm.group(1)))
    elif name == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1)
    else:
        cluster = None
    try:
        with Client(cluster if cluster is not None else name) as client:
            if slurm:
                client.wait_for_workers(1, timeout=dask.config.get("wsgm.slurm-wait", 3600))
                log.info("Dask on SLURM: %d worker job(s) asked, %d up", int(slurm.group(1)),
                         len(client.scheduler_info()["workers"]))
            yield
    finally:
        if cluster is not None:
            cluster.close()


SLURM_WORKERS = re.compile(r"slurm:(\d+)")


def slurm_cluster(jobs: int):
    """A dask-jobqueue SLURMCluster with ``jobs`` single-process workers, each one SLURM job.
    Unset sizes default to 1 core and 4 GB per worker, worker logs go to results/logs/dask-workers;
    everything else (account, queue,
    walltime, extra sbatch lines) is read by dask-jobqueue from Dask's ``jobqueue.slurm`` config."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise StoreError("--dask slurm:N needs dask-jobqueue. Fix: pip install dask-jobqueue") from None
    if jobs < 1:
        raise StoreError(f"--dask slurm:{jobs}: the number of workers must be >= 1")
    conf = dask.config.get("jobqueue.slurm", {})
    cluster = SLURMCluster(cores=conf.get("cores") or 1, processes=conf.get("processes") or 1,
                           memory=conf.get("memory") or "4GB",
                           log_directory=conf.get("log-directory") or "results/logs/dask-workers")
    cluster.scale(jobs=jobs)
    return cluster


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to trim


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, so RSS would creep up
    with the number of chunks processed even though no data is held)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _dwt_block(block: np.ndarray, wavelet: str) -> np.ndarray:
    torch.set_num_threads(1)  # parallelism comes from Dask's workers
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


def band_shapes(n: int, c: int, h: int, w: int, J: int) -> dict[str, tuple[int, int, int, int]]:
    """Shape of every band in the store, in the order ``_bands`` yields them."""
    if J == 0:
        return {"low0": (n, c, h, w)}
    return {f"{kind}{k}": (n, c * (1 if kind == "low" else 3), h >> k, w >> k)
            for k in range(1, J + 1) for kind in ("low", "detail")}


def _bands(x: da.Array, wavelet: str, J: int) -> dict[str, da.Array]:
    """The per-scale bands of ``x`` as lazy Dask arrays, one DWT level per chunk and level."""
    c, h, w = x.shape[1:]
    if J == 0:
        return {"low0": x}
    bands: dict[str, da.Array] = {}
    low = x
    for k in range(1, J + 1):
        packed = low.map_blocks(_dwt_block, wavelet, dtype=np.float32,
                                chunks=(low.chunks[0], (4 * c,), (h >> k,), (w >> k,)),
                                meta=np.empty((0, 0, 0, 0), dtype=np.float32))
        low = packed[:, :c]
        bands[f"low{k}"], bands[f"detail{k}"] = low, packed[:, c:]
    return bands


def decompose(spec: dict, data: Path, out: Path, threads: int = 1, scheduler: str | None = None) -> dict:
    """Write the per-scale store at ``out`` (a fresh path); returns its attrs."""
    wavelet, J = spec["wavelet"], spec["J"]
    group_in = open_group(data, "x")
    src = group_in["x"]
    train = split.rows(group_in, "train", data)  # the held-out rows are never decomposed (never trained on)
    n, (c, h, w) = train.stop, src.shape[1:]
    if h % 2**J or w % 2**J:
        raise StoreError(f"{data}: images are {h}x{w}, not divisible by 2^J = {2**J}. "
                         f"Fix: lower J for this dataset")
    # through the checked reader: a damaged chunk of the dataset stops this with one StoreError
    x = da.from_array(src, chunks=src.chunks, name=f"from-zarr-{dask.base.tokenize(src.array)}",
                      meta=np.empty((0, 0, 0, 0), dtype=src.dtype))[:n]
    chunk_n = src.chunks[0]
    group = zarr.open_group(str(out), mode="w-")
    targets = {name: create_array(group, name, shape, chunk_n)
               for name, shape in band_shapes(n, c, h, w, J).items()}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in targets}
    powers: dict[str, np.ndarray | None] = {name: None for name in targets}  # prior.power_sums, merged
    window = chunk_n * WINDOW_CHUNKS
    t0 = time.perf_counter()
    with dask_scheduler(scheduler, threads):
        for start in range(0, n, window):
            stop = min(n, start + window)
            bands = _bands(x[start:stop], wavelet, J)
            # One store of every band (not one da.to_zarr per band): in a single graph Dask's
            # ordering finishes each chunk's bands before reading the next one.
            writes = da.store(list(bands.values()), [targets[k] for k in bands], lock=False,
                              regions=[(slice(start, stop),)] * len(bands), compute=False)
            # optimize_graph=False: a fused copy per block would recompute the DWT for the stats
            blocks = {k: arr.to_delayed(optimize_graph=False).ravel() for k, arr in bands.items()}
            stats = {k: [dask.delayed(_block_stats)(b) for b in v] for k, v in blocks.items()}
            power = {k: [dask.delayed(prior.power_sums)(b) for b in v] for k, v in blocks.items()}
            _, got, got_power = dask.compute(writes, stats, power)
            for k, v in got.items():
                parts[k].extend(v)
                window_sum = sum(got_power[k])
                powers[k] = window_sum if powers[k] is None else powers[k] + window_sum
            _release_freed_memory()
            rate = stop * x.dtype.itemsize * c * h * w / 2**20 / (time.perf_counter() - t0)
            log.info("decomposed %d/%d images (%.0f MB/s)", stop, n, rate)

    attrs = {"wavelet": wavelet, "J": J, "shape": [n, c, h, w], "part": "train", "rows": [0, n],
             "stats": {}, "max_mode_variance": {}}
    for name, blocks in parts.items():
        mean, std = merge_stats(blocks)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise StoreError(f"{data}: band {name} has NaN or infinite values; the dataset is "
                             "corrupt. Fix: regenerate or clean the dataset")
        if (std <= 0).any():
            raise StoreError(f"{data}: band {name} has zero variance in some channel, so it "
                             "cannot be normalized. Fix: check the dataset (constant images?)")
        attrs["stats"][name] = {"mean": mean.tolist(), "std": std.tolist()}
        # largest mode variance of the normalized band: does the forward process reach its prior?
        attrs["max_mode_variance"][name] = prior.max_mode_variance(powers[name], mean.tolist(), std.tolist())
    group.attrs.update(attrs)
    return attrs


def read_stats(store: Path) -> dict:
    """Per-band {'mean': [...], 'std': [...]} written by ``decompose``."""
    group = open_group(store)
    if "stats" not in group.attrs:
        raise StoreError(f"{store} has no normalization stats; it was not written by "
                         "`wsgm decompose`. Fix: delete it and rerun the decompose stage")
    return dict(group.attrs["stats"])
