"""Physics statistics of fields, one resolution at a time, by name (a registry: add φ⁴ here).

Each entry maps (samples N×C×L×L, reference level) to (metrics, spectra). A reference level is the
dict :mod:`wsgm.reference` stores for one resolution of the real data: ``power`` (radially
averaged data spectrum), ``quantiles`` (pixel-value quantiles), ``exact2d`` (the exact 2-D
spectrum at that resolution, Gaussian simulations only), ``phi4``/``energy``/``magnetization``/
``phi4_moments``/``phi4_m`` (φ⁴ datasets only, see :mod:`wsgm.metrics.phi4`). To add a statistic (e.g. the φ⁴ energy
and magnetization histograms), write a function with this signature, decorate it with
``@physics("name")``, store whatever real-data summary it needs in the reference, and list the
name in the experiment's ``metrics``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wsgm.metrics import phi4 as phi4_lib
from wsgm.metrics.gaussian import empirical_spectrum2d, kl_per_dim
from wsgm.metrics.marginal import QUANTILES, quantiles, wasserstein1_quantiles
from wsgm.metrics.spectrum import power_spectrum, radial_average, spectrum_errors

Result = tuple[dict[str, float], dict[str, list[float]]]
PHYSICS: dict[str, Callable[[np.ndarray, dict], Result]] = {}

DEFINITIONS = {
    "spectrum_log_error": "mean over the Fourier modes of radial shells 0..L/2 (DC included) of "
                          "|log(P_samples/P_data)| of their shell: shells weighted by their number of modes",
    "spectrum_log_error_unweighted": "mean over radial frequency shells 0..L/2 (DC included) of "
                                     "|log(P_samples/P_data)|, every shell counted once",
    "spectrum_rel_error_max": "max over radial frequency shells 0..L/2 of |P_samples/P_data - 1|",
    "spectrum_rel_error_shells": "per radial shell 0..L/2: P_samples/P_data - 1 (list)",
    "spectrum_log_error_exact": "as spectrum_log_error, against the exact spectrum of the simulation "
                                "(at this resolution: the exact spectrum of its wavelet low-pass)",
    "spectrum_log_error_unweighted_exact": "as spectrum_log_error_unweighted, against the exact spectrum",
    "spectrum_rel_error_max_exact": "as spectrum_rel_error_max, against the exact spectrum",
    "marginal_w1": "Wasserstein-1 distance between the pixel histograms of samples and data "
                   "(1000 mid-point quantiles)",
    "kl_exact_per_dim": "KL(N(0,Ĉ) || N(0,C))/(H·W): C = the exact circulant covariance of the "
                        "simulated field at this resolution, Ĉ = the circulant covariance whose "
                        "eigenvalues are the samples' per-frequency second moments mean|FFT x|²/(HW) "
                        "(channels pooled); = ½ mean_ω (r - 1 - log r), r = P̂/P. It scores the "
                        "Fourier-diagonal Gaussian fitted to the samples, not their full law",
    "energy_w1": "φ⁴ datasets: Wasserstein-1 distance between the distributions of the energy per site "
                 "e = E_β(φ)/sites of samples and data (1000 mid-point quantiles), β = the dataset's "
                 "coupling. At resolution k ≥ 1, φ = 2^-k x_k (the normalized low-pass: for Haar the "
                 "2^k×2^k block average) on the coarse lattice: a statistic of the low-pass compared at "
                 "equal k, not the energy of a renormalized theory",
    "magnetization_w1": "φ⁴ datasets: Wasserstein-1 distance between the distributions of the magnetization "
                        "m = mean(φ) of samples and data (the low-pass keeps the mean: the same m at every k)",
    "energy_mean": "φ⁴: mean energy per site ⟨e⟩ of the samples (energy_mean_data: of the data)",
    "energy_std": "φ⁴: standard deviation of the energy per site over samples (energy_std_data: data)",
    "abs_magnetization": "φ⁴: ⟨|m|⟩ of the samples (abs_magnetization_data: of the data)",
    "magnetization_mean": "φ⁴: signed mean magnetization ⟨m⟩ = mean over samples of m = mean(φ) "
                          "(magnetization_mean_data: of the data). Z₂-symmetric data has ⟨m⟩ ≈ 0 within "
                          "its sampling interval; a model that breaks the symmetry shows |⟨m⟩| well outside it",
    "susceptibility": "φ⁴: connected susceptibility χ₂ = V(⟨m²⟩ − ⟨m⟩²) = Σ_r G(r) (whole lattice), V = L² "
                      "sites of the resolution-k lattice, φ = 2^-k x_k, ⟨·⟩ = mean over the samples "
                      "(susceptibility_data: of the data). On a finite Z₂-symmetric lattice ⟨m⟩ = 0, so this is "
                      "the usual χ = V⟨m²⟩ of finite-size scaling at criticality; subtracting the signed "
                      "⟨m⟩² keeps it a fluctuation (a uniform shift of all fields leaves it unchanged and shows "
                      "in magnetization_mean instead). Computed as P(0) − V⟨m⟩², P(p) = ⟨|φ̂(p)|²⟩/V, "
                      "φ̂ the unnormalized 2-D DFT (the data's P = the reference's power2d / 4^k)",
    "correlation_length": "φ⁴: second-moment correlation length ξ₂ = sqrt(max(χ₂/F − 1, 0)) / (2 sin(π/L)), "
                          "F = (P(2π/L, 0) + P(0, 2π/L))/2 the structure factor at the smallest non-zero "
                          "momenta, P as in susceptibility (correlation_length_data: of the data); 0 for "
                          "white noise, clipped at 0 when χ₂ < F",
    "two_point_error_max": "φ⁴: max over r = 0..L/2 of |G_samples(r) − G_data(r)| / G_data(0), G(r) = "
                           "⟨(1/V)Σ_x φ(x)φ(x + r e_a)⟩ − ⟨m⟩² the connected two-point function on the periodic "
                           "lattice, averaged over the two axes a (inverse DFT of P); the curves are in the "
                           "metric file's spectra as two_point_samples / two_point_data",
    "binder": "φ⁴: Binder cumulant U = 1 − ⟨m⁴⟩/(3⟨m²⟩²) of the samples (binder_data: of the data); "
              "0 for a Gaussian m, 2/3 for an ordered field",
}


# Optional fast bootstrap of an entry: (images, reference level, B×n resample counts) → {metric:
# B draws}, equal to the entry's scalars recomputed on each resample (tests check this); entries
# without one are bootstrapped by recomputing them (wsgm.metrics.intervals.metric_draws).
DRAWS: dict[str, Callable[[np.ndarray, dict, np.ndarray], dict[str, np.ndarray]]] = {}
BLOCK = 256  # images per block when summing per-image statistics


def physics(name: str):
    def register(fn):
        PHYSICS[name] = fn
        return fn
    return register


def draws_of(name: str):
    def register(fn):
        DRAWS[name] = fn
        return fn
    return register


def _weighted_power(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """B×H×W: for each resample (counts w), the mean over its images and channels of |FFT x|²/(HW)."""
    n, c, h, wd = x.shape
    acc = np.zeros((len(w), h * wd))
    for start in range(0, n, BLOCK):
        f = np.fft.fft2(x[start:start + BLOCK].astype(np.float64))
        per_image = ((np.abs(f) ** 2).mean(axis=1) / (h * wd)).reshape(len(f), -1)
        acc += w[:, start:start + BLOCK] @ per_image
    return (acc / n).reshape(len(w), h, wd)


@physics("spectrum")
def spectrum(x: np.ndarray, level: dict) -> Result:
    p = power_spectrum(x)
    metrics = spectrum_errors(p, level["power"], size=x.shape[-1])
    spectra = {"samples": p.tolist(), "data": np.asarray(level["power"]).tolist(),
               "rel_error": (p / level["power"] - 1).tolist()}
    if "exact2d" in level:
        exact = radial_average(level["exact2d"])
        metrics |= spectrum_errors(p, exact, "_exact", size=x.shape[-1])
        spectra["exact"] = exact.tolist()
    return metrics, spectra


@draws_of("spectrum")
def spectrum_draws(x: np.ndarray, level: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    power = _weighted_power(x, w)
    refs = [("", np.asarray(level["power"]))]
    if "exact2d" in level:
        refs.append(("_exact", radial_average(level["exact2d"])))
    rows = [{k: v for suffix, ref in refs for k, v in spectrum_errors(radial_average(p), ref, suffix,
                                                                       size=x.shape[-1]).items()}
            for p in power]
    return {m: np.array([r[m] for r in rows]) for m in rows[0]}


@physics("marginal")
def marginal(x: np.ndarray, level: dict) -> Result:
    return {"marginal_w1": wasserstein1_quantiles(quantiles(x), level["quantiles"]),
            "mean": float(x.mean()), "std": float(x.std())}, {}


@draws_of("marginal")
def marginal_draws(x: np.ndarray, level: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    """Exactly ``np.quantile``'s linear interpolation on each resample's pooled pixels, from one
    sort: the pooled rank r of a resample is the first sorted pixel whose cumulative count
    exceeds r."""
    n = len(x)
    vals = np.asarray(x, dtype=np.float64).reshape(n, -1)
    per = vals.shape[1]
    order = np.argsort(vals.ravel(), kind="stable")
    sorted_vals, image = vals.ravel()[order], order // per
    q = (np.arange(QUANTILES) + 0.5) / QUANTILES
    pos = (n * per - 1) * q
    low = np.floor(pos)
    frac = pos - low
    s1, s2 = vals.sum(1), (vals ** 2).sum(1)
    out = {"marginal_w1": np.empty(len(w)), "mean": np.empty(len(w)), "std": np.empty(len(w))}
    last = len(sorted_vals) - 1
    for b, counts in enumerate(w):
        cum = np.cumsum(counts[image])
        i0 = np.minimum(np.searchsorted(cum, low, side="right"), last)
        i1 = np.minimum(np.searchsorted(cum, low + 1, side="right"), last)
        qb = sorted_vals[i0] + frac * (sorted_vals[i1] - sorted_vals[i0])
        out["marginal_w1"][b] = wasserstein1_quantiles(qb, level["quantiles"])
        mean = counts @ s1 / (n * per)
        out["mean"][b] = mean
        out["std"][b] = np.sqrt(max(counts @ s2 / (n * per) - mean ** 2, 0.0))
    return out


@physics("kl")
def kl(x: np.ndarray, level: dict) -> Result:
    if "exact2d" not in level:
        return {}, {}
    return {"kl_exact_per_dim": kl_per_dim(empirical_spectrum2d(x), level["exact2d"])}, {}


@draws_of("kl")
def kl_draws(x: np.ndarray, level: dict, w: np.ndarray) -> dict[str, np.ndarray]:
    if "exact2d" not in level:
        return {}
    return {"kl_exact_per_dim": np.array([kl_per_dim(p, level["exact2d"]) for p in _weighted_power(x, w)])}


@physics("phi4")
def phi4(x: np.ndarray, level: dict) -> Result:
    if "phi4" not in level:  # not a φ⁴ dataset: nothing to compare
        return {}, {}
    return phi4_lib.score(x, level)
