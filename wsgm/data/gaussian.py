"""Stationary Gaussian fields with power spectrum P(w) ∝ (xi^-eta + |w|^eta)^-1, by exact FFT.

The covariance is circulant with eigenvalues P (normalized to unit pixel variance), so the field's
law, and the exact score of any noised version of it, is known in closed form; the spectrum is
stored beside the samples for later stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from wsgm.data import split
from wsgm.data.store import create_array, save_array
from wsgm.runtime import derive_seed


def power_spectrum(size: int, xi: float, eta: float) -> np.ndarray:
    """P on the L×L FFT grid (w in radians per pixel), normalized so its mean (= pixel variance) is 1."""
    w = 2 * np.pi * np.fft.fftfreq(size)
    modulus = np.sqrt(w[:, None] ** 2 + w[None, :] ** 2)
    spectrum = 1.0 / (xi ** (-eta) + modulus**eta)
    return spectrum / spectrum.mean()


def sample(spectrum: np.ndarray, n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """n×channels×L×L float32 fields with the given spectrum."""
    size = spectrum.shape[0]
    white = rng.standard_normal((n, channels, size, size))
    fields = np.fft.ifft2(np.sqrt(spectrum) * np.fft.fft2(white)).real
    return fields.astype(np.float32)


def simulate(spec: dict, out: Path) -> dict:
    """Write the dataset store at ``out`` (a fresh path); returns attrs for the record."""
    d = spec["dataset"]
    size, channels, chunk = d["size"], d["channels"], d["chunk"]
    n = split.total(d)  # n training images, then the held-out ones: independent draws
    spectrum = power_spectrum(size, d["xi"], d["eta"])
    group = zarr.open_group(str(out), mode="w-")
    x = create_array(group, "x", (n, channels, size, size), chunk)
    for start in range(0, n, x.chunks[0]):
        stop = min(n, start + x.chunks[0])
        rng = np.random.default_rng(derive_seed(spec["seed"], "dataset", spec["name"], start))
        x[start:stop] = sample(spectrum, stop - start, channels, rng)
    save_array(group, "spectrum", spectrum.astype(np.float64))
    attrs = {"kind": "gaussian", "size": size, "channels": channels, "n": n,
             "xi": d["xi"], "eta": d["eta"], "source": "simulated (exact FFT synthesis)"}
    attrs["split"] = split.layout(int(group["x"].shape[0]), d["n_test"], d["n_floor"], spec["name"])
    group.attrs.update(attrs)
    return attrs
