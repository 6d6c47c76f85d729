"""Reverse-time samplers on a time grid from T to eps, driven by an ε-predictor.

``eps_fn(x, t)`` is an epsilon-predictor (a network or an exact formula); the score is
``-eps / s(t)``. Samplers (``SAMPLERS``):

- ``em``: Euler–Maruyama on the reverse SDE (the last step adds no noise);
- ``ancestral``: DDPM-style ancestral steps, x_t' drawn from the Gaussian q(x_t' | x_t, x̂_0)
  with x̂_0 the denoised estimate (the WSGM code's sampler, for any linear process);
- ``pc``: predictor–corrector: ``corrector_steps`` Langevin corrector steps with the
  signal-to-noise step rule (Song et al. 2021) at each time, then an EM predictor step;
- ``pf_ode``: Euler on the probability-flow ODE; ``heun``: Heun (2nd order, 2 evaluations per
  step); ``rk45``: adaptive Dormand–Prince (scipy) on the PF ODE, ``steps`` unused,
  tolerance ``rtol``/``atol``.

``project(x, t)`` (inverse problems, ``wsgm.inverse``) is applied to the state after every
predictor and every corrector step, with t the time the state has reached (Song et al. 2021,
appendix I); the stochastic samplers (``PROJECTABLE``) support it, the ODE ones refuse it.

``denoise`` adds a final Tweedie step x̂_0 = (x - s ε)/m at t = eps (one more evaluation). The
number of function evaluations is written to ``info['nfe']`` when an ``info`` dict is given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from wsgm.sde import SDE

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("em", "ancestral", "pc", "pf_ode", "heun", "rk45")
PROJECTABLE = ("em", "ancestral", "pc")


def time_grid(sde: SDE, steps: int, kind: str = "uniform") -> torch.Tensor:
    """steps+1 decreasing times from T to eps; quadratic spacing is finer near eps."""
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if kind == "quadratic":
        u = u**2
    elif kind != "uniform":
        raise ValueError(f"unknown time grid {kind!r}; use uniform or quadratic")
    return sde.eps + (sde.T - sde.eps) * u


def options(sampling: dict) -> dict:
    """Keyword arguments of ``sample`` from an experiment's ``sampling`` config (absent keys: defaults)."""
    keys = {"snr": "snr", "corrector_steps": "corrector_steps", "denoise": "denoise", "rtol": "rtol"}
    out = {arg: sampling[key] for key, arg in keys.items() if key in sampling}
    if "rtol" in out:
        out["atol"] = out["rtol"]
    return out


SAMPLER_KEYS = {"pc": ("snr", "corrector_steps"), "rk45": ("rtol",)}


def relevant(sampling: dict) -> dict:
    """The sampling config minus the keys its sampler ignores (so they trigger no reruns)."""
    unused = {k for name, keys in SAMPLER_KEYS.items() if name != sampling.get("sampler") for k in keys}
    return {k: v for k, v in sampling.items() if k not in unused}


class _Counted:
    """eps_fn at a scalar time, as a score, counting evaluations."""

    def __init__(self, eps_fn: EpsFn, sde: SDE, n: int, device) -> None:
        self.eps_fn, self.sde, self.n, self.device, self.nfe = eps_fn, sde, n, device, 0

    def eps(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.nfe += 1
        return self.eps_fn(x, torch.full((self.n,), float(t), device=self.device))

    def score(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return -self.eps(x, t) / self.std(t)

    def std(self, t: float) -> float:
        return float(self.sde.marginal(torch.tensor(float(t), dtype=torch.float64))[1])

    def ode_drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.tensor(float(t), dtype=torch.float64)
        return float(self.sde.drift_coef(tt)) * x - 0.5 * float(self.sde.g2(tt)) * self.score(x, t)


@torch.no_grad()
def sample(eps_fn: EpsFn, sde: SDE, shape: tuple[int, ...], steps: int, sampler: str = "em",
           grid: str = "uniform", generator: torch.Generator | None = None,
           device: torch.device | str = "cpu", *, snr: float = 0.16, corrector_steps: int = 1,
           denoise: bool = False, rtol: float = 1e-5, atol: float = 1e-5,
           x_init: torch.Tensor | None = None, info: dict | None = None,
           project: Callable[[torch.Tensor, float], torch.Tensor] | None = None) -> torch.Tensor:
    """Draw ``shape`` samples at t = eps (or x̂_0 with ``denoise``); ``x_init`` overrides the prior draw."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
    if project is not None and sampler not in PROJECTABLE:
        raise ValueError(f"sampler {sampler!r} cannot project onto measurements (a deterministic ODE "
                         f"solver); use one of {PROJECTABLE} for inverse problems")
    if project is None:
        project = _keep
    ts = time_grid(sde, steps, grid)
    f = _Counted(eps_fn, sde, shape[0], device)
    if x_init is None:
        x = sde.prior_std() * torch.randn(shape, generator=generator, device=device)
    else:
        x = x_init.to(device)

    def noise() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)

    if sampler == "rk45":
        x = _rk45(f, x, sde.T, sde.eps, rtol, atol)
    for i in range(steps if sampler != "rk45" else 0):
        t, t_next = float(ts[i]), float(ts[i + 1])
        dt = t - t_next
        last = i == steps - 1
        tt = torch.tensor(t, dtype=torch.float64)
        f_coef, g2 = float(sde.drift_coef(tt)), float(sde.g2(tt))
        if sampler in ("em", "pc"):
            if sampler == "pc":
                for _ in range(corrector_steps):
                    x = project(_langevin(f, x, t, snr, noise()), t)
            x = x - (f_coef * x - g2 * f.score(x, t)) * dt
            if not last:
                x = x + (g2 * dt) ** 0.5 * noise()
            x = project(x, t_next)
        elif sampler == "ancestral":
            x = project(_ancestral(f, sde, x, t, t_next, None if last else noise()), t_next)
        elif sampler == "pf_ode":
            x = x - f.ode_drift(x, t) * dt
        else:  # heun
            d = f.ode_drift(x, t)
            x_e = x - d * dt
            x = x - 0.5 * (d + f.ode_drift(x_e, t_next)) * dt
    if denoise:
        m, s = (float(v) for v in sde.marginal(torch.tensor(sde.eps, dtype=torch.float64)))
        x = (x - s * f.eps(x, sde.eps)) / m
    if info is not None:
        info["nfe"] = f.nfe
    return x


def _keep(x: torch.Tensor, t: float) -> torch.Tensor:
    return x


def _langevin(f: _Counted, x: torch.Tensor, t: float, snr: float, z: torch.Tensor) -> torch.Tensor:
    """One Langevin step at time t, step size 2 (snr |z| / |score|)² with batch-mean norms (Song et al.)."""
    grad = f.score(x, t)
    g_norm = grad.reshape(grad.shape[0], -1).norm(dim=1).mean()
    z_norm = z.reshape(z.shape[0], -1).norm(dim=1).mean()
    step = 2 * (snr * z_norm / g_norm.clamp_min(1e-30)) ** 2
    return x + step * grad + (2 * step).sqrt() * z


def _ancestral(f: _Counted, sde: SDE, x: torch.Tensor, t: float, t_next: float,
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


def _rk45(f: _Counted, x: torch.Tensor, t0: float, t1: float, rtol: float, atol: float) -> torch.Tensor:
    from scipy.integrate import solve_ivp

    shape, dtype, device = x.shape, x.dtype, x.device

    def rhs(t, y):
        xt = torch.from_numpy(y).to(device=device, dtype=dtype).view(shape)
        return f.ode_drift(xt, t).double().cpu().numpy().ravel()

    sol = solve_ivp(rhs, (t0, t1), x.double().cpu().numpy().ravel(), method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"RK45 failed on the probability-flow ODE: {sol.message}")
    return torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).to(device=device, dtype=dtype).view(shape)
