"""Scores of an inverse-problem store (``wsgm sample --inverse``): the usual metrics of every
resolution (``wsgm.evaluate``) plus the errors against the measured images.

The known part should match to float precision (hard projection); the unknown part is compared
with the truth per unknown dimension, and with another image's truth (what an independent draw
of the right law would score), so ``unknown_mse`` well below ``unknown_mse_mismatched`` means the
measurement was used.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wsgm import evaluate as evaluate_lib
from wsgm import inverse
from wsgm.data.store import open_group

DEFINITIONS = {
    "known_rmse": "RMS difference between samples and truth on the measured part (≈ 0: hard projection)",
    "known_max_abs_error": "largest absolute difference on the measured part",
    "unknown_mse": "mean squared error against the truth per unknown dimension",
    "unknown_mse_mismatched": "the same against another image's truth (an independent draw's error: "
                              "unknown_mse well below it = the measurement was used)",
    "unknown_psnr": "10 log10(range² / unknown_mse), range = the truth's max - min",
    "unknown_fraction": "fraction of the image's dimensions that are unknown",
}


def errors(task: inverse.Task, x: torch.Tensor, truth: torch.Tensor, index: np.ndarray) -> dict:
    """Error on the known part and against the truth (and a mismatched truth) on the rest."""
    x, truth = x.double(), truth.double()
    fraction = task.unknown_fraction(index)
    unknown_dims = fraction * truth.numel()

    def rest(diff: torch.Tensor) -> torch.Tensor:
        return diff - task.known(diff, index)

    known = task.known(x - truth, index)
    mse = float((rest(x - truth) ** 2).sum() / unknown_dims)
    mse_other = float((rest(x - truth.roll(1, dims=0)) ** 2).sum() / unknown_dims)
    peak = float(truth.max() - truth.min())
    return {"known_rmse": float(known.pow(2).mean().sqrt()), "known_max_abs_error": float(known.abs().max()),
            "unknown_mse": mse, "unknown_mse_mismatched": mse_other,
            "unknown_psnr": 10 * math.log10(peak**2 / mse) if mse > 0 else float("inf"),
            "unknown_fraction": fraction}


def evaluate_inverse(spec: dict, samples: Path, data: Path, reference: Path,
                     device: torch.device | str = "cpu") -> dict:
    """``wsgm.evaluate.evaluate`` of the solutions, with an ``inverse`` block of errors."""
    group = open_group(samples, "x0", "truth", "y")
    if group.attrs.get("mode") != "inverse":
        raise evaluate_lib.EvaluationError(f"{samples} is not an inverse-problem store (mode "
                                           f"{group.attrs.get('mode')!r}). Fix: make it with `wsgm sample --inverse`")
    meta = dict(group.attrs["inverse"])
    x, truth = (torch.from_numpy(np.asarray(group[k][:])) for k in ("x0", "truth"))
    task = inverse.build(meta["task"], truth.shape[1], truth.shape[-1], spec["seed"])
    index = np.arange(meta["offset"], meta["offset"] + len(truth))
    result = evaluate_lib.evaluate(spec, samples, data, reference, device)
    result["inverse"] = {"task": meta["task"], "offset": meta["offset"], "metrics": errors(task, x, truth, index)}
    result["definitions"] |= DEFINITIONS
    return result
