"""Forward processes dx = f(x, t) dt + g(t) dW with closed-form Gaussian marginals, by name.

``marginal(t)`` returns (m(t), s(t)) with x_t = m(t) x_0 + s(t) z. Each ``g(t)`` is the one that
matches its ``s(t)``: d(s²)/dt = -2 (d log m/dt) s² + g² holds for every process (tested).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SDE(ABC):
    T: float = 1.0
    eps: float = 1e-3

    @abstractmethod
    def log_mean(self, t: torch.Tensor) -> torch.Tensor:
        """log m(t)"""

    @abstractmethod
    def g2(self, t: torch.Tensor) -> torch.Tensor:
        """g(t)^2"""

    @abstractmethod
    def var(self, t: torch.Tensor) -> torch.Tensor:
        """s(t)^2"""

    @abstractmethod
    def drift_coef(self, t: torch.Tensor) -> torch.Tensor:
        """f(x, t) = drift_coef(t) * x (all processes here are linear)."""

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.exp(self.log_mean(t)), torch.sqrt(self.var(t))

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _bcast(self.drift_coef(t), x) * x, torch.sqrt(self.g2(t))

    def prior_std(self) -> float:
        """Std of x_T for unit-variance data (the stages normalize every band to unit variance)."""
        m, s = self.marginal(torch.tensor(self.T, dtype=torch.float64))
        return float(torch.sqrt(m**2 + s**2))


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


@dataclass(frozen=True)
class VP(SDE):
    """Song et al.'s variance-preserving SDE, beta(t) = beta_min + t (beta_max - beta_min)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def g2(self, t):
        return self.beta(t)

    def var(self, t):
        return -torch.expm1(2 * self.log_mean(t))


@dataclass(frozen=True)
class SubVP(VP):
    """Song et al.'s sub-VP SDE: same drift as VP, g² = beta (1 - exp(-2 ∫beta))."""

    def g2(self, t):
        return self.beta(t) * -torch.expm1(4 * self.log_mean(t))

    def var(self, t):
        return torch.expm1(2 * self.log_mean(t)) ** 2


@dataclass(frozen=True)
class VE(SDE):
    """Song et al.'s variance-exploding SDE, sigma(t) = sigma_min (sigma_max/sigma_min)^t.

    The exact marginal variance is sigma(t)² - sigma_min² (the integral of g²), not sigma(t)².
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def log_mean(self, t):
        return torch.zeros_like(t)

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def g2(self, t):
        return self.sigma(t) ** 2 * 2 * math.log(self.sigma_max / self.sigma_min)

    def var(self, t):
        return self.sigma(t) ** 2 - self.sigma_min**2


@dataclass(frozen=True)
class OU(SDE):
    """Ornstein–Uhlenbeck with constant beta, dx = -beta/2 x dt + sqrt(beta) dW (WSGM paper)."""

    beta: float = 2.0

    def log_mean(self, t):
        return -0.5 * self.beta * t

    def drift_coef(self, t):
        return torch.full_like(t, -0.5 * self.beta)

    def g2(self, t):
        return torch.full_like(t, self.beta)

    def var(self, t):
        return -torch.expm1(-self.beta * t)


REGISTRY: dict[str, tuple[type[SDE], tuple[str, ...]]] = {
    "vp": (VP, ("beta_min", "beta_max")),
    "subvp": (SubVP, ("beta_min", "beta_max")),
    "ve": (VE, ("sigma_min", "sigma_max")),
    "ou": (OU, ("beta",)),
}


def relevant(cfg: dict) -> dict:
    """The config keys that the named process actually uses (so others trigger no reruns)."""
    cls, keys = REGISTRY[cfg["name"]]
    return {"name": cfg["name"], "T": cfg["T"], "eps": cfg["eps"], **{k: cfg[k] for k in keys}}


def build(cfg: dict) -> SDE:
    cls, keys = REGISTRY[cfg["name"]]
    return cls(T=cfg["T"], eps=cfg["eps"], **{k: cfg[k] for k in keys})
