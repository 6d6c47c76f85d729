"""Training batches streamed from the per-scale Zarr store, whole chunks at a time.

Each epoch visits the store's chunks (along N) in a seeded random order, a window of a few chunks
at a time: the window's rows (target band and, for conditional models, the low-pass, both
normalized) are read whole, shuffled and cut into batches; the rest of the store is never in RAM.
The stream is a pure function of (seed, batch index), so a resumed run skips to its step without
reading what it skips and sees the same batches as an uninterrupted one. Under DDP each rank takes
an interleaved slice of every global batch, so the global batch does not depend on the world size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from wsgm.bands import band_pair, normalize
from wsgm.data.store import open_group
from wsgm.decompose import read_stats
from wsgm.runtime import derive_seed


class ChunkBatches(IterableDataset):
    """Endless stream of (target, cond or empty) batches of ``batch_size // world`` rows."""

    def __init__(self, store: Path, J: int, j: int, batch_size: int, seed: int, start: int = 0,
                 rank: int = 0, world: int = 1, window_chunks: int = 2) -> None:
        super().__init__()
        self.store, self.seed, self.start, self.rank, self.world = Path(store), seed, start, rank, world
        self.target_name, self.cond_name = band_pair(J, j)
        group = open_group(self.store, self.target_name, *([self.cond_name] if self.cond_name else []))
        arr = group[self.target_name]
        self.n, self.chunk = arr.shape[0], arr.chunks[0]
        self.shape = tuple(arr.shape[1:])
        self.cond_shape = tuple(group[self.cond_name].shape[1:]) if self.cond_name else None
        self.batch_size = batch_size
        self.n_chunks = math.ceil(self.n / self.chunk)
        self.window = min(self.n_chunks, max(window_chunks, math.ceil(batch_size / self.chunk)))

    def _rows(self, c: int) -> int:
        return min(self.n, (c + 1) * self.chunk) - c * self.chunk

    def _windows(self) -> Iterator[tuple[int, list[int], int]]:
        """(epoch, chunk ids, batches) forever, without reading data."""
        epoch = 0
        while True:
            order = np.random.default_rng(derive_seed(self.seed, "batches", epoch)).permutation(self.n_chunks)
            for w in range(0, self.n_chunks, self.window):
                ids = sorted(int(c) for c in order[w:w + self.window])
                rows = sum(self._rows(c) for c in ids)
                yield epoch, ids, max(1, rows // self.batch_size)
            epoch += 1

    def _read(self, name: str, ids: list[int], stats: dict) -> torch.Tensor:
        group = open_group(self.store)
        parts = [np.asarray(group[name][c * self.chunk: c * self.chunk + self._rows(c)]) for c in ids]
        return normalize(torch.from_numpy(np.concatenate(parts)), stats[name])

    def __iter__(self):
        stats = read_stats(self.store)
        done = 0
        for epoch, ids, n_batches in self._windows():
            if done + n_batches <= self.start:
                done += n_batches
                continue
            target = self._read(self.target_name, ids, stats)
            cond = self._read(self.cond_name, ids, stats) if self.cond_name else None
            rng = np.random.default_rng(derive_seed(self.seed, "window", epoch, ids[0]))
            need = n_batches * self.batch_size
            perm = np.concatenate([rng.permutation(len(target)) for _ in range(math.ceil(need / len(target)))])
            for b in range(n_batches):
                if done >= self.start:
                    idx = torch.from_numpy(perm[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world])
                    yield target[idx], (cond[idx] if cond is not None else torch.empty(0))
                done += 1


def loader(dataset: ChunkBatches) -> DataLoader:
    """A DataLoader over the stream (batches come out of the dataset whole)."""
    return DataLoader(dataset, batch_size=None, num_workers=0)
