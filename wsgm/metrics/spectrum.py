"""Radially averaged power spectrum and errors between spectra (shells of integer radius)."""

from __future__ import annotations

import numpy as np


def shell_index(size: int) -> np.ndarray:
    k = np.fft.fftfreq(size) * size
    return np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int)


def radial_average(power2d: np.ndarray) -> np.ndarray:
    """Mean of an H×W (square, FFT-ordered) array over shells 0..size//2."""
    shells = shell_index(power2d.shape[-1])
    n = power2d.shape[-1] // 2 + 1
    sums = np.bincount(shells.ravel(), weights=power2d.ravel(), minlength=n)[:n]
    counts = np.bincount(shells.ravel(), minlength=n)[:n]
    return sums / counts


def power_spectrum(x: np.ndarray) -> np.ndarray:
    """Radially averaged E|FFT(x)|²/(H W) over images and channels (shell 0 = mean²)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"power spectrum needs square images, got {x.shape[-2]}x{x.shape[-1]}")
    f = np.fft.fft2(x.astype(np.float64))
    power = (np.abs(f) ** 2).mean(axis=(0, 1)) / (x.shape[-1] * x.shape[-2])
    return radial_average(power)


def spectrum_errors(p: np.ndarray, ref: np.ndarray, suffix: str = "") -> dict[str, float]:
    """Errors over all shells 0..L/2 (shell 0 is the power of the image mean).

    log_error = mean |log(p/ref)| (sensitive across decades of power); rel_error_max = max |p/ref - 1|.
    """
    ratio = p / ref
    return {
        f"spectrum_log_error{suffix}": float(np.mean(np.abs(np.log(ratio)))),
        f"spectrum_rel_error_max{suffix}": float(np.max(np.abs(ratio - 1))),
    }
