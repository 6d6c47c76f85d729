"""Exponential integrators in the half log-SNR λ = log(m/s), data prediction x̂_0 = (x - s ε̂)/m.

Written with the forward marginal x_t = m x_0 + s z only, so they serve every process.

- ``ddim`` (Song et al. 2021; Lu et al. 2022's first-order DPM-Solver++):
  x' = m' x̂_0 + sqrt(s'² - σ²) ε̂ + σ z with σ² = η² (s'²/s²)(s² - (m/m')² s'²), i.e. η times the
  std of the forward bridge q(x' | x, x̂_0). η = 0: deterministic, x' = (s'/s) x - m' (e^{-h} - 1) x̂_0
  with h = λ' - λ, first order on the probability-flow ODE; η = 1: exactly ``ancestral``. The last
  step keeps its mean and adds no noise. Projects after every step (as ``ancestral``, which it generalizes).
- ``dpmpp_2m``: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): x' = (s'/s) x - m' (e^{-h} - 1) D,
  D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0,prev with r = h_prev/h (first step: D = x̂_0); second order,
  one evaluation per step. Does not project: its correction reuses the previous step's x̂_0, which
  a projection in between would make inconsistent.
"""

from __future__ import annotations

import math

import torch

from wsgm.solvers import Context, log_snr, register


def ddim_variance(m: float, s: float, m2: float, s2: float, eta: float) -> float:
    """σ² of a DDIM step from (m, s) to (m2, s2): η² × the forward bridge's variance, ≤ s2²."""
    if eta == 0:
        return 0.0
    bridge = max(s**2 - (m / m2) ** 2 * s2**2, 0.0) * s2**2 / s**2
    return min(eta**2 * bridge, s2**2)


@register("ddim", nfe_per_step=1, projectable=True, keys=("eta",),
          noise=lambda opts: float(opts.get("eta", 0.0)) ** 2)
def ddim(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """DDIM: first-order exponential integrator in λ (data prediction); η > 0 adds η × the
    ancestral noise (η = 1: ancestral)."""
    eta = float(ctx.opts.get("eta", 0.0))
    ms = ctx.marginals()
    for i in range(ctx.steps):
        (m, s), (m2, s2) = ms[i], ms[i + 1]
        eps = ctx.f.eps(x, ctx.ts[i])
        x0 = (x - s * eps) / m
        var = ddim_variance(m, s, m2, s2, eta)
        x = m2 * x0 + math.sqrt(s2**2 - var) * eps
        if var > 0 and i < ctx.steps - 1:
            x = x + math.sqrt(var) * ctx.noise(x)
        x = ctx.project(x, ctx.ts[i + 1])
    return x


@register("dpmpp_2m", nfe_per_step=1, projectable=False)
def dpmpp_2m(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(2M): second-order multistep exponential integrator in λ (data prediction)."""
    ms = ctx.marginals()
    prev = h_prev = None
    for i in range(ctx.steps):
        (m, s), (m2, s2) = ms[i], ms[i + 1]
        h = log_snr(m2, s2) - log_snr(m, s)
        x0 = (x - s * ctx.f.eps(x, ctx.ts[i])) / m
        d = x0 if prev is None else (1 + 0.5 * h / h_prev) * x0 - (0.5 * h / h_prev) * prev
        x = (s2 / s) * x - (m2 * math.expm1(-h)) * d
        prev, h_prev = x0, h
    return x
