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
distributions (quantile matching) and by moments: ⟨e⟩, std e, ⟨|m|⟩ and the Binder cumulant.
"""

from __future__ import annotations

import numpy as np
import torch

from wsgm.data.phi4 import binder, energy, magnetization
from wsgm.metrics.marginal import quantiles, wasserstein1_quantiles

MOMENTS = ("energy_mean", "energy_std", "abs_magnetization", "binder")


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
            "magnetization": quantiles(m), "phi4_moments": np.array([mom[n] for n in MOMENTS])}


def compare(x: np.ndarray, level: dict) -> dict[str, float]:
    """Samples at one resolution against the data summary ``level`` (from :func:`summarize`)."""
    beta, k = float(level["phi4"][0]), int(level["phi4"][1])
    e, m = observables(x, beta, k)
    data = dict(zip(MOMENTS, map(float, level["phi4_moments"])))
    return {"energy_w1": wasserstein1_quantiles(quantiles(e), level["energy"]),
            "magnetization_w1": wasserstein1_quantiles(quantiles(m), level["magnetization"]),
            **moments(e, m), **{f"{n}_data": v for n, v in data.items()}}
