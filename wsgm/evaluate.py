"""Score one sample store at every resolution: FID/KID, physics statistics, sampling cost.

Resolution k (0 = final image, k = 1..J = the cascade's intermediate low-passes x_k) is compared
with the level-k low-pass of the real data summarized in the reference file (``wsgm reference``,
made from the dataset's held-out reference rows). Each metric also gets

- ``<metric>_ci``: its 95% interval, a percentile bootstrap over the samples
  (:mod:`wsgm.metrics.intervals`; ``intervals.bootstrap`` resamples, reference fixed);
- ``<metric>_data_floor`` (and its ``_ci``): the same metric for a real set of as many images as
  there are samples, taken from the dataset's held-out floor rows (never trained on, not in the
  reference), scored exactly like the samples: the value a perfect sampler would get;
- ``<metric>_excess_ci``: the interval of metric − floor. ``reaches_floor`` (error metrics) and
  ``agrees_with_data`` (moments, std) are decided from it, never from point values; the rule is
  written in the file (``intervals.rule``).

``scales[k]["bootstrap"]`` keeps the draws so the report can put intervals on differences between
experiments. ``warnings`` lists the metrics that too few images make statistically meaningless
(FID from fewer than max(2d, 50), KID subsets under 50: :mod:`wsgm.metrics.sample_sizes`), as the
config check warned at planning.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wsgm import reference as ref_lib
from wsgm import wavelets
from wsgm.data import split
from wsgm.data.store import open_group
from wsgm.errors import UserError
from wsgm.metrics import fid as fid_lib
from wsgm.metrics import intervals
from wsgm.metrics.physics import DEFINITIONS as PHYSICS_DEFINITIONS
from wsgm.metrics.physics import DRAWS, PHYSICS
from wsgm.metrics.sample_sizes import metric_warnings
from wsgm.runtime import derive_seed
from wsgm.steps import Steps

log = logging.getLogger("wsgm.evaluate")

DEFINITIONS = {
    **PHYSICS_DEFINITIONS,
    "fid": "Fréchet distance between Gaussians fitted to the features of samples and of the reference "
           "data (extractor named in 'extractor'; only comparable within one extractor)",
    "fid_texture": "Fréchet distance between Gaussians fitted to the Portilla–Simoncelli texture statistics "
                   "(plenoptic; extractor named in 'extractors') of samples and reference data: cross-scale and "
                   "cross-orientation correlations that see geometry; at resolutions of side ≥ 8",
    "kid": "Kernel Inception Distance (unbiased MMD², cubic polynomial kernel), mean over random "
           "subsets of kid_subset_size samples; kid_std is its std over the subsets",
    "<metric>_ci": "95% percentile-bootstrap interval [lo, hi] of the metric over resamples of the samples "
                   "(with replacement; reference statistics fixed)",
    "<metric>_data_floor": "the metric for n_samples held-out real images (the dataset's floor rows: never "
                           "trained on, not in the reference) in place of the samples, scored the same way",
    "<metric>_data_floor_ci": "95% bootstrap interval of the data floor (resampling the held-out images)",
    "<metric>_excess_ci": "95% interval of metric − data floor (independent bootstraps of both sets)",
    "std": "pixel standard deviation of the samples (all pixels and channels; data: std_data)",
    "std_data": "pixel standard deviation of the n_samples held-out floor images",
}
# error metrics (lower is better, 0 = perfect): "reaches the floor" is decided for these; the other
# scalars (moments, χ₂, ξ₂, std) are statistics compared with the held-out data ("agrees_with_data")
FLOORED = ("fid", "kid", "fid_texture", "spectrum_log_error", "spectrum_log_error_unweighted", "spectrum_rel_error_max",
           "marginal_w1", "kl_exact_per_dim", "energy_w1", "magnetization_w1", "two_point_error_max")


class EvaluationError(UserError, RuntimeError):
    """The samples cannot be scored (diverged sampler, mismatched reference)."""


def _check_finite(x: np.ndarray, samples: Path, k: int) -> None:
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise EvaluationError(f"{samples}: {bad} of {len(x)} samples at resolution x{k} contain "
                              "NaN/inf; the sampler diverged. Fix: use more steps or retrain the models")


def score(x: np.ndarray, level: dict, spec: dict, device, k: int = 0,
          idx: np.ndarray | None = None) -> tuple[dict, dict, dict]:
    """(metrics, spectra, draws): every configured metric of resolution k's images x_k against the
    reference level k, and for each scalar one its bootstrap draws over the resamples ``idx``
    (rows of image indices; none when idx is None). Reference constants (``*_data``) get none."""
    metrics: dict[str, float] = {}
    spectra: dict[str, list[float]] = {}
    draws: dict[str, np.ndarray] = {}
    counts = intervals.counts(idx, len(x)) if idx is not None else None  # each resample as image counts
    for name in spec["metrics"]:
        if name in PHYSICS:
            m, s = PHYSICS[name](x, level)
            metrics |= m
            spectra |= s
            scalars = [n for n, v in m.items() if isinstance(v, float) and not n.endswith("_data")]
            if idx is not None and scalars:
                fn = PHYSICS[name]
                if name in DRAWS:  # the same numbers, from per-image statistics and resample counts
                    got = DRAWS[name](x, level, counts)
                    draws |= {m: got[m] for m in scalars if m in got}
                else:
                    draws |= intervals.metric_draws(lambda xb: fn(xb, level)[0], x, idx, scalars)
    if "spectrum_log_error" in metrics:
        metrics["spectrum_rel_error_shells"] = [float(v) for v in spectra["rel_error"]]
    metrics["std"] = float(x.std())  # pixel std (beside the data's: a wrong DC mode shows here first)
    if idx is not None:
        draws["std"] = np.array([float(x[rows].std()) for rows in idx])
    if "texture" in spec["metrics"] and "texture_mu" in level:
        feats = fid_lib.features(x, {"extractor": fid_lib.TEXTURE}, device, level=k)
        metrics["fid_texture"] = fid_lib.frechet(fid_lib.statistics(feats),
                                                 {"mu": level["texture_mu"], "sigma": level["texture_sigma"]})
        if idx is not None:
            draws["fid_texture"] = intervals.fid_draws(feats, level["texture_mu"], level["texture_sigma"], idx)
    if {"fid", "kid"} & set(spec["metrics"]):
        feats = fid_lib.features(x, spec["fid"], device, level=k)
        if "fid" in spec["metrics"]:
            metrics["fid"] = fid_lib.frechet(fid_lib.statistics(feats),
                                             {"mu": level["mu"], "sigma": level["sigma"]})
            if idx is not None:
                draws["fid"] = intervals.fid_draws(feats, level["mu"], level["sigma"], idx)
        if "kid" in spec["metrics"]:
            ref = torch.from_numpy(level["features"]).to(torch.float64)
            metrics |= fid_lib.kid(feats, ref, spec["fid"], spec.get("seed", 0))
            if idx is not None:
                draws["kid"] = intervals.kid_draws(feats, ref, idx)
    return metrics, spectra, intervals.centre(draws, metrics)


def with_intervals(metrics: dict, draws: dict, floor: dict, floor_draws: dict, level: float) -> dict:
    """Each drawn metric's ``_ci``, its floor (``_data_floor``, ``_data_floor_ci``) and the interval
    of metric − floor (``_excess_ci``); returns {"reaches_floor": {...}, "agrees_with_data": {...}}:
    the error metrics (lower is better) reach the floor when the excess interval's lower end is ≤ 0
    (:data:`wsgm.metrics.intervals.RULE`); the other statistics (moments, std) agree with the data
    when the interval of their difference from the held-out set contains 0."""
    reaches, agrees = {}, {}
    for m, d in draws.items():
        metrics[f"{m}_ci"] = intervals.interval(d, level)
        if m not in floor or m not in floor_draws:
            continue
        excess = intervals.difference_interval(d, floor_draws[m], level)
        metrics |= {f"{m}_data_floor": floor[m], f"{m}_data_floor_ci": intervals.interval(floor_draws[m], level),
                    f"{m}_excess_ci": excess}
        if m in FLOORED:
            reaches[m] = bool(excess[0] <= 0)
        else:
            agrees[m] = bool(excess[0] <= 0 <= excess[1])
    return {"reaches_floor": reaches, "agrees_with_data": agrees}


def evaluate(spec: dict, samples: Path, data: Path, reference: Path,
             device: torch.device | str = "cpu") -> dict:
    t0 = time.perf_counter()
    meta, levels = ref_lib.load(reference)
    identity = fid_lib.extractor_identity(spec["fid"]) if {"fid", "kid"} & set(spec["metrics"]) else None
    if identity is not None and meta["extractor"] != identity:
        raise EvaluationError(f"{reference} was made with feature extractor {meta['extractor']}, "
                              f"the config asks for {identity}. Fix: rerun `wsgm reference`")
    if "texture" in spec["metrics"] and meta.get("texture_extractor") != fid_lib.extractor_identity(
            {"extractor": fid_lib.TEXTURE}):
        raise EvaluationError(f"{reference} holds no texture statistics of the current definition (made "
                              f"with {meta.get('texture_extractor')}), the config scores fid_texture. "
                              "Fix: rerun `wsgm reference` with this config")
    beta = spec.get("physics", {}).get("beta")
    if "phi4" in spec["metrics"] and beta is not None and (
            "phi4" not in levels[0] or float(levels[0]["phi4"][0]) != float(beta)):
        have = f"β={float(levels[0]['phi4'][0])}" if "phi4" in levels[0] else "no φ⁴ statistics"
        raise EvaluationError(f"{reference} holds {have}, the config asks for β={beta}. "
                              "Fix: rerun `wsgm reference` with this config")
    group = open_group(samples, "x0")
    J = int(group.attrs.get("J", spec["J"]))
    if J > meta["J"] or meta["wavelet"] != group.attrs.get("wavelet", meta["wavelet"]):
        raise EvaluationError(f"{reference} covers J={meta['J']} ({meta['wavelet']}), the samples "
                              f"need J={J} ({group.attrs.get('wavelet')}). Fix: pass the matching reference")
    n = group["x0"].shape[0]
    data_group = open_group(data, "x")
    floor_rows = split.rows(data_group, "floor", data)  # held out: neither trained on nor in the reference
    if floor_rows.stop - floor_rows.start < n:
        raise EvaluationError(f"{data} holds out {floor_rows.stop - floor_rows.start} floor images, the data floor "
                              f"needs as many as the {n} samples. Fix: raise the dataset's n_floor to {n} or more "
                              "(and rerun its dataset stage), or lower sampling.n_samples")
    real0 = torch.from_numpy(np.asarray(data_group["x"][floor_rows.start:floor_rows.start + n]))
    boot = dict(spec["intervals"])
    seed = spec.get("seed", 0)
    scales = {}
    bar = tqdm(range(J + 1), desc="evaluate", unit="scale", disable=not sys.stderr.isatty())
    for k in bar:
        x = np.asarray(group[f"x{k}"][:])
        _check_finite(x, samples, k)
        idx = intervals.indices(n, boot["bootstrap"], derive_seed(seed, "bootstrap", spec["experiment"],
                                                                   Steps(spec["steps"]).label, k))
        metrics, spectra, draws = score(x, levels[k], spec, device, k, idx)
        real = wavelets.lowpass(real0, k, meta["wavelet"]).numpy()
        floor_idx = intervals.indices(n, boot["bootstrap"], derive_seed(seed, "bootstrap", "floor", n, k))
        floor, _, floor_draws = score(real, levels[k], spec, device, k, floor_idx)
        metrics["std_data"] = floor["std"]
        decided = with_intervals(metrics, draws, floor, floor_draws, boot["level"])
        scales[str(k)] = {"size": int(x.shape[-1]), "metrics": metrics, "spectra": spectra, **decided,
                          "bootstrap": {m: [float(v) for v in d] for m, d in draws.items()}}
        log.info("x%d (%dx%d): %s", k, x.shape[-1], x.shape[-1],
                 ", ".join(f"{m}={v:.4g}" for m, v in metrics.items() if isinstance(v, float)))
    warnings = []
    if {"fid", "kid"} & set(spec["metrics"]):
        counts = {"samples": int(n), "reference": int(meta["n"]), "data floor": int(len(real0))}
        warnings = metric_warnings(spec["metrics"], int(len(levels[0]["mu"])), counts,
                                   spec["fid"]["kid_subset_size"])
        for message in warnings:
            log.warning("%s", message)
    cost = dict(group.attrs.get("cost", {}))
    final = scales["0"]
    defs = {m: d for m, d in DEFINITIONS.items() if m in final["metrics"] or m.startswith("<")}
    per_scale = cost.get("steps_per_scale") or Steps(spec["steps"]).per_scale(J)  # as sampled, else as asked
    return {"experiment": spec["experiment"], "J": J, "steps": spec["steps"],
            "steps_per_scale": per_scale, "n_samples": int(n), "n_reference": meta["n"],
            "mode": group.attrs.get("mode", "generate"), "extractor": meta["extractor"],
            "extractors": {**({m: meta["extractor"]["name"] for m in ("fid", "kid") if m in spec["metrics"]}
                              if meta.get("extractor") else {}),
                           **({"fid_texture": meta["texture_extractor"]["name"]}
                              if "texture" in spec["metrics"] and meta.get("texture_extractor") else {})},
            "metrics": final["metrics"], "spectra": final["spectra"], "scales": scales,
            "reaches_floor": final["reaches_floor"], "agrees_with_data": final["agrees_with_data"],
            "intervals": {**boot, "method": "percentile bootstrap over the scored images (samples and the "
                          "held-out floor set resampled independently, with replacement; reference fixed)",
                          "rule": intervals.RULE},
            "held_out": {"reference": {"part": meta.get("part", "reference"), "rows": meta.get("rows")},
                         "floor": {"part": "floor", "rows": [floor_rows.start, floor_rows.start + int(n)]}},
            "definitions": defs, "warnings": warnings, "cost": cost,
            "evaluate_wall_s": time.perf_counter() - t0}

