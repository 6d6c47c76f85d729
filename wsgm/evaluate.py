"""Score one sample store at every resolution: FID/KID, physics statistics, sampling cost.

Resolution k (0 = final image, k = 1..J = the cascade's intermediate low-passes x_k) is compared
with the level-k low-pass of the real data summarized in the reference file (``wsgm reference``).
Each primary metric also gets a ``<metric>_data_floor``: the same metric for as many real images
as there are samples (the first ones of the dataset, the only part of it read here), i.e. the
value a perfect sampler would get from sampling noise alone. ``warnings`` lists the metrics that
too few images make statistically meaningless (FID from fewer than max(2d, 50), KID subsets under
50: :mod:`wsgm.metrics.sample_sizes`), as the config check warned at planning.
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
from wsgm.data.store import open_group
from wsgm.errors import UserError
from wsgm.metrics import fid as fid_lib
from wsgm.metrics.physics import DEFINITIONS as PHYSICS_DEFINITIONS
from wsgm.metrics.physics import PHYSICS
from wsgm.metrics.sample_sizes import metric_warnings
from wsgm.steps import Steps

log = logging.getLogger("wsgm.evaluate")

DEFINITIONS = {
    **PHYSICS_DEFINITIONS,
    "fid": "Fréchet distance between Gaussians fitted to the features of samples and of the reference "
           "data (extractor named in 'extractor'; only comparable within one extractor)",
    "kid": "Kernel Inception Distance (unbiased MMD², cubic polynomial kernel), mean over random "
           "subsets of kid_subset_size samples; kid_std is its std over the subsets",
    "spectrum_log_error_data_floor": "spectrum_log_error of n_samples real images against the full "
                                     "dataset (sampling-noise floor; the subset is part of the dataset)",
    "<metric>_data_floor": "the metric for n_samples real images in place of the samples",
    "std": "pixel standard deviation of the samples (all pixels and channels; data: std_data)",
    "std_data": "pixel standard deviation of n_samples real images (the first ones of the dataset)",
}
FLOORED = ("fid", "kid", "spectrum_log_error", "spectrum_log_error_unweighted", "marginal_w1", "kl_exact_per_dim", "energy_w1", "magnetization_w1")


class EvaluationError(UserError, RuntimeError):
    """The samples cannot be scored (diverged sampler, mismatched reference)."""


def _check_finite(x: np.ndarray, samples: Path, k: int) -> None:
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise EvaluationError(f"{samples}: {bad} of {len(x)} samples at resolution x{k} contain "
                              "NaN/inf; the sampler diverged. Fix: use more steps or retrain the models")


def score(x: np.ndarray, level: dict, spec: dict, device, k: int = 0) -> tuple[dict, dict]:
    """Every configured metric of resolution k's samples (x_k) against the reference level k."""
    metrics: dict[str, float] = {}
    spectra: dict[str, list[float]] = {}
    for name in spec["metrics"]:
        if name in PHYSICS:
            m, s = PHYSICS[name](x, level)
            metrics |= m
            spectra |= s
    if "spectrum_log_error" in metrics:
        metrics["spectrum_rel_error_shells"] = [float(v) for v in spectra["rel_error"]]
    if {"fid", "kid"} & set(spec["metrics"]):
        feats = fid_lib.features(x, spec["fid"], device, level=k)
        if "fid" in spec["metrics"]:
            metrics["fid"] = fid_lib.frechet(fid_lib.statistics(feats),
                                             {"mu": level["mu"], "sigma": level["sigma"]})
        if "kid" in spec["metrics"]:
            ref = torch.from_numpy(level["features"]).to(torch.float64)
            metrics |= fid_lib.kid(feats, ref, spec["fid"], spec.get("seed", 0))
    return metrics, spectra


def evaluate(spec: dict, samples: Path, data: Path, reference: Path,
             device: torch.device | str = "cpu") -> dict:
    t0 = time.perf_counter()
    meta, levels = ref_lib.load(reference)
    identity = fid_lib.extractor_identity(spec["fid"]) if {"fid", "kid"} & set(spec["metrics"]) else None
    if identity is not None and meta["extractor"] != identity:
        raise EvaluationError(f"{reference} was made with feature extractor {meta['extractor']}, "
                              f"the config asks for {identity}. Fix: rerun `wsgm reference`")
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
    real0 = torch.from_numpy(np.asarray(open_group(data, "x")["x"][:n]))
    scales = {}
    bar = tqdm(range(J + 1), desc="evaluate", unit="scale", disable=not sys.stderr.isatty())
    for k in bar:
        x = np.asarray(group[f"x{k}"][:])
        _check_finite(x, samples, k)
        metrics, spectra = score(x, levels[k], spec, device, k)
        real = wavelets.lowpass(real0, k, meta["wavelet"]).numpy()
        floor, _ = score(real, levels[k], spec, device, k)
        metrics |= {f"{m}_data_floor": floor[m] for m in FLOORED if m in floor}
        # pixel std beside the data's, whatever the metrics (a wrong DC mode shows here first)
        metrics |= {"std": float(x.std()), "std_data": float(real.std())}
        scales[str(k)] = {"size": int(x.shape[-1]), "metrics": metrics, "spectra": spectra}
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
            "metrics": final["metrics"], "spectra": final["spectra"], "scales": scales,
            "definitions": defs, "warnings": warnings, "cost": cost,
            "evaluate_wall_s": time.perf_counter() - t0}

