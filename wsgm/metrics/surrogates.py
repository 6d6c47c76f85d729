"""Real texture crops and their geometry-free surrogates, for checking what a feature space sees.

A surrogate keeps a crop's power spectrum and its marginal (pixel histogram) and destroys its
geometry (edges, lines, their alignment across scales): phase randomization — the crop's Fourier
amplitudes with the phases of white noise (Hermitian, so the field is real; the mean kept) —
followed by histogram matching to the crop's own pixel values, iterated (IAAFT, Schreiber &
Schmitz 1996: impose the amplitudes keeping the current phases, then the histogram keeping the
current ranks). One matching alone whitens the spectrum of a texture with a sharp marginal (brick:
the high-frequency shells ×3.8 at 32×32), which a spectral statistic then sees; after
:data:`IAAFT_ITERATIONS` rounds the radial spectrum is kept within 1-2 % (grass, gravel; brick 17 %) and the
marginal exactly (the last step is the matching). Both are what ``wsgm-fields`` measures in the
first place, so a space that separates crops from their surrogates by much more sees more than
spectra and marginals (tests/test_texture_features.py, bench/texture_features.py).
"""

from __future__ import annotations

import numpy as np

IAAFT_ITERATIONS = 100


def texture(name: str) -> np.ndarray:
    """A scikit-image bundled grey photograph (``brick``, ``grass``, ``gravel``, ``camera``, ...)
    as float64 in [-1, 1] (no download: these ship with scikit-image)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    if image.ndim == 3:
        image = image[..., :3].mean(-1)
    return image / 127.5 - 1.0


def random_crops(image: np.ndarray, n: int, side: int, rng: np.random.Generator,
                 rows: slice = slice(None)) -> np.ndarray:
    """n×1×side×side crops at uniformly random positions (top-left in the rows ``rows`` allows)."""
    h, w = image.shape
    lo, hi, _ = rows.indices(h - side + 1)
    i = rng.integers(lo, hi, n)
    j = rng.integers(0, w - side + 1, n)
    idx_i = i[:, None, None] + np.arange(side)[None, :, None]
    idx_j = j[:, None, None] + np.arange(side)[None, None, :]
    return image[idx_i, idx_j][:, None]


def phase_randomized(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each N×C×L×L field with its own Fourier amplitudes, random phases, its own mean."""
    amplitude = np.abs(np.fft.fft2(x))
    phase = np.angle(np.fft.fft2(rng.standard_normal(x.shape)))
    phase[..., 0, 0] = 0.0
    mean = x.mean((-2, -1), keepdims=True)
    y = np.fft.ifft2(amplitude * np.exp(1j * phase)).real
    return y - y.mean((-2, -1), keepdims=True) + mean


def histogram_matched(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y with each field's values replaced by x's sorted values, in the rank order of y's."""
    flat_y = y.reshape(*y.shape[:-2], -1)
    flat_x = np.sort(x.reshape(*x.shape[:-2], -1), axis=-1)
    out = np.empty_like(flat_y)
    np.put_along_axis(out, np.argsort(flat_y, axis=-1), flat_x, axis=-1)
    return out.reshape(y.shape)


def surrogates(x: np.ndarray, rng: np.random.Generator, iterations: int = IAAFT_ITERATIONS) -> np.ndarray:
    """Same marginal, nearly the same spectrum, no geometry (IAAFT; module docstring)."""
    amplitude = np.abs(np.fft.fft2(x))
    y = histogram_matched(phase_randomized(x, rng), x)
    for _ in range(iterations):
        y = np.fft.ifft2(amplitude * np.exp(1j * np.angle(np.fft.fft2(y)))).real
        y = histogram_matched(y, x)
    return y


__all__ = ["histogram_matched", "phase_randomized", "random_crops", "surrogates", "texture", "IAAFT_ITERATIONS"]
