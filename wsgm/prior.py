"""Does the forward process reach its prior? The largest-variance mode of each normalized band.

Every band is normalized to unit pixel variance, but not to unit variance in every direction: for
a stationary field the covariance is diagonal in Fourier space and the DC mode (the image mean,
times √(H·W)) can carry hundreds of times the pixel variance. At the final time T the forward
marginal in a direction of data variance λ is N(0, m(T)² λ + s(T)²), while sampling starts from the
prior N(0, m(T)² + s(T)²) (:meth:`wsgm.sde.SDE.prior_std`). The relative excess

    r = m(T)² λ_max / (m(T)² + s(T)²)

is what the prior misses in the worst direction: with the exact score the probability-flow ODE
maps that mode linearly, so its sampled variance comes out too small by the factor 1/(1 + r)
(the SDE contracts part of it), and the KL between the forward marginal at T and the prior in that
direction is ½(r − log(1 + r)) ≈ r²/4. :data:`THRESHOLD` = 1e-2 flags a process that leaves more
than a 1 % error on the largest mode's variance before the network makes any error: below the
≈ 6 % (√(2/512)) sampling noise of a variance estimated from 512 samples, but a bias that does not
average away, and the cheapest error to remove (raise beta_max, T or sigma_max).

λ_max comes from the exact spectrum for simulated Gaussian fields (:func:`exact_max_mode_variance`,
checked at config load) and from the data in the decompose stage otherwise
(:func:`power_sums` / :func:`max_mode_variance`, stored as the store's ``max_mode_variance``
attribute, read by train): there it is the largest normalized power over frequencies and channels,
the Rayleigh quotient of the covariance in the Fourier directions of single channels, a lower bound
on λ_max that is exact for stationary periodic fields with independent channels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from wsgm import sde as sde_lib

THRESHOLD = 1e-2


def mismatch(sde_cfg: dict, lam_max: float) -> float:
    """r = m(T)² λ_max / prior variance for the process of config section ``sde_cfg``."""
    sde = sde_lib.build(sde_cfg)
    m, _ = sde.marginal(torch.tensor(sde.T, dtype=torch.float64))
    return float(m) ** 2 * float(lam_max) / sde.prior_std() ** 2


def kl_per_mode(r: float) -> float:
    """KL(N(0, 1 + r) ‖ N(0, 1)) in nats: the forward marginal at T against the prior, one mode."""
    return 0.5 * (r - math.log1p(r))


def band_name(J: int, j: int) -> str:
    """The store band model j learns: the coarsest low-pass for j = J, else the details of level j+1."""
    return f"low{J}" if j == J else f"detail{j + 1}"


@functools.cache
def exact_max_mode_variance(size: int, xi: float, eta: float, J: int, wavelet: str) -> dict[str, float]:
    """λ_max of every normalized band of a simulated Gaussian field (``gaussian`` dataset), exactly:
    the largest eigenvalue of the band's covariance over its unit pixel variance (for the 3 detail
    orientations, of the 3×3 symbol per coarse frequency, normalized by their stds)."""
    from wsgm.data.gaussian import power_spectrum
    from wsgm.symbols import scale_symbols

    spectrum = torch.as_tensor(power_spectrum(size, xi, eta))
    symbols, p_coarse = scale_symbols(spectrum, J, wavelet)
    out = {f"low{J}": float(p_coarse.max() / p_coarse.mean())}
    for j, s in enumerate(symbols, start=1):
        det = s[..., 1:, 1:]
        std = torch.diagonal(det, dim1=-2, dim2=-1).real.mean(dim=(0, 1)).sqrt()
        norm = det / (std[:, None] * std[None, :])
        out[f"detail{j}"] = float(torch.linalg.eigvalsh(norm).max())
    return out


def power_sums(block: np.ndarray) -> np.ndarray:
    """(C+1, H, W) float64: Σ over the block's images of |FFT x|² per channel, and the image count
    in row C (all of it, so that blocks merge by adding)."""
    f = np.fft.fft2(block.astype(np.float64))
    out = np.empty((block.shape[1] + 1, *block.shape[2:]), dtype=np.float64)
    out[:-1] = (np.abs(f) ** 2).sum(axis=0)
    out[-1] = block.shape[0]
    return out


def max_mode_variance(sums: np.ndarray, mean: list[float], std: list[float]) -> float:
    """λ_max (lower bound, see the module docstring) of a band from its merged :func:`power_sums`
    and per-channel stats: max over channels and frequencies of E|FFT (x − mean)|² / (H W std²)."""
    power = sums[:-1] / sums[-1, 0, 0]
    h, w = power.shape[-2:]
    power[:, 0, 0] -= (h * w * np.asarray(mean)) ** 2  # centre the DC mode: E|Σ(x − μ)|² = E|Σx|² − (HWμ)²
    return float((power / (h * w * np.asarray(std)[:, None, None] ** 2)).max())
