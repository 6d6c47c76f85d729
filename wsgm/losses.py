"""The denoising score-matching loss as an object that owns its time law, noise and weighting.

``DSMLoss(sde, parameterization, weighting)(net, x0, cond, generator)`` draws t from the process's
training-time law and z ~ N(0, I) (in that order, from ``generator``), forms x_t = m(t) x_0 + s(t) z
and returns the per-sample loss. Under DDP (``rank``, ``world``) every rank draws the (t, z) of the
whole global batch from the same generator and keeps rows ``rank::world``, as the data loader
slices the batch (``wsgm.batches.ChunkBatches``): the draws, hence the weights, do not depend on
the number of processes, and with world = 1 they are those of a plain run. The parameterization (eps, score, x0, edm; ``wsgm.nets.param``)
sets what the net is fed and the native loss; ``weighting: likelihood`` weighs the ε error by g²/s²
(Song et al.'s likelihood weighting); ``weighting: edm`` is Karras et al.'s λ(σ) |D - x_0|² with
D = (x_t - s ε̂)/m the implied denoiser, i.e. (1 + σ²/σ_d²) |ε̂ - ε|² (σ = s/m; for the edm
parameterization it is its native loss). The training loop (``wsgm.train``) only calls it, so a new
loss is a new class here.
"""

from __future__ import annotations

import torch

from wsgm.nets.param import native_loss, net_input, to_eps
from wsgm.sde import SDE

WEIGHTINGS = ("none", "likelihood", "edm")


class DSMLoss:
    """Denoising score matching for one linear forward process."""

    def __init__(self, sde: SDE, parameterization: str = "eps", weighting: str = "none",
                 sigma_data: float = 1.0) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {weighting!r}; use one of {WEIGHTINGS}")
        self.sde, self.kind, self.weighting = sde, parameterization, weighting
        self.sigma_data = float(sigma_data)

    def sample_time(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training times (float64, on the CPU) from the process's training-time law."""
        return self.sde.sample_time(torch.rand(n, generator=generator, dtype=torch.float64))

    def draw(self, shape: torch.Size, generator: torch.Generator, rank: int = 0,
             world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, z) of this rank's rows ``rank::world`` of a global batch of ``shape[0] * world``
        rows: t then z drawn for the whole global batch (CPU)."""
        n = shape[0] * world
        t = self.sample_time(n, generator)
        z = torch.randn((n, *shape[1:]), generator=generator)
        if world == 1:
            return t, z
        return t[rank::world], z[rank::world]

    def __call__(self, net, x0: torch.Tensor, cond: torch.Tensor | None, generator: torch.Generator,
                 amp: bool = False, rank: int = 0, world: int = 1) -> torch.Tensor:
        """Per-sample loss of ``net(x_t, t, cond)`` on the clean batch ``x0`` (shape [n]); under DDP
        ``x0`` holds rows ``rank::world`` of the global batch."""
        device = x0.device
        t, z = self.draw(x0.shape, generator, rank, world)
        z = z.to(device)
        m, s = (v.float().to(device) for v in self.sde.marginal(t))
        xt = m.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * z
        x_in, t_in = net_input(self.kind, xt, t.float().to(device), m, s, self.sigma_data)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = net(x_in, t_in, cond)
        pred = pred.float()
        if self.weighting == "likelihood":
            w = (self.sde.g2(t) / self.sde.var(t)).float().to(device)
        elif self.weighting == "edm" and self.kind != "edm":
            w = 1 + (s / m) ** 2 / self.sigma_data**2
        else:
            return native_loss(self.kind, pred, x0, z, s, m, self.sigma_data)
        return w * (to_eps(self.kind, pred, xt, m, s, self.sigma_data) - z).pow(2).flatten(1).mean(1)
