"""Radially averaged power spectrum and errors between spectra (shells of integer radius)."""

from __future__ import annotations

import numpy as np


def shell_index(size: int) -> np.ndarray:
    k = np.fft.fftfreq(size) * size
    return np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int)


def shell_counts(size: int) -> np.ndarray:
    """Number of Fourier modes in each shell 0..size//2 of an size×size image (1 for the DC shell)."""
    n = size // 2 + 1
    return np.bincount(shell_index(size).ravel(), minlength=n)[:n]


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


def spectrum_errors(p: np.ndarray, ref: np.ndarray, suffix: str = "", size: int | None = None) -> dict[str, float]:
    """Errors over all shells 0..L/2 (shell 0, the DC shell, is the power of the image mean).

    log_error = mean over Fourier modes of |log(p/ref)| of their shell, i.e. shells weighted by
    their number of modes (the error of the whole spectrum, ~ the per-pixel KL's weighting);
    log_error_unweighted = mean over shells (each shell counts once: a few low-frequency shells
    weigh as much as the many high-frequency modes); rel_error_max = max over shells |p/ref - 1|.
    ``size`` is the image side (default 2 (len(p) - 1), the even sizes).
    """
    ratio = p / ref
    log_err = np.abs(np.log(ratio))
    counts = shell_counts(2 * (len(p) - 1) if size is None else size)
    if len(counts) != len(p):
        raise ValueError(f"{len(p)} shells do not match an image side of {size}")
    return {
        f"spectrum_log_error{suffix}": float(np.sum(counts * log_err) / np.sum(counts)),
        f"spectrum_log_error_unweighted{suffix}": float(np.mean(log_err)),
        f"spectrum_rel_error_max{suffix}": float(np.max(np.abs(ratio - 1))),
    }
