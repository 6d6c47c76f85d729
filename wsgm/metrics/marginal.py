"""Pixel-marginal statistics: moments and the Wasserstein-1 distance between histograms."""

from __future__ import annotations

import numpy as np


def wasserstein1(a: np.ndarray, b: np.ndarray, quantiles: int = 1000) -> float:
    """W1 between the empirical distributions of two sets of values (by quantile matching)."""
    q = (np.arange(quantiles) + 0.5) / quantiles
    return float(np.mean(np.abs(np.quantile(a.ravel(), q) - np.quantile(b.ravel(), q))))


def marginal_metrics(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {
        "marginal_w1": wasserstein1(x, ref),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "mean_data": float(ref.mean()),
        "std_data": float(ref.std()),
    }
