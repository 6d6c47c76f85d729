"""Pixel-marginal statistics: moments and the Wasserstein-1 distance between histograms."""

from __future__ import annotations

import numpy as np

QUANTILES = 1000


def quantiles(a: np.ndarray, n: int = QUANTILES) -> np.ndarray:
    """The n mid-point quantiles (i + ½)/n of the values of ``a``."""
    return np.quantile(np.asarray(a, dtype=np.float64).ravel(), (np.arange(n) + 0.5) / n)


def wasserstein1_quantiles(qa: np.ndarray, qb: np.ndarray) -> float:
    """W1 between two distributions given by their mid-point quantiles (quantile matching)."""
    return float(np.mean(np.abs(qa - qb)))


def wasserstein1(a: np.ndarray, b: np.ndarray, quantiles_: int = QUANTILES) -> float:
    """W1 between the empirical distributions of two sets of values (by quantile matching)."""
    return wasserstein1_quantiles(quantiles(a, quantiles_), quantiles(b, quantiles_))


def marginal_metrics(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {
        "marginal_w1": wasserstein1(x, ref),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "mean_data": float(ref.mean()),
        "std_data": float(ref.std()),
    }
