"""Exact statistics of stationary Gaussian fields: spectra at every wavelet scale and the KL.

A stationary Gaussian field on a periodic L×L grid with spectrum P (numpy FFT order, normalized so
that E|FFT x|²/L² = P) has the circulant covariance C = F⁻¹ diag(P) F. Its wavelet low-pass at
level k is again stationary on the (L/2^k)² grid; :func:`lowpass_spectrum` computes that spectrum
exactly (no approximation of the filters or of aliasing). :func:`kl_per_dim` is the KL divergence
of the Fourier-diagonal Gaussian fitted to samples from the true law.
"""

from __future__ import annotations

import numpy as np
import torch

from wsgm.symbols import scale_symbols


def lowpass_spectrum(spectrum: np.ndarray, k: int, wavelet: str = "haar") -> np.ndarray:
    """Exact spectrum of the level-k low-pass (same normalization) of a field with ``spectrum``.

    The low-low entry of the one-level symbols of :func:`wsgm.symbols.scale_symbols`, applied k
    times (exact: no approximation of the filters or of aliasing).
    """
    _, p_coarse = scale_symbols(torch.as_tensor(np.asarray(spectrum, dtype=np.float64)), k, wavelet)
    return p_coarse.numpy()


def empirical_spectrum2d(x: np.ndarray) -> np.ndarray:
    """mean over images and channels of |FFT x|²/(H W) at every frequency (a second moment)."""
    f = np.fft.fft2(np.asarray(x, dtype=np.float64))
    return (np.abs(f) ** 2).mean(axis=(0, 1)) / (x.shape[-1] * x.shape[-2])


def kl_per_dim(p_hat: np.ndarray, p_true: np.ndarray) -> float:
    """KL(N(0, Ĉ) ‖ N(0, C)) / d for circulant Ĉ, C with eigenvalues p_hat, p_true (d = H W).

    Both covariances are diagonal in the same Fourier basis, so the KL is exactly
    ½ Σ_ω (r - 1 - log r) with r = p_hat/p_true, summed over all H·W frequencies of the real field.
    """
    r = np.asarray(p_hat, dtype=np.float64) / np.asarray(p_true, dtype=np.float64)
    return float(0.5 * np.mean(r - 1 - np.log(r)))


def log_density(spectrum: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact log-density (nats) of each image of ``x`` (N×C×L×L, channels independent) under the
    field with ``spectrum``: -½ (Σ |FFT x|²/(L² P) + C Σ log P + D log 2π)."""
    x = np.asarray(x, dtype=np.float64)
    p = np.asarray(spectrum, dtype=np.float64)
    quad = (np.abs(np.fft.fft2(x)) ** 2 / p).sum(axis=(1, 2, 3)) / p.size
    return -0.5 * (quad + x.shape[1] * np.log(p).sum() + x[0].size * np.log(2 * np.pi))
