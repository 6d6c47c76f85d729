"""Two-point observables of a set of periodic L×L fields: G(r), the susceptibility χ₂, ξ₂.

Everything is a set-level statistic of the rows (samples) of φ, read from two per-set means: the
per-frequency power P(p) = ⟨|φ̂(p)|²⟩/V (V = L² sites, φ̂ the unnormalized 2-D DFT, channels pooled)
and the signed mean magnetization ⟨m⟩. With the data, the same functions read the reference's
``power2d`` (the same P of the level-k low-pass x_k; φ = 2^-k x_k divides it by 4^k). Pure and
deterministic, so a bootstrap over the rows can re-call them.

- G(r) = ⟨(1/V)Σ_x φ(x)φ(x + r e_a)⟩ − ⟨m⟩², averaged over the two axes a, r = 0..L/2 (periodic):
  the inverse DFT of P minus ⟨m⟩², the connected two-point function;
- χ₂ = Σ_r G(r) over the whole lattice = P(0) − V⟨m⟩² = V(⟨m²⟩ − ⟨m⟩²) (one channel);
- F = P at the smallest non-zero momenta, (P(2π/L, 0) + P(0, 2π/L))/2;
- ξ₂ = sqrt(max(χ₂/F − 1, 0)) / (2 sin(π/L)), the second-moment correlation length.
"""

from __future__ import annotations

import math

import numpy as np


def half_power(phi: np.ndarray) -> np.ndarray:
    """P(p) = mean over rows and channels of |φ̂(p)|²/V on the rfft2 half-grid (L × L/2+1)."""
    phi = np.asarray(phi, dtype=np.float64)
    ft = np.fft.rfft2(phi.reshape(-1, *phi.shape[-2:]))
    return (ft.real**2 + ft.imag**2).mean(0) / (phi.shape[-1] * phi.shape[-2])


def from_full(power2d: np.ndarray) -> np.ndarray:
    """The half-grid of a full L×L power (as the reference stores it)."""
    return np.asarray(power2d, dtype=np.float64)[:, : power2d.shape[-1] // 2 + 1]


def two_point(power: np.ndarray, m_mean: float) -> np.ndarray:
    """Connected G(r), r = 0..L/2, averaged over both axes, from the half-grid power."""
    size = power.shape[0]
    g = np.fft.irfft2(power, s=(size, size))
    half = size // 2 + 1
    return 0.5 * (g[:half, 0] + g[0, :half]) - m_mean**2


def susceptibility(power: np.ndarray, m_mean: float) -> float:
    """χ₂ = P(0) − V⟨m⟩² (= V(⟨m²⟩ − ⟨m⟩²) for one channel)."""
    return float(power[0, 0] - power.shape[0] ** 2 * m_mean**2)


def structure_factor(power: np.ndarray) -> float:
    """F = (P(2π/L, 0) + P(0, 2π/L)) / 2."""
    return float(0.5 * (power[1, 0] + power[0, 1]))


def correlation_length(chi: float, f: float, size: int) -> float:
    """ξ₂ = sqrt(max(χ/F − 1, 0)) / (2 sin(π/L))."""
    return math.sqrt(max(chi / f - 1, 0.0)) / (2 * math.sin(math.pi / size)) if f > 0 else float("nan")


def observables(power: np.ndarray, m_mean: float) -> tuple[dict[str, float], np.ndarray]:
    """({"susceptibility", "correlation_length"}, G(r)) of a set with this power and ⟨m⟩."""
    chi = susceptibility(power, m_mean)
    xi = correlation_length(chi, structure_factor(power), power.shape[0])
    return {"susceptibility": chi, "correlation_length": xi}, two_point(power, m_mean)
