"""Score one sample store against the data: spectrum errors (data and exact truth) and marginals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsgm.data.store import open_group, read_array
from wsgm.metrics.marginal import marginal_metrics
from wsgm.metrics.spectrum import power_spectrum, radial_average, spectrum_errors

DEFINITIONS = {
    "spectrum_log_error": "mean over radial frequency shells 0..L/2 of |log(P_samples/P_data)|",
    "spectrum_rel_error_max": "max over radial frequency shells 0..L/2 of |P_samples/P_data - 1|",
    "spectrum_log_error_exact": "as spectrum_log_error, against the exact spectrum of the simulation",
    "spectrum_rel_error_max_exact": "as spectrum_rel_error_max, against the exact spectrum",
    "spectrum_log_error_data_floor": "spectrum_log_error of n_samples real images against the full "
                                     "dataset (sampling-noise floor; the subset is part of the dataset)",
    "marginal_w1": "Wasserstein-1 distance between the pixel histograms of samples and data",
    "marginal_w1_data_floor": "marginal_w1 of n_samples real images against the full dataset",
}


def evaluate(spec: dict, samples: Path, data: Path) -> dict:
    x = read_array(samples, "x0")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=(1, 2, 3)).sum())
        raise ValueError(f"{samples}: {bad} of {len(x)} samples contain NaN/inf; the sampler "
                         "diverged. Fix: use more steps or retrain the models")
    ref = read_array(data, "x")
    metrics: dict[str, float] = {}
    spectra: dict[str, list[float]] = {}
    if "spectrum" in spec["metrics"]:
        p_x, p_ref = power_spectrum(x), power_spectrum(ref)
        metrics |= spectrum_errors(p_x, p_ref)
        floor = spectrum_errors(power_spectrum(ref[: len(x)]), p_ref)
        metrics["spectrum_log_error_data_floor"] = floor["spectrum_log_error"]
        spectra |= {"samples": p_x.tolist(), "data": p_ref.tolist()}
        group = open_group(data)
        if "spectrum" in group:
            exact = radial_average(np.asarray(group["spectrum"][:]))
            metrics |= spectrum_errors(p_x, exact, "_exact")
            spectra["exact"] = exact.tolist()
    if "marginal" in spec["metrics"]:
        metrics |= marginal_metrics(x, ref)
        metrics["marginal_w1_data_floor"] = marginal_metrics(ref[: len(x)], ref)["marginal_w1"]
    cost = dict(open_group(samples).attrs.get("cost", {}))
    return {"experiment": spec["experiment"], "J": spec["J"], "steps": spec["steps"],
            "n_samples": int(len(x)), "n_data": int(len(ref)), "metrics": metrics,
            "definitions": {k: v for k, v in DEFINITIONS.items() if k in metrics},
            "spectra": spectra, "cost": cost}
