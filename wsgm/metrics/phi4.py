"""φ⁴ observables of fields at any cascade resolution: energy per site and magnetization.

Resolution k of a cascade is the orthonormal level-k wavelet low-pass x_k; its normalized field
2^-k x_k (for Haar exactly the 2^k×2^k block average of the fine field; for any orthonormal
wavelet on the periodic grid a smoothed, subsampled field with the same mean) is what the
observables read:

- magnetization m = mean of 2^-k x_k: the fine field's m at every k (the low-pass keeps the mean);
- energy per site e = E_β(2^-k x_k) / sites, the lattice energy of :mod:`wsgm.data.phi4` with the
  dataset's β on the coarse lattice. At k = 0 it is the physical energy per site; at k ≥ 1 it is a
  fixed statistic of the low-pass (a smooth function of its gradients and local values), compared
  between samples and data at the same k, not the energy of a renormalized theory.

The data side is summarized once per resolution in the reference file (quantiles of e and m, and
their moments); samples are compared with it by Wasserstein-1 distances between the
distributions (quantile matching) and by set-level observables: ⟨e⟩, std e, ⟨m⟩ (signed: Z₂
symmetric data has ⟨m⟩ ≈ 0, a model that breaks the symmetry shows it here), ⟨|m|⟩, the Binder
cumulant, and the two-point observables of :mod:`wsgm.metrics.correlations` (χ₂, ξ₂, G(r)), whose
data side is read from the reference's ``power2d`` and the stored ⟨m⟩ (``phi4_m``). Every value is
a pure function of the set of rows of x, so a bootstrap over the rows can re-call it.
"""

from __future__ import annotations

import numpy as np
import torch

from wsgm.data.phi4 import binder, energy, magnetization
from wsgm.metrics import correlations
from wsgm.metrics.marginal import quantiles, wasserstein1_quantiles

MOMENTS = ("energy_mean", "energy_std", "abs_magnetization", "binder")
M_MOMENTS = ("magnetization_mean", "magnetization_sq", "magnetization_4th")  # ⟨m⟩, ⟨m²⟩, ⟨m⁴⟩ (phi4_m)


def observables(x: np.ndarray | torch.Tensor, beta: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(energy per site, magnetization) per sample of level-k low-passes x (N×C×L×L)."""
    phi = torch.as_tensor(np.asarray(x), dtype=torch.float64) / 2**k
    sites = phi[0].numel()
    return (energy(phi, beta) / sites).numpy(), magnetization(phi).numpy()


def moments(e: np.ndarray, m: np.ndarray) -> dict[str, float]:
    return {"energy_mean": float(e.mean()), "energy_std": float(e.std()),
            "abs_magnetization": float(np.abs(m).mean()), "binder": binder(m)}


def summarize(e: np.ndarray, m: np.ndarray, beta: float, k: int) -> dict[str, np.ndarray]:
    """The reference entries of one resolution (names as :func:`wsgm.reference.load` reads)."""
    mom = moments(e, m)
    return {"phi4": np.array([beta, k], dtype=np.float64), "energy": quantiles(e),
            "magnetization": quantiles(m), "phi4_moments": np.array([mom[n] for n in MOMENTS]),
            "phi4_m": np.array([m.mean(), (m**2).mean(), (m**4).mean()], dtype=np.float64)}


def _two_point(power: np.ndarray, m_mean: float) -> tuple[dict[str, float], np.ndarray]:
    obs, g = correlations.observables(power, m_mean)
    return {"magnetization_mean": m_mean, **obs}, g


def score(x: np.ndarray, level: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(metrics, curves) of samples at one resolution against the data summary ``level`` (from
    :func:`summarize`, plus the reference's ``power2d`` for the data's two-point observables)."""
    beta, k = float(level["phi4"][0]), int(level["phi4"][1])
    e, m = observables(x, beta, k)
    data = dict(zip(MOMENTS, map(float, level["phi4_moments"])))
    metrics = {"energy_w1": wasserstein1_quantiles(quantiles(e), level["energy"]),
               "magnetization_w1": wasserstein1_quantiles(quantiles(m), level["magnetization"]),
               **moments(e, m)}
    obs, g = _two_point(correlations.half_power(x) / 4**k, float(m.mean()))
    metrics |= obs
    curves = {"two_point_samples": g.tolist()}
    if "power2d" in level:  # the data's ⟨m⟩: stored, or (reference files before phi4_m) the quantiles' mean
        m_data = float(level["phi4_m"][0]) if "phi4_m" in level else float(np.mean(level["magnetization"]))
        obs_data, g_data = _two_point(correlations.from_full(level["power2d"]) / 4**k, m_data)
        data |= obs_data
        metrics["two_point_error_max"] = float(np.abs(g - g_data).max() / g_data[0])
        curves["two_point_data"] = g_data.tolist()
    return metrics | {f"{n}_data": v for n, v in data.items()}, curves


def compare(x: np.ndarray, level: dict) -> dict[str, float]:
    """The metrics of :func:`score` (without the G(r) curves)."""
    return score(x, level)[0]
