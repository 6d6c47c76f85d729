"""Reverse-time grids: steps+1 decreasing times from T to eps, by name (``GRIDS``).

- ``uniform``: equal steps in t; ``quadratic``: t = eps + (T - eps) u² (finer near eps);
- ``karras``: Karras et al.'s (2022) schedule on σ = s/m = exp(-λ),
  σ_i = (σ_max^(1/ρ) + i/N (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ with ρ = ``rho`` (7 in EDM);
- ``logsnr``: equal steps in the half log-SNR λ = log(m/s) (DPM-Solver's grid).
The λ grids are mapped back to t through ``SDE.time_of_log_snr``, so they serve every process.
"""

from __future__ import annotations

import math

import torch

from wsgm.sde import SDE

GRIDS = ("uniform", "quadratic", "karras", "logsnr")


def time_grid(sde: SDE, steps: int, kind: str = "uniform", rho: float = 7.0) -> torch.Tensor:
    """steps+1 decreasing float64 times from T to eps."""
    if kind not in GRIDS:
        raise ValueError(f"unknown time grid {kind!r}; use one of {GRIDS}")
    if kind in ("uniform", "quadratic"):
        u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        if kind == "quadratic":
            u = u**2
        return sde.eps + (sde.T - sde.eps) * u
    ends = sde.log_snr(torch.tensor([sde.T, sde.eps], dtype=torch.float64))
    lam_T, lam_0 = float(ends[0]), float(ends[1])
    if not math.isfinite(lam_0):
        raise ValueError(f"the {kind} grid needs a finite log-SNR at t = eps; use eps > 0")
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind == "logsnr":
        lam = lam_T + (lam_0 - lam_T) * u
    else:  # karras: σ = exp(-λ)
        hi, lo = math.exp(-lam_T / rho), math.exp(-lam_0 / rho)
        lam = -rho * torch.log(hi + u * (lo - hi))
    t = sde.time_of_log_snr(lam)
    t[-1], t[0] = sde.eps, sde.T
    return t
