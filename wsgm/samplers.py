"""Reverse-time samplers: Euler–Maruyama on the reverse SDE and Euler on the probability-flow ODE.

``eps_fn(x, t)`` is an epsilon-predictor (a network or an exact formula); the score is
``-eps / s(t)``. One function evaluation per step; the last step adds no noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wsgm.sde import SDE

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("em", "pf_ode")


def time_grid(sde: SDE, steps: int, kind: str = "uniform") -> torch.Tensor:
    """steps+1 decreasing times from T to eps; quadratic spacing is finer near eps."""
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if kind == "quadratic":
        u = u**2
    elif kind != "uniform":
        raise ValueError(f"unknown time grid {kind!r}; use uniform or quadratic")
    return sde.eps + (sde.T - sde.eps) * u


@torch.no_grad()
def sample(eps_fn: EpsFn, sde: SDE, shape: tuple[int, ...], steps: int, sampler: str = "em",
           grid: str = "uniform", generator: torch.Generator | None = None,
           device: torch.device | str = "cpu") -> torch.Tensor:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
    ts = time_grid(sde, steps, grid)
    x = sde.prior_std() * torch.randn(shape, generator=generator, device=device)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        dt = float(t - t_next)
        tb = torch.full((shape[0],), float(t), device=device)
        f_coef = float(sde.drift_coef(t))
        g2 = float(sde.g2(t))
        std = float(sde.marginal(t)[1])
        score = -eps_fn(x, tb) / std
        if sampler == "em":
            x = x - (f_coef * x - g2 * score) * dt
            if i < steps - 1:
                x = x + (g2 * dt) ** 0.5 * torch.randn(shape, generator=generator, device=device)
        else:
            x = x - (f_coef * x - 0.5 * g2 * score) * dt
    return x
