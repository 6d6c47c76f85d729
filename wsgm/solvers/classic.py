"""The original solvers, unchanged step for step: em, ancestral, pc, pf_ode, heun, rk45.

- ``em``: Euler–Maruyama on the reverse SDE (the last step adds no noise);
- ``ancestral``: DDPM-style ancestral steps, x_t' drawn from the Gaussian q(x_t' | x_t, x̂_0)
  with x̂_0 the denoised estimate (the WSGM code's sampler, for any linear process);
- ``pc``: predictor–corrector: ``corrector_steps`` Langevin corrector steps with the
  signal-to-noise step rule (Song et al. 2021) at each time, then an EM predictor step;
- ``pf_ode``: Euler on the probability-flow ODE; ``heun``: Heun (2nd order, 2 evaluations per
  step); ``rk45``: adaptive Dormand–Prince (scipy) on the PF ODE, ``steps`` unused,
  tolerance ``rtol``/``atol`` (one step-size control for the whole batch, so its samples depend on
  the batch: the one solver that is not batch-invariant).
The stochastic ones project after every predictor and corrector step; the ODE ones cannot.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wsgm.sde import SDE
from wsgm.solvers import Context, Counted, register


def _coefs(sde: SDE, t: float) -> tuple[float, float]:
    tt = torch.tensor(t, dtype=torch.float64)
    return float(sde.drift_coef(tt)), float(sde.g2(tt))


def _em(ctx: Context, x: torch.Tensor, corrector: bool) -> torch.Tensor:
    f, ts, project = ctx.f, ctx.ts, ctx.project
    for i in range(ctx.steps):
        t, t_next = ts[i], ts[i + 1]
        dt = t - t_next
        f_coef, g2 = _coefs(ctx.sde, t)
        if corrector:
            for _ in range(ctx.opts["corrector_steps"]):
                x = project(_langevin(f, x, t, ctx.opts["snr"], ctx.noise(x)), t)
        x = x - (f_coef * x - g2 * f.score(x, t)) * dt
        if i != ctx.steps - 1:
            x = x + (g2 * dt) ** 0.5 * ctx.noise(x)
        x = project(x, t_next)
    return x


@register("em", nfe_per_step=1, projectable=True, noise=1.0)
def em(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE (the last step adds no noise)."""
    return _em(ctx, x, corrector=False)


@register("ancestral", nfe_per_step=1, projectable=True, noise=1.0)
def ancestral(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """DDPM-style ancestral steps: x_t' ~ q(x_t' | x_t, x̂_0), the forward bridge."""
    for i in range(ctx.steps):
        t_next = ctx.ts[i + 1]
        z = None if i == ctx.steps - 1 else ctx.noise(x)
        x = ctx.project(_ancestral(ctx.f, ctx.sde, x, ctx.ts[i], t_next, z), t_next)
    return x


@register("pc", nfe_per_step=2, projectable=True, keys=("snr", "corrector_steps"), noise=1.0)
def pc(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Predictor–corrector: Langevin corrector steps (signal-to-noise rule), then an EM step
    (1 + corrector_steps evaluations per step)."""
    return _em(ctx, x, corrector=True)


@register("pf_ode", nfe_per_step=1, projectable=False)
def pf_ode(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Euler on the probability-flow ODE."""
    for i in range(ctx.steps):
        t, t_next = ctx.ts[i], ctx.ts[i + 1]
        x = x - ctx.f.ode_drift(x, t) * (t - t_next)
    return x


@register("heun", nfe_per_step=2, projectable=False)
def heun(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Heun (2nd order) on the probability-flow ODE in t."""
    f = ctx.f
    for i in range(ctx.steps):
        t, t_next = ctx.ts[i], ctx.ts[i + 1]
        dt = t - t_next
        d = f.ode_drift(x, t)
        x_e = x - d * dt
        x = x - 0.5 * (d + f.ode_drift(x_e, t_next)) * dt
    return x


@register("rk45", nfe_per_step=0, projectable=False, keys=("rtol",), batch_invariant=False)
def rk45(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Adaptive Dormand–Prince (scipy) on the probability-flow ODE; steps unused. One error
    control for the whole batch: a sample depends on its batch (not batch-invariant)."""
    return _rk45(ctx.f, x, ctx.sde.T, ctx.sde.eps, ctx.opts["rtol"], ctx.opts["atol"])


def _langevin(f: Counted, x: torch.Tensor, t: float, snr: float, z: torch.Tensor) -> torch.Tensor:
    """One Langevin step at time t with step size 2 (snr s(t))²: Song et al.'s signal-to-noise rule
    2 (snr |z| / |score|)² with the norms at their values for a noise predictor (|z|² = d and
    |score|² = d / s(t)² in expectation). Their code takes batch-mean norms, which makes a sample
    depend on the rest of its batch (so on the batch size and on ``sampling.shards``); per-sample
    norms instead blow up where a sample's score is near 0 (low dimensions). This rule is the
    same for every sample and every batch."""
    grad = f.score(x, t)
    step = 2 * (snr * f.std(t)) ** 2
    return x + step * grad + math.sqrt(2 * step) * z


def _ancestral(f: Counted, sde: SDE, x: torch.Tensor, t: float, t_next: float,
               z: torch.Tensor | None) -> torch.Tensor:
    """x_{t'} ~ q(x_{t'} | x_t, x̂_0): the exact Gaussian bridge of the forward process."""
    (m, s), (m2, s2) = (tuple(float(v) for v in sde.marginal(torch.tensor(u, dtype=torch.float64)))
                        for u in (t, t_next))
    eps = f.eps(x, t)
    x0 = (x - s * eps) / m
    a = m / m2  # x_t = a x_{t'} + b ξ
    b2 = max(s**2 - a**2 * s2**2, 0.0)
    mean = (a * s2**2 / s**2) * x + (m2 * b2 / s**2) * x0
    if z is None:
        return mean
    return mean + (b2 * s2**2 / s**2) ** 0.5 * z


def _rk45(f: Counted, x: torch.Tensor, t0: float, t1: float, rtol: float, atol: float) -> torch.Tensor:
    from scipy.integrate import solve_ivp

    shape, dtype, device = x.shape, x.dtype, x.device

    def rhs(t, y):
        xt = torch.from_numpy(y).to(device=device, dtype=dtype).view(shape)
        return f.ode_drift(xt, t).double().cpu().numpy().ravel()

    sol = solve_ivp(rhs, (t0, t1), x.double().cpu().numpy().ravel(), method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"RK45 failed on the probability-flow ODE: {sol.message}")
    return torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).to(device=device, dtype=dtype).view(shape)
