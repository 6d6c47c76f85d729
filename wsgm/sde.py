"""Forward processes dx = f(x, t) dt + g(t) dW with closed-form Gaussian marginals, by name.

``marginal(t)`` returns (m(t), s(t)) with x_t = m(t) x_0 + s(t) z. Each ``g(t)`` is the one that
matches its ``s(t)``: d(s²)/dt = -2 (d log m/dt) s² + g² holds for every process (tested).

One time convention: every schedule is defined on [0, T] through t/T, so its end value (beta_max,
sigma_max, (beta_b + beta_a)^rho) is reached at t = T and T = 1 is the literature's form. For the
VP family beta(t) = b(t/T), so ∫_0^T beta = T ∫_0^1 b: a longer T is a longer (noisier) process
with the same shape. ``ou`` is the exception: its beta is constant, so T is simply the horizon.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class SDE(ABC):
    """A linear forward process. Its parameters have no defaults here: the config schema
    (``wsgm/schemas/config.schema.yaml``, section ``sde``) is their one source, and
    ``build`` takes a config section with every key filled in."""

    T: float
    eps: float
    time_law: str = "uniform"  # training times: uniform on [eps, T], quadratic (eps + (T-eps) u²) or edm
    p_mean: float | None = None  # edm: ln σ ~ N(p_mean, p_std²), truncated to [σ(eps), σ(T)]
    p_std: float | None = None

    def __post_init__(self) -> None:
        if self.time_law not in TIME_LAWS:
            raise ValueError(f"unknown time law {self.time_law!r}; use one of {TIME_LAWS}")
        if self.time_law == "edm" and (self.p_mean is None or self.p_std is None or self.p_std <= 0):
            raise ValueError("time_law edm needs p_mean and p_std > 0")

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

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) = s(t) / m(t) = exp(−λ(t)): x_t / m = x_0 + σ z (EDM's noise level); increasing in t."""
        return torch.sqrt(self.var(t)) * torch.exp(-self.log_mean(t))

    def time_of_noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """The t in [eps, T] with σ(t) = ``sigma`` (σ outside [σ(eps), σ(T)] gives the nearer end)."""
        return self.time_of_log_snr(-torch.log(torch.as_tensor(sigma, dtype=torch.float64)))

    def sample_time(self, u: torch.Tensor) -> torch.Tensor:
        """Training-time law: maps u ~ U[0, 1) to t in [eps, T]; quadratic matches the quadratic grid;
        edm draws ln σ ~ N(p_mean, p_std²) truncated to [σ(eps), σ(T)] (inverse CDF of u) and
        returns the t of that noise level."""
        if self.time_law == "edm":
            return self.time_of_noise_level(self._edm_sigma(u.double()))
        return self.eps + (self.T - self.eps) * (u**2 if self.time_law == "quadratic" else u)

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """Half log-SNR λ(t) = log(m(t)/s(t)); decreasing in t for every process here."""
        return self.log_mean(t) - 0.5 * torch.log(self.var(t))

    def time_of_log_snr(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of ``log_snr`` on [eps, T] (clamped there), by float64 bisection: one method for
        every process, closed form or not (64 halvings: exact to rounding)."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        lo = torch.full_like(lam, float(self.eps))
        hi = torch.full_like(lam, float(self.T))
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            early = self.log_snr(mid) > lam  # λ too high: t lies later
            lo, hi = torch.where(early, mid, lo), torch.where(early, hi, mid)
        return 0.5 * (lo + hi)

    def _edm_sigma(self, u: torch.Tensor) -> torch.Tensor:
        ends = self.noise_level(torch.tensor([self.eps, self.T], dtype=torch.float64))
        a, b = ((torch.log(ends) - self.p_mean) / self.p_std).tolist()
        sign = -1.0 if a > 0 else 1.0  # in the upper tail work with the survival function (precision)
        lo, hi = torch.special.ndtr(torch.tensor([sign * a, sign * b], dtype=torch.float64))
        q = torch.special.ndtri((lo + u * (hi - lo)).clamp(min=torch.finfo(torch.float64).tiny))
        return torch.exp(self.p_mean + self.p_std * sign * q)

    def prior_std(self) -> float:
        """Std of x_T for unit-variance data (the stages normalize every band to unit variance)."""
        m, s = self.marginal(torch.tensor(self.T, dtype=torch.float64))
        return float(torch.sqrt(m**2 + s**2))


TIME_LAWS = ("uniform", "quadratic", "edm")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


@dataclass(frozen=True, kw_only=True)
class _VariancePreserving(SDE):
    """dx = -beta(t)/2 x dt + sqrt(beta(t)) dW for a schedule ``beta`` and log m = -1/2 ∫beta."""

    @abstractmethod
    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t)"""

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def g2(self, t):
        return self.beta(t)

    def var(self, t):
        return -torch.expm1(2 * self.log_mean(t))


@dataclass(frozen=True, kw_only=True)
class VP(_VariancePreserving):
    """Song et al.'s variance-preserving SDE, beta(t) = beta_min + (t/T) (beta_max - beta_min)."""

    beta_min: float
    beta_max: float

    def beta(self, t):
        return self.beta_min + (t / self.T) * (self.beta_max - self.beta_min)

    def log_mean(self, t):  # -1/2 ∫_0^t beta
        return -0.25 * t**2 / self.T * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min


@dataclass(frozen=True, kw_only=True)
class SubVP(VP):
    """Song et al.'s sub-VP SDE: same drift as VP, g² = beta (1 - exp(-2 ∫beta))."""

    def g2(self, t):
        return self.beta(t) * -torch.expm1(4 * self.log_mean(t))

    def var(self, t):
        return torch.expm1(2 * self.log_mean(t)) ** 2


@dataclass(frozen=True, kw_only=True)
class VE(SDE):
    """Song et al.'s variance-exploding SDE, sigma(t) = sigma_min (sigma_max/sigma_min)^(t/T).

    The exact marginal variance is sigma(t)² - sigma_min² (the integral of g²), not sigma(t)².
    """

    sigma_min: float
    sigma_max: float

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** (t / self.T)

    def log_mean(self, t):
        return torch.zeros_like(t)

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def g2(self, t):
        return self.sigma(t) ** 2 * 2 * math.log(self.sigma_max / self.sigma_min) / self.T

    def var(self, t):
        return self.sigma(t) ** 2 - self.sigma_min**2


@dataclass(frozen=True, kw_only=True)
class OU(SDE):
    """Ornstein–Uhlenbeck with constant beta, dx = -beta/2 x dt + sqrt(beta) dW (WSGM paper).

    beta has no shape to stretch, so t is absolute and T is the horizon (T = 5 in the paper)."""

    beta: float

    def log_mean(self, t):
        return -0.5 * self.beta * t

    def drift_coef(self, t):
        return torch.full_like(t, -0.5 * self.beta)

    def g2(self, t):
        return torch.full_like(t, self.beta)

    def var(self, t):
        return -torch.expm1(-self.beta * t)


@dataclass(frozen=True, kw_only=True)
class VPExp(VP):
    """Gao–Nguyen–Zhu VP with exponential beta(t) = beta_min (beta_max/beta_min)^(t/T)."""

    def _rate(self):
        return math.log(self.beta_max / self.beta_min) / self.T

    def beta(self, t):
        return self.beta_min * torch.exp(self._rate() * t)

    def log_mean(self, t):  # -1/2 ∫_0^t beta
        return -0.5 * self.beta_min * torch.expm1(self._rate() * t) / self._rate()


@dataclass(frozen=True, kw_only=True)
class VPPower(_VariancePreserving):
    """Gao–Nguyen–Zhu VP with beta(t) = (beta_b + beta_a t/T)^rho (rho = 1: Song's linear VP).

    Gao et al. write (b + a t)^rho with a = (beta_max^(1/rho) - beta_min^(1/rho))/T; here the slope
    is per unit of t/T (beta_a = a T), so beta goes from beta_b^rho at 0 to (beta_b + beta_a)^rho at
    T whatever T, as every other schedule does (T = 1: the two forms agree)."""

    beta_a: float
    beta_b: float
    rho: float

    def beta(self, t):
        return (self.beta_b + self.beta_a * t / self.T) ** self.rho

    def log_mean(self, t):  # -1/2 ∫_0^t beta
        r = self.rho + 1
        return -0.5 * self.T * ((self.beta_b + self.beta_a * t / self.T) ** r - self.beta_b**r) / (self.beta_a * r)


@dataclass(frozen=True, kw_only=True)
class VELinear(SDE):
    """VE with constant g: sigma(t)² = sigma_max² t / T, g² = sigma_max² / T (Gao–Nguyen–Zhu)."""

    sigma_max: float

    def log_mean(self, t):
        return torch.zeros_like(t)

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def g2(self, t):
        return torch.full_like(t, self.sigma_max**2 / self.T)

    def var(self, t):
        return self.sigma_max**2 * t / self.T


@dataclass(frozen=True, kw_only=True)
class VEQuadratic(VELinear):
    """VE with g = sqrt(2 c t): sigma(t)² = c t², c = sigma_max² / T² (Gao–Nguyen–Zhu)."""

    def g2(self, t):
        return 2 * self.sigma_max**2 * t / self.T**2

    def var(self, t):
        return self.sigma_max**2 * (t / self.T) ** 2


@dataclass(frozen=True, kw_only=True)
class VEPower(VELinear):
    """VE with rho-power sigma(t) = (sigma_min^(1/rho) + t/T (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho.

    g² = d sigma²/dt = 2 rho sigma^(2 - 1/rho) (sigma_max^(1/rho) - sigma_min^(1/rho)) / T, and the
    marginal variance is sigma(t)² - sigma_min² (zero at t = 0).
    """

    sigma_min: float
    rho: float

    def _span(self):
        return (self.sigma_max ** (1 / self.rho) - self.sigma_min ** (1 / self.rho)) / self.T

    def sigma(self, t):
        return (self.sigma_min ** (1 / self.rho) + t * self._span()) ** self.rho

    def g2(self, t):
        return 2 * self.rho * self.sigma(t) ** (2 - 1 / self.rho) * self._span()

    def var(self, t):
        return self.sigma(t) ** 2 - self.sigma_min**2


REGISTRY: dict[str, tuple[type[SDE], tuple[str, ...]]] = {
    "vp": (VP, ("beta_min", "beta_max")),
    "subvp": (SubVP, ("beta_min", "beta_max")),
    "ve": (VE, ("sigma_min", "sigma_max")),
    "ou": (OU, ("beta",)),
    "vp_exp": (VPExp, ("beta_min", "beta_max")),
    "vp_power": (VPPower, ("beta_a", "beta_b", "rho")),
    "ve_linear": (VELinear, ("sigma_max",)),
    "ve_quadratic": (VEQuadratic, ("sigma_max",)),
    "ve_power": (VEPower, ("sigma_min", "sigma_max", "rho")),
}


def relevant(cfg: dict) -> dict:
    """The config keys that the named process actually uses (so others trigger no reruns)."""
    cls, keys = REGISTRY[cfg["name"]]
    out = {"name": cfg["name"], "T": cfg["T"], "eps": cfg["eps"], **{k: cfg[k] for k in keys}}
    if cfg.get("time_law", "uniform") != "uniform":
        out["time_law"] = cfg["time_law"]
    if out.get("time_law") == "edm":
        out["p_mean"], out["p_std"] = cfg["p_mean"], cfg["p_std"]
    return out


def build(cfg: dict) -> SDE:
    cls, keys = REGISTRY[cfg["name"]]
    law = cfg.get("time_law", "uniform")
    edm = {"p_mean": cfg["p_mean"], "p_std": cfg["p_std"]} if law == "edm" else {}
    return cls(T=cfg["T"], eps=cfg["eps"], time_law=law, **edm, **{k: cfg[k] for k in keys})
