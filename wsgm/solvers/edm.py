"""EDM's Heun sampler (Karras et al. 2022, Algorithm 2) for any process.

In y = x/m with σ = s/m every process is y = x_0 + σ z and the probability-flow ODE is
dy/dσ = ε̂(m y, t(σ)). Each step from σ_i to σ_{i+1} (the grid's times; ``time_grid: karras``
gives EDM's ρ-schedule) optionally "churns" first: with γ = min(S_churn/N, √2 - 1) when
S_tmin ≤ σ_i ≤ S_tmax (``churn``, ``churn_min``, ``churn_max``; else γ = 0), σ̂ = σ_i (1 + γ)
(capped at σ(T), where the model is defined), y ← y + sqrt(σ̂² - σ_i²) S_noise z
(``churn_noise``), then a Heun step from σ̂ to σ_{i+1}. The grid ends at eps (σ > 0), so every
step is a Heun step: 2 evaluations per step. It does not project (a deterministic ODE solver,
as ``heun``; churn only re-noises its own state).
"""

from __future__ import annotations

import math

import torch

from wsgm.sde import SDE
from wsgm.solvers import Context, register


def churned(sde: SDE, t: float, sigma: float, sigma_max: float, steps: int,
            opts: dict) -> tuple[float, float, float]:
    """(t̂, m̂, ŝ) of the churned time of a step from σ (t itself when no churn applies)."""
    churn, lo, hi = float(opts.get("churn", 0.0)), opts.get("churn_min", 0.0), opts.get("churn_max")
    hi = math.inf if hi is None else hi
    if churn <= 0 or not lo <= sigma <= hi:
        m, s = (float(v) for v in sde.marginal(torch.tensor(t, dtype=torch.float64)))
        return t, m, s
    gamma = min(churn / steps, math.sqrt(2) - 1)
    target = min(sigma * (1 + gamma), sigma_max)
    t_hat = float(sde.time_of_log_snr(torch.tensor(-math.log(target), dtype=torch.float64)))
    t_hat = max(t_hat, t)
    m, s = (float(v) for v in sde.marginal(torch.tensor(t_hat, dtype=torch.float64)))
    return t_hat, m, s


@register("edm", nfe_per_step=2, projectable=False,
          keys=("churn", "churn_min", "churn_max", "churn_noise"))
def edm(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """EDM Heun (Karras et al. Algorithm 2) in σ = s/m, with optional churn."""
    ms = ctx.marginals()
    sig = [s / m for m, s in ms]
    s_noise = float(ctx.opts.get("churn_noise", 1.0))
    y = x / ms[0][0]
    for i in range(ctx.steps):
        t_hat, m_hat, s_hat = churned(ctx.sde, ctx.ts[i], sig[i], sig[0], ctx.steps, ctx.opts)
        sig_hat = s_hat / m_hat
        if t_hat != ctx.ts[i]:
            y = y + math.sqrt(max(sig_hat**2 - sig[i] ** 2, 0.0)) * s_noise * ctx.noise(y)
        m2, t2 = ms[i + 1][0], ctx.ts[i + 1]
        step = sig[i + 1] - sig_hat
        d = ctx.f.eps(m_hat * y, t_hat)
        y_e = y + step * d
        y = y + 0.5 * step * (d + ctx.f.eps(m2 * y_e, t2))
    return ms[-1][0] * y
