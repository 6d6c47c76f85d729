"""95% intervals of the metrics: percentile bootstrap over the scored images.

Every scalar metric of a set of images (samples, or the held-out floor set) is recomputed on B
resamples of its images drawn with replacement (the same B index sets for every metric of a set,
so the draws are joint); the reference statistics stay fixed: they are shared by every experiment
compared, so their noise cancels from comparisons, and an interval says how much the number would
move with another draw of the same number of samples. The interval is the (α/2, 1 − α/2)
percentiles of the draws, after centring them on the point value (:func:`centre`: a resample
repeats images, which biases set distances such as FID upward).

Two quantities are decided from draws, never from point values:

- **reaches the floor**: the interval of metric − floor (samples and floor set are independent
  sets, so their draws pair at random: :func:`difference_interval`) has its lower end ≤ 0, i.e.
  the samples are not significantly worse than a real held-out set of the same size;
- **A differs from B** (two experiments, the report): the interval of A − B excludes 0.

FID and KID are bootstrapped on the features (extracted once), with the closed forms below; the
other metrics by calling their function on the resampled images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

RULE = ("reaches the floor: the 95% percentile-bootstrap interval of (metric − floor) has its lower end ≤ 0 "
        "(samples and held-out floor set resampled independently, reference fixed)")


def indices(n: int, draws: int, seed: int) -> np.ndarray:
    """``draws`` × n resampling indices (with replacement), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def interval(draws: np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval [lo, hi] of bootstrap draws (NaN draws dropped)."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        return [float("nan"), float("nan")]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    return [float(lo), float(hi)]


def centre(draws: dict[str, np.ndarray], values: dict) -> dict[str, np.ndarray]:
    """The draws shifted so their mean is the point value: removes the bootstrap's own bias (a
    resample repeats images, so it looks like a smaller set: FID and the W1 distances come out
    larger on resamples than on the set itself, and the plain percentile interval of a small set
    can even miss the point value). The shape of the distribution, hence the width, is kept."""
    out = {}
    for m, d in draws.items():
        d = np.asarray(d, dtype=np.float64)
        finite = d[np.isfinite(d)]
        out[m] = d - finite.mean() + float(values[m]) if len(finite) and m in values else d
    return out


def difference_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> list[float]:
    """Interval of A − B from the draws of two independent bootstraps (paired in draw order, which
    is a random pairing since the index sets were drawn independently)."""
    m = min(len(a), len(b))
    return interval(np.asarray(a[:m], dtype=np.float64) - np.asarray(b[:m], dtype=np.float64), level)


def counts(idx: np.ndarray, n: int) -> np.ndarray:
    """B×n multiplicities of the images in each resample (a resample = its counts)."""
    return np.stack([np.bincount(rows, minlength=n) for rows in idx]).astype(np.float64)


def metric_draws(fn: Callable[[np.ndarray], dict], x: np.ndarray, idx: np.ndarray,
                 names: list[str]) -> dict[str, np.ndarray]:
    """Draws of the scalar metrics ``names`` that ``fn(images)`` returns, one per index row (the
    generic path: the metric recomputed on each resample)."""
    out = {m: np.empty(len(idx)) for m in names}
    for b, rows in enumerate(idx):
        got = fn(x[rows])
        for m in names:
            out[m][b] = got.get(m, np.nan)
    return out


def fid_draws(feats: torch.Tensor, mu_ref: np.ndarray, sigma_ref: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """FID of each resample of the features (n×d) against fixed reference statistics.

    FID = |μ − μ_r|² + tr Σ + tr Σ_r − 2 tr (Σ_r^{1/2} Σ Σ_r^{1/2})^{1/2}, with the resample's
    mean μ and covariance Σ (n − 1 normalization, as torch-fidelity) from its counts w:
    μ = Σ_i w_i x_i / n, Σ = (Σ_i w_i x_i x_iᵀ − n μμᵀ)/(n − 1). For d ≤ n all resamples are
    done at once (batched d×d eigenvalues); for d > n (Inception features of small sets) the
    square-root trace is Σ √eig of the n×n matrix Xc Σ_r Xcᵀ/(n − 1), same non-zero spectrum."""
    x = feats.to(torch.float64)
    n, d = x.shape
    mu_r = torch.as_tensor(np.asarray(mu_ref), dtype=torch.float64).reshape(-1)
    s_r = torch.as_tensor(np.atleast_2d(sigma_ref), dtype=torch.float64)
    tr_r = float(torch.trace(s_r))
    w = torch.as_tensor(counts(idx, n))
    mu = w @ x / n  # B×d
    if d <= n:
        ev, v = torch.linalg.eigh(s_r)
        root_r = (v * ev.clamp(min=0).sqrt()) @ v.T
        out = np.empty(len(idx))
        for start in range(0, len(idx), 32):  # B×d×d in blocks: bounded memory for large d
            wb, mb = w[start:start + 32], mu[start:start + 32]
            second = torch.einsum("bn,nd,ne->bde", wb, x, x)
            sigma = (second - n * mb[:, :, None] * mb[:, None, :]) / (n - 1)
            m = root_r @ sigma @ root_r
            eig = torch.linalg.eigvalsh((m + m.transpose(1, 2)) / 2)
            tr_sigma = torch.diagonal(sigma, dim1=1, dim2=2).sum(1)
            cross = eig.clamp(min=0).sqrt().sum(1)
            val = ((mb - mu_r) ** 2).sum(1) + tr_sigma + tr_r - 2 * cross
            out[start:start + len(wb)] = val.clamp(min=0).numpy()
        return out
    gram = x @ s_r @ x.T  # n×n: resampled, then centred
    out = np.empty(len(idx))
    for b, rows in enumerate(idx):
        r = torch.as_tensor(rows)
        xc = x[r] - mu[b]
        g = gram[r][:, r]
        g = g - g.mean(0, keepdim=True) - g.mean(1, keepdim=True) + g.mean()
        eig = torch.linalg.eigvalsh((g + g.T) / 2 / (n - 1))
        cross = float(eig.clamp(min=0).sqrt().sum())
        out[b] = max(float(((mu[b] - mu_r) ** 2).sum()) + float((xc * xc).sum() / (n - 1)) + tr_r - 2 * cross, 0.0)
    return out


def kid_draws(feats: torch.Tensor, ref: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """Unbiased MMD² (the quantity KID's subset mean estimates) with KID's kernel
    k(x, y) = (xᵀy/d + 1)³, for each resample of the sample features; reference fixed. With the
    resample's counts w, its pairs of distinct positions sum to wᵀKw − Σ_i w_i k(x_i, x_i): a
    repeated image pairs with its copies, as in any bootstrap of a U-statistic."""
    x, r = feats.to(torch.float64), ref.to(torch.float64)
    n, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kxr = ((x @ r.T / d + 1) ** 3).mean(1)  # per-sample mean kernel with the reference
    m = len(r)
    total = 0.0
    for start in range(0, m, 2048):  # blocks: a 10⁴-image reference never needs its m×m kernel at once
        block = r[start:start + 2048]
        k = (block @ r.T / d + 1) ** 3
        total += float(k.sum()) - float(((block * block).sum(1) / d + 1).pow(3).sum())
    rr = total / (m * (m - 1))
    w = torch.as_tensor(counts(idx, n))
    diag = torch.diagonal(kxx)
    # pairs of distinct positions of the resample: wᵀKw counts each image with itself w_i² times,
    # of which w_i are the diagonal (same position) and w_i(w_i − 1) are distinct copies
    xx = (((w @ kxx) * w).sum(1) - w @ diag) / (n * (n - 1))
    return (xx + rr - 2 * (w @ kxr) / n).numpy()
