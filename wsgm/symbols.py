"""Wavelet symbols of stationary Gaussian fields: exact second moments of every DWT band.

A field with power spectrum P (covariance = circulant with symbol P) is mapped by one orthonormal
periodized DWT level, a polyphase transform, to (low, cH, cV, cD), jointly stationary on the coarse
grid with a 4×4 symbol per coarse frequency. Used by the exact scores (``wsgm.nets.exact``) and by
the exact reference spectra of every resolution (``wsgm.metrics.gaussian``).
"""

from __future__ import annotations

import torch

from wsgm import wavelets


def _circulant(x: torch.Tensor, symbol: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.fft.fft2(x) * symbol).real


def level_symbol(spectrum: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """(M, M, 4, 4) complex symbol of (low, cH, cV, cD) after one DWT level of a field with ``spectrum``.

    S_ab(κ) = Σ_d E[y_a[n + d] y_b[n]] e^{-2πiκ·d/M}: column b comes from pushing a delta in band b
    through the adjoint (= inverse) DWT, the fine covariance and the DWT.
    """
    size = spectrum.shape[-1]
    half = size // 2
    deltas = torch.zeros(4, 4, half, half, dtype=torch.float64)
    deltas[range(4), range(4), 0, 0] = 1.0
    fine = wavelets.idwt2(deltas[:, :1], deltas[:, 1:], wavelet)  # (4, 1, L, L)
    low, det = wavelets.dwt2(_circulant(fine, spectrum.to(torch.float64)), wavelet)
    cols = torch.cat([low, det], dim=1)  # (b, a, M, M) = E[y_a[n] y_b[0]]
    return torch.fft.fft2(cols).permute(2, 3, 1, 0)  # (M, M, a, b)


def scale_symbols(spectrum: torch.Tensor, J: int, wavelet: str = "haar") -> tuple[list[torch.Tensor], torch.Tensor]:
    """([S^(1), ..., S^(J)], P_J): the one-level symbols and the spectrum of the coarsest low-pass."""
    symbols, p = [], spectrum.to(torch.float64)
    for _ in range(J):
        s = level_symbol(p, wavelet)
        symbols.append(s)
        p = s[..., 0, 0].real
    return symbols, p
