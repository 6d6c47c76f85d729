"""Noise sources of the samplers: one shared generator, or one generator per sample index.

Every random draw of a sampler (the prior at each scale, the solvers' noise, the Langevin
corrector, churn, the inverse-problem projection) goes through a source's :meth:`randn`, with the
batch as its first dimension.

- :class:`Shared` wraps one ``torch.Generator``: rows of a draw depend on the batch they are in
  (the exact-theory code and the benches use it; a plain generator passed to
  ``wsgm.samplers.sample`` or ``wsgm.cascade.cascade`` is wrapped in it).
- :class:`PerSample` owns one CPU generator per global sample index i in [a, b), seeded by
  ``derive_seed(base, i)``: row i of every draw comes from sample i's own generator, in the same
  order whatever the batch it is computed in. With a batch-invariant network (on CPU: the U-Net
  run on fixed-size chunks, ``wsgm.cascade.fixed_rows``; on GPU only up to the kernels' batch-size
  dependence) and per-sample solver arithmetic, sample i is then the same bits whatever the batch
  size and whichever shard draws it (``sampling.shards``).

Rows are drawn on the CPU (a generator per row, written straight into one buffer) and moved to
the device once per draw: a CUDA generator per sample would cost a launch per row.
"""

from __future__ import annotations

from typing import Protocol

import torch

from wsgm.runtime import derive_seed


class Noise(Protocol):
    def randn(self, shape: tuple[int, ...], device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor: ...


class Shared:
    """All rows from one generator (``None``: torch's global generator)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def randn(self, shape, device="cpu", dtype=torch.float32):
        return torch.randn(tuple(shape), generator=self.generator, device=device, dtype=dtype)


class PerSample:
    """Row k of every draw from the generator of global sample index ``start + k``."""

    def __init__(self, base: int, start: int, stop: int) -> None:
        if not 0 <= start <= stop:
            raise ValueError(f"sample rows [{start}, {stop}) are not a range")
        self.base, self.start, self.stop = base, start, stop
        self.generators = [torch.Generator().manual_seed(seed(base, i)) for i in range(start, stop)]

    def __len__(self) -> int:
        return self.stop - self.start

    def rows(self, begin: int, end: int) -> "PerSample":
        """The source of global rows [begin, end) (a view: it shares this one's generators)."""
        if not self.start <= begin <= end <= self.stop:
            raise ValueError(f"rows [{begin}, {end}) are outside [{self.start}, {self.stop})")
        view = PerSample.__new__(PerSample)
        view.base, view.start, view.stop = self.base, begin, end
        view.generators = self.generators[begin - self.start:end - self.start]
        return view

    def randn(self, shape, device="cpu", dtype=torch.float32):
        shape = tuple(shape)
        if shape[0] != len(self.generators):
            raise ValueError(f"a draw of {shape[0]} rows from the noise of {len(self.generators)} samples "
                             f"[{self.start}, {self.stop})")
        out = torch.empty(shape, dtype=dtype)
        for row, gen in zip(out, self.generators):
            torch.randn(shape[1:], generator=gen, dtype=dtype, out=row)
        return out.to(device)


def seed(base: int, index: int) -> int:
    """The seed of sample ``index``'s generator in the stream ``base``."""
    return derive_seed(base, "sample-index", int(index))


def source(noise: "Noise | torch.Generator | None") -> Noise:
    """A noise source from a source, a ``torch.Generator`` (wrapped in :class:`Shared`) or None."""
    if noise is None or isinstance(noise, torch.Generator):
        return Shared(noise)
    return noise
