"""Learning curves in the report: quality against training compute.

With ``learning_curve.fractions`` the report reads, beside the usual metric files, one per
(experiment, snapshot fraction) (``snapshot`` in the file: fraction, steps per model, training
FLOPs summed over the models) and places the final models' file at the learning-curve step setting
at fraction 1 with the training compute of the report spec's ``training`` entry. This module keeps
those points apart from the step sweeps (:func:`split`), gives each its compute (``train_flops``,
the x of quality_vs_training) and writes their table for best.md and summary.json.
"""

from __future__ import annotations

from wsgm.metric_info import interval_of, is_number
from wsgm.steps import Steps


def train_flops(r: dict) -> float | None:
    """Training compute (FLOPs summed over the models) of the weights a metric file was sampled from."""
    v = r.get("train_flops")
    return float(v) if is_number(v) else None


def split(results: list[dict], spec: dict) -> tuple[list[dict], list[dict]]:
    """(the step-sweep results, the learning-curve points), each point with ``train_flops`` and
    ``fraction``; the final models' results get their ``train_flops`` too (from spec["training"])."""
    training = spec.get("training") or {}
    sweep = [r for r in results if not r.get("snapshot")]
    for r in sweep:
        t = training.get(r["experiment"])
        if t:
            r["train_flops"] = t["train_flops"]
    points = []
    for r in results:
        if r.get("snapshot"):
            r["train_flops"], r["fraction"] = r["snapshot"]["train_flops"], r["snapshot"]["fraction"]
            points.append(r)
    if "learning_curve" in spec:
        for r in sweep:
            t = training.get(r["experiment"]) or {}
            if t.get("learning_curve_steps") == Steps(r["steps"]).label:
                points.append({**r, "fraction": 1.0})
    points.sort(key=lambda r: (r["experiment"], r["fraction"]))
    return sweep, points


def rows(points: list[dict], metrics: list[str]) -> list[dict]:
    """One row per learning-curve point: experiment, fraction, steps per model, compute, metrics."""
    out = []
    for r in points:
        snap = r.get("snapshot") or {}
        out.append({"experiment": r["experiment"], "fraction": r["fraction"], "sampling_steps": Steps(r["steps"]).label,
                    "train_steps": snap.get("train_steps"), "train_flops": r.get("train_flops"),
                    "metrics": {m: {"value": r["metrics"].get(m), "ci": interval_of(r["metrics"], f"{m}_ci")}
                                for m in metrics if is_number(r["metrics"].get(m))}})
    return out


def markdown(table: list[dict], training: dict, metrics: list[str], fmt_pm) -> list[str]:
    """best.md's lines: the training compute of every experiment, and the learning-curve table."""
    if not training:
        return []
    lines = ["Training compute per experiment (FLOPs of the forward and backward passes of every training "
             "step, counted by torch's FlopCounterMode, summed over the J+1 models; images × grid pixels seen):",
             "", "| experiment | budget | split | steps per model | training FLOPs | images × pixels |",
             "|---|---|---|---|---|---|"]
    for name, t in training.items():
        budget = ", ".join(f"{k} {v:.3g}" for k, v in (t.get("budget") or {}).items()) or "– (train.steps)"
        lines.append(f"| {name} | {budget} | {t.get('budget_split') or '–'} | {t['train_steps']} "
                     f"| {t['train_flops']:.4g} | {t['train_image_pixels']:.4g} |")
    if table:
        shown = metrics[:3]
        lines += ["", "Learning curve (quality_vs_training.png): EMA snapshots at fractions of training, sampled "
                  "at one step setting per experiment; fraction 1 = the final weights.", "",
                  "| experiment | fraction | sampling steps | training FLOPs | " + " | ".join(shown) + " |",
                  "|---|---|---|---|" + "---|" * len(shown)]
        for row in table:
            cells = [fmt_pm(row["metrics"][m]["value"], row["metrics"][m]["ci"]) if m in row["metrics"] else "–"
                     for m in shown]
            flops = f"{row['train_flops']:.4g}" if is_number(row["train_flops"]) else "–"
            lines.append(f"| {row['experiment']} | {row['fraction']:g} | {row['sampling_steps']} | {flops} | "
                         + " | ".join(cells) + " |")
    return lines
