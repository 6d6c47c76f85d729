"""What a metric in a metric file is: its name and title, whether lower is better, its feature
space, its interval and floor decision, and the experiment/steps it belongs to (used by the report's
figures and tables)."""

from __future__ import annotations

import math
import re

import numpy as np

from wsgm.nets.receptive_field import model_side
from wsgm.steps import Steps

SHORT = {
    "fid": "FID", "kid": "KID",
    "spectrum_log_error": "power-spectrum log error",
    "spectrum_log_error_unweighted": "power-spectrum log error (shells unweighted)",
    "spectrum_rel_error_max": "max relative spectrum error",
    "spectrum_log_error_exact": "spectrum log error vs exact law",
    "spectrum_log_error_unweighted_exact": "spectrum log error vs exact law (unweighted)",
    "spectrum_rel_error_max_exact": "max relative spectrum error vs exact law",
    "marginal_w1": "pixel-histogram W1",
    "kl_exact_per_dim": "KL to the exact Gaussian per dim",
    "energy_w1": "φ⁴ energy-per-site W1",
    "magnetization_w1": "φ⁴ magnetization W1",
    "std": "pixel std",
    "fid_texture": "FID (texture statistics)",
    "two_point_error_max": "φ⁴ two-point function G(r): max error / G(0)",
    "susceptibility": "φ⁴ susceptibility χ₂",
    "correlation_length": "φ⁴ second-moment correlation length ξ₂",
    "binder": "φ⁴ Binder cumulant",
    "magnetization_mean": "φ⁴ mean magnetization ⟨m⟩ (Z₂: 0)",
}


def experiment_label(name: str, J: int) -> str:
    return f"{name} ({'SGM' if J == 0 else 'WSGM'}, J={J})"


def steps_x(r: dict) -> float:
    per_scale = r.get("steps_per_scale") or Steps(r["steps"]).per_scale(r["J"])
    return float(np.mean(per_scale))


def weighted_cost(r: dict) -> float | None:
    """Sampling cost per sample in evaluations of a network on the final image: Σ_j NFE_j × pixels_j
    / pixels of x_0, from ``cost.nfe_per_scale`` (models 0..J) and the sides ``scales[k]["size"]``
    (model j < J runs on the grid of x_{j+1}, model J on that of x_J;
    ``wsgm.nets.receptive_field.model_side`` where a scale's size is missing). None without
    per-scale NFE or the final size."""
    J, nfe = r.get("J"), (r.get("cost") or {}).get("nfe_per_scale")
    if not isinstance(J, int) or not isinstance(nfe, list) or len(nfe) != J + 1 \
            or not all(is_number(v) for v in nfe):
        return None
    scales = r.get("scales") or {}

    def side(k: int) -> int | None:
        v = (scales.get(str(k)) or {}).get("size")
        return int(v) if is_number(v) and v > 0 else None

    final = side(0)
    if final is None:
        return None
    sides = [side(j + 1) if j < J else side(J) for j in range(J + 1)]
    sides = [s or model_side(final, J, j) for j, s in enumerate(sides)]
    return float(sum(n * s * s for n, s in zip(nfe, sides)) / final**2)


def seconds_per_sample(r: dict) -> float | None:
    """Measured sampling wall time per sample: 1 / ``cost.samples_per_s`` (else wall_time_s / n_samples)."""
    cost = r.get("cost") or {}
    if is_number(cost.get("samples_per_s")) and cost["samples_per_s"] > 0:
        return 1.0 / float(cost["samples_per_s"])
    if is_number(cost.get("wall_time_s")) and is_number(r.get("n_samples")) and r["n_samples"] > 0:
        return float(cost["wall_time_s"]) / r["n_samples"]
    return None


def curve_key(r: dict) -> tuple[str, str | None]:
    """(experiment, sampler): one curve of the report's figures (sampler None where not recorded)."""
    return r["experiment"], r.get("sampler")


def curve_keys(results: list[dict]) -> list[tuple[str, str | None]]:
    return sorted({curve_key(r) for r in results}, key=lambda k: (k[0], k[1] or ""))


def curve_label(key: tuple[str, str | None], J: int) -> str:
    name, sampler = key
    return experiment_label(name, J) + (f", {sampler}" if sampler else "")


def experiment_names(results: list[dict]) -> list[str]:
    return sorted({r["experiment"] for r in results})


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def interval_of(metrics: dict, key: str) -> tuple[float, float] | None:
    v = metrics.get(key)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(is_number(x) for x in v):
        return float(v[0]), float(v[1])
    return None


def fid_like(m: str) -> bool:
    return m in ("fid", "kid") or (m.startswith(("fid_", "kid_")) and not m.endswith(
        ("_data_floor", "_ci", "_std", "_subset_size")))


def kid_like(m: str) -> bool:
    return m == "kid" or (m.startswith("kid_") and fid_like(m))


def lower_is_better(m: str) -> bool:
    return fid_like(m) or "error" in m or m.endswith("_w1") or m.startswith("kl_")


def _extractor_name(v) -> str | None:
    if isinstance(v, dict):
        return str(v.get("name")) if v.get("name") else None
    return str(v) if v else None


def _feature_space_of(r: dict, m: str) -> str | None:
    extractors = r.get("extractors")
    if isinstance(extractors, dict) and m in extractors:
        return _extractor_name(extractors[m])
    suffix = m.split("_", 1)[1] if "_" in m else None
    for key in (f"extractor_{m}", f"extractor_{suffix}" if suffix else None):
        if key and key in r:
            return _extractor_name(r[key])
    d = r.get("definitions", {}).get(m)
    if isinstance(d, dict) and d.get("extractor"):
        return _extractor_name(d["extractor"])
    if isinstance(d, str):  # "... (extractor named in 'extractor_ps') ...": the key that holds it
        for key in re.findall(r"['\"`](extractor\w*)['\"`]", d):
            if key in r:
                return _extractor_name(r[key])
    return _extractor_name(r.get("extractor"))


def feature_space(m: str, results: list[dict]) -> str | None:
    """The feature space an FID-like metric lives in (None for other metrics)."""
    if not fid_like(m):
        return None
    names = sorted({n for r in results if (n := _feature_space_of(r, m))})
    return ", ".join(names) or None


def metric_title(m: str, results: list[dict]) -> str:
    short = SHORT.get(m)
    if short is None and fid_like(m):
        short = f"{'KID' if kid_like(m) else 'FID'} ({m})"
    title = short or m.replace("_", " ")
    space = feature_space(m, results)
    if space:
        title += f" in {space} features"
    if lower_is_better(m):
        title += "\n(lower is better)"
    return title


def scale_metrics(r: dict, k: int) -> dict:
    scales = r.get("scales", {"0": {"metrics": r["metrics"]}})
    return scales.get(str(k), {}).get("metrics", {})


def reaches_floor(r: dict, metric: str, k: int = 0) -> bool | None:
    """The rule: the 95% interval of (metric − data floor) has its lower end ≤ 0 (contains 0 or lies
    below). From ``<metric>_excess_ci``; else the file's own ``reaches_floor``; None without either."""
    ci = interval_of(scale_metrics(r, k), f"{metric}_excess_ci")
    if ci is not None:
        return ci[0] <= 0
    given = (r.get("scales", {}).get(str(k), {}).get("reaches_floor")
             or (r.get("reaches_floor") if k == 0 else None) or {})
    v = given.get(metric) if isinstance(given, dict) else None
    return bool(v) if isinstance(v, bool) else None


def bootstrap_draws(r: dict, metric: str, k: int = 0) -> list[float] | None:
    draws = (r.get("scales", {}).get(str(k), {}).get("bootstrap")
             or (r.get("bootstrap") if k == 0 else None) or {})
    d = draws.get(metric) if isinstance(draws, dict) else None
    return d if isinstance(d, list) and d else None
