"""Registry of reverse-time solvers (``REGISTRY``, by name, as score_sde's predictors).

A solver is a function ``run(ctx, x) -> x`` taking the prior draw at t = T to t = eps along
``ctx.ts``, registered with ``@register(name, nfe_per_step=..., projectable=..., keys=...,
noise=...)``:

- ``nfe_per_step``: network evaluations per step (0: adaptive, ``steps`` unused);
- ``projectable``: it applies ``ctx.project(x, t)`` to the state after every step (inverse
  problems, ``wsgm.inverse``);
- ``keys``: the ``sampling`` config keys it reads (the others do not trigger reruns);
- ``noise(opts)``: the weight η² of the reverse SDE in its continuous-time limit,
  dx = [f x - (1 + η²)/2 g² ∇log p] dt + η g dW̄ (0: the probability-flow ODE, 1: the reverse
  SDE); ``wsgm.theory`` uses it for the reference law;
- ``batch_invariant`` (default True): each sample's arithmetic is its own (no batch-wide step
  control or norm), so with per-sample noise (``wsgm.noise.PerSample``) a sample does not depend
  on the batch it is computed in; False (rk45) keeps ``batch_size`` a result parameter and
  refuses ``sampling.shards`` > 1.

Modules: ``classic`` (em, ancestral, pc, pf_ode, heun, rk45), ``exponential`` (ddim,
dpmpp_2m: exponential integrators in λ, data prediction), ``edm`` (Karras et al.'s Heun).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from wsgm.noise import Noise
from wsgm.noise import source as noise_source
from wsgm.sde import SDE

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Solver:
    name: str
    run: Callable[["Context", torch.Tensor], torch.Tensor]
    nfe_per_step: int
    projectable: bool
    keys: tuple[str, ...]
    noise: Callable[[dict], float]
    doc: str = ""
    batch_invariant: bool = True


REGISTRY: dict[str, Solver] = {}


def register(name: str, *, nfe_per_step: int, projectable: bool, keys: tuple[str, ...] = (),
             noise: float | Callable[[dict], float] = 0.0, batch_invariant: bool = True):
    def deco(fn):
        level = noise if callable(noise) else (lambda opts, v=float(noise): v)
        REGISTRY[name] = Solver(name, fn, nfe_per_step, projectable, tuple(keys), level,
                                " ".join((fn.__doc__ or "").split()), batch_invariant)
        return fn
    return deco


def get(name: str) -> Solver:
    if name not in REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; use one of {tuple(REGISTRY)}")
    return REGISTRY[name]


class Counted:
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


@dataclass
class Context:
    """What a solver sees: the counted model ``f``, the process, the grid ``ts`` (floats, T → eps),
    the projection hook, the solver's options and the noise source (``wsgm.noise``: shared, or
    one generator per sample index; every draw goes through :meth:`noise`)."""

    f: Counted
    sde: SDE
    ts: list[float]
    project: Callable[[torch.Tensor, float], torch.Tensor]
    opts: dict = field(default_factory=dict)
    source: Noise | None = None
    device: torch.device | str = "cpu"

    @property
    def steps(self) -> int:
        return len(self.ts) - 1

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        return noise_source(self.source).randn(like.shape, self.device, like.dtype)

    def marginals(self) -> list[tuple[float, float]]:
        """(m, s) at every grid time (one vectorized float64 call)."""
        m, s = self.sde.marginal(torch.tensor(self.ts, dtype=torch.float64))
        return list(zip(m.tolist(), s.tolist()))


def log_snr(m: float, s: float) -> float:
    return math.log(m) - math.log(s)


# registration, in this order (the order of SAMPLERS)
from wsgm.solvers import classic  # noqa: E402,F401,I001
from wsgm.solvers import exponential  # noqa: E402,F401,I001
from wsgm.solvers import edm  # noqa: E402,F401,I001
