"""Reverse-time sampling on a time grid from T to eps, driven by an ε-predictor.

``eps_fn(x, t)`` is an epsilon-predictor (a network or an exact formula); the score is
``-eps / s(t)``. The samplers are the registry ``wsgm.solvers.REGISTRY`` (``SAMPLERS``, in order):

- ``em``, ``ancestral``, ``pc`` (reverse SDE), ``pf_ode``, ``heun``, ``rk45`` (probability-flow
  ODE): ``wsgm.solvers.classic``;
- ``ddim`` (η: ``eta``), ``dpmpp_2m`` (DPM-Solver++ 2M): exponential integrators in the half
  log-SNR λ = log(m/s), ``wsgm.solvers.exponential``;
- ``edm``: Karras et al.'s Heun sampler in σ = s/m with optional churn, ``wsgm.solvers.edm``.
Time grids (``grid``): ``wsgm.time_grids`` (uniform, quadratic, karras with ``rho``, logsnr).

``project(x, t)`` (inverse problems, ``wsgm.inverse``) is applied to the state after every
predictor and every corrector step, with t the time the state has reached (Song et al. 2021,
appendix I); the samplers in ``PROJECTABLE`` support it, the others refuse it.

``denoise`` adds a final Tweedie step x̂_0 = (x - s ε)/m at t = eps (one more evaluation). The
number of function evaluations is written to ``info['nfe']`` when an ``info`` dict is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wsgm import noise, solvers
from wsgm.noise import Noise
from wsgm.sde import SDE
from wsgm.solvers import Context, Counted, EpsFn
from wsgm.time_grids import GRIDS, time_grid

__all__ = ["EpsFn", "GRIDS", "PROJECTABLE", "SAMPLERS", "options", "relevant", "sample", "time_grid"]

SAMPLERS = tuple(solvers.REGISTRY)
PROJECTABLE = tuple(name for name, s in solvers.REGISTRY.items() if s.projectable)

# sampling config key -> keyword of ``sample``
_OPTION_KEYS = {"snr": "snr", "corrector_steps": "corrector_steps", "denoise": "denoise", "rtol": "rtol",
                "rho": "rho", "eta": "eta", "churn": "churn", "churn_min": "churn_min",
                "churn_max": "churn_max", "churn_noise": "churn_noise"}
SAMPLER_KEYS = {name: s.keys for name, s in solvers.REGISTRY.items() if s.keys}
GRID_KEYS = {"karras": ("rho",)}


def options(sampling: dict) -> dict:
    """Keyword arguments of ``sample`` from an experiment's ``sampling`` config (absent keys: defaults)."""
    out = {arg: sampling[key] for key, arg in _OPTION_KEYS.items() if key in sampling}
    if "rtol" in out:
        out["atol"] = out["rtol"]
    return out


def relevant(sampling: dict) -> dict:
    """The sampling config minus the keys its sampler and grid ignore (so they trigger no reruns)."""
    unused = {k for name, keys in SAMPLER_KEYS.items() if name != sampling.get("sampler") for k in keys}
    unused |= {k for name, keys in GRID_KEYS.items() if name != sampling.get("time_grid") for k in keys}
    return {k: v for k, v in sampling.items() if k not in unused}


@torch.no_grad()
def sample(eps_fn: EpsFn, sde: SDE, shape: tuple[int, ...], steps: int, sampler: str = "em",
           grid: str = "uniform", generator: Noise | torch.Generator | None = None,
           device: torch.device | str = "cpu", *, snr: float = 0.16, corrector_steps: int = 1,
           denoise: bool = False, rtol: float = 1e-5, atol: float = 1e-5, rho: float = 7.0,
           eta: float = 0.0, churn: float = 0.0, churn_min: float = 0.0, churn_max: float | None = None,
           churn_noise: float = 1.0, x_init: torch.Tensor | None = None, info: dict | None = None,
           project: Callable[[torch.Tensor, float], torch.Tensor] | None = None) -> torch.Tensor:
    """Draw ``shape`` samples at t = eps (or x̂_0 with ``denoise``); ``x_init`` overrides the prior draw.

    ``generator``: the noise source of every draw (``wsgm.noise``: a ``PerSample`` source makes each
    sample independent of its batch), or a ``torch.Generator`` shared by the batch."""
    solver = solvers.get(sampler)
    if project is not None and not solver.projectable:
        raise ValueError(f"sampler {sampler!r} cannot project onto measurements (a deterministic ODE "
                         f"solver); use one of {PROJECTABLE} for inverse problems")
    f = Counted(eps_fn, sde, shape[0], device)
    source = noise.source(generator)
    if x_init is None:
        x = sde.prior_std() * source.randn(shape, device)
    else:
        x = x_init.to(device)
    ts = [sde.T] if solver.nfe_per_step == 0 else time_grid(sde, steps, grid, rho).tolist()
    opts = {"snr": snr, "corrector_steps": corrector_steps, "rtol": rtol, "atol": atol, "eta": eta,
            "churn": churn, "churn_min": churn_min, "churn_max": churn_max, "churn_noise": churn_noise}
    ctx = Context(f, sde, ts, _keep if project is None else project, opts, source, device)
    x = solver.run(ctx, x)
    if denoise:
        m, s = (float(v) for v in sde.marginal(torch.tensor(sde.eps, dtype=torch.float64)))
        x = (x - s * f.eps(x, sde.eps)) / m
    if info is not None:
        info["nfe"] = f.nfe
    return x


def _keep(x: torch.Tensor, t: float) -> torch.Tensor:
    return x
