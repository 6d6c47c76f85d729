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

from wsgm import wavelets


def lowpass_spectrum(spectrum: np.ndarray, k: int, wavelet: str = "haar") -> np.ndarray:
    """Exact spectrum of the level-k low-pass (same normalization) of a field with ``spectrum``.

    Autocovariance r(m) = Cov(low_k(0), low_k(m)) = (A C Aᵀ)[0, m] with A the k-level analysis:
    Aᵀ δ₀ is the inverse DWT of a unit impulse in the low band (A is orthonormal), C is applied by
    FFT, then A again; the spectrum is the DFT of r.
    """
    if k == 0:
        return np.asarray(spectrum, dtype=np.float64)
    size = spectrum.shape[-1]
    coarse = size >> k
    v = torch.zeros(1, 1, coarse, coarse, dtype=torch.float64)
    v[0, 0, 0, 0] = 1.0
    for _ in range(k):
        v = wavelets.idwt2(v, torch.zeros(1, 3, *v.shape[-2:], dtype=torch.float64), wavelet)
    p = torch.as_tensor(spectrum, dtype=torch.float64)
    w = torch.fft.ifft2(p * torch.fft.fft2(v)).real
    for _ in range(k):
        w, _details = wavelets.dwt2(w, wavelet)
    return torch.fft.fft2(w[0, 0]).real.numpy()


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
