"""Plots (PNG and SVG) and tables of the best settings from the per-(experiment, steps) metric files.

x axes are the steps per scale (the mean over scales for a per-scale list), so WSGM (J > 0) and
plain SGM (J = 0) sit on the same axes at equal cost per scale; quality_vs_cost puts the same panels
against sampling cost (network evaluations per sample weighted by the pixels each runs on, divided
by the final image's: ``weighted_cost``), quality_vs_time against measured seconds per sample. One
curve per (experiment, sampler). Figures are grids of panels (three
columns), one colour per experiment (a fixed mapping from the sorted experiment names, the same in
every figure); shaded bands are the 95% bootstrap intervals (``<metric>_ci``) where the metric file
has them, dashed lines the same metric for as many held-out real images as samples (the
sampling-noise floor, ``<metric>_data_floor``, band ``<metric>_data_floor_ci``).

best.md prints every value as ``value ± h``, h = half the width of its 95% interval; a setting
*reaches the floor* when the 95% interval of (metric − floor), ``<metric>_excess_ci``, has its lower
end ≤ 0. The comparison table gives, for two experiments on the same dataset, the difference of
each metric with the percentile interval of the differences of their (independent) bootstrap draws
(``scales[k]["bootstrap"][metric]``); a line per metric names the cheapest setting (by weighted
cost) whose interval overlaps the best setting's, across experiments. Metric files without these
keys still render, without bands.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import re
from pathlib import Path

import numpy as np

from wsgm import learning_curve
from wsgm.data.store import read_array
from wsgm.metric_info import (bootstrap_draws, experiment_label, experiment_names, feature_space,  # noqa: F401
                              interval_of, is_number, lower_is_better, metric_title, reaches_floor, steps_x,
                              weighted_cost)
from wsgm.metrics import intervals
from wsgm.report_figures import (cost_plot, experiment_colors, per_scale_plot, quality_plot,  # noqa: F401
                                 sample_grid, spectra_plot)
from wsgm.steps import Steps

log = logging.getLogger("wsgm.report")

LEVEL = 0.95

PM_RULE = ("Values are `value ± h`, h = half the width (hi − lo)/2 of the 95% percentile-bootstrap "
           "interval [lo, hi] over the samples (images resampled with replacement, reference fixed); "
           "the interval may be asymmetric about the value (summary.json keeps [lo, hi]). Floors: the same "
           "metric for a held-out set of as many real images, with its own interval.")
FLOOR_RULE = ("Reaches floor: **yes** when the lower end of the 95% interval of (metric − data floor) is ≤ 0, "
              "i.e. the interval contains 0 or lies below it (the samples cannot be told from as many "
              "held-out real images by this metric); **no** otherwise; – where the metric file has no intervals.")

def load_metrics(paths: list[Path]) -> list[dict]:
    return sorted((json.loads(Path(p).read_text()) for p in paths),
                  key=lambda m: (m["experiment"], steps_x(m)))


# --- tables -----------------------------------------------------------------------------------

def difference_interval(a, b, level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile interval of draws_a − draws_b (independent bootstraps; None without draws)."""
    if not a or not b:
        return None
    lo, hi = intervals.difference_interval(np.asarray(a, dtype=float), np.asarray(b, dtype=float), level)
    return None if math.isnan(lo) else (lo, hi)


def best_table(results: list[dict], metrics: list[str]) -> dict[str, dict]:
    """Per experiment and metric: the step setting with the lowest value at the final resolution,
    with its interval, floor, floor interval, excess interval and the reaches-floor decision."""
    best: dict[str, dict] = {}
    for name in dict.fromkeys(r["experiment"] for r in results):
        rows = [r for r in results if r["experiment"] == name]
        best[name] = {}
        for metric in metrics:
            cands = [(r, r["metrics"][metric]) for r in rows if is_number(r["metrics"].get(metric))]
            if cands:
                r, v = min(cands, key=lambda rv: rv[1])
                m = r["metrics"]
                best[name][metric] = {"steps": Steps(r["steps"]).label, "value": v,
                                      "ci": interval_of(m, f"{metric}_ci"),
                                      "floor": m.get(f"{metric}_data_floor"),
                                      "floor_ci": interval_of(m, f"{metric}_data_floor_ci"),
                                      "excess_ci": interval_of(m, f"{metric}_excess_ci"),
                                      "reaches_floor": reaches_floor(r, metric),
                                      "std": m.get("std"), "std_data": m.get("std_data"),
                                      "nfe_per_sample": r.get("cost", {}).get("nfe_per_sample"),
                                      "samples_per_s": r.get("cost", {}).get("samples_per_s")}
    return best


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def cheapest_within_best(results: list[dict], metrics: list[str]) -> dict[str, dict]:
    """Per lower-is-better metric, across experiments: the best setting (lowest value at the final
    resolution) and the cheapest setting by weighted cost (``weighted_cost``: Σ_j NFE_j × pixels_j /
    pixels of the final image) whose 95% interval (the value alone without one) overlaps the best's
    ("within the interval of the best quality"; ties in cost: the lower value). Metrics without a
    costed setting are left out."""
    out = {}
    for metric in metrics:
        if not lower_is_better(metric):
            continue
        rows = [r for r in results if is_number(r["metrics"].get(metric)) and weighted_cost(r) is not None]
        if not rows:
            continue

        def interval(r):
            v = float(r["metrics"][metric])
            return interval_of(r["metrics"], f"{metric}_ci") or (v, v)

        def entry(r):
            return {"experiment": r["experiment"], "steps": Steps(r["steps"]).label,
                    "value": float(r["metrics"][metric]), "ci": interval_of(r["metrics"], f"{metric}_ci"),
                    "cost": weighted_cost(r), "sampler": r.get("sampler")}

        best = min(rows, key=lambda r: (float(r["metrics"][metric]), weighted_cost(r)))
        within = [r for r in rows if _overlaps(interval(r), interval(best))]
        cheap = min(within, key=lambda r: (weighted_cost(r), float(r["metrics"][metric])))
        out[metric] = {"best": entry(best), "cheapest": entry(cheap),
                       "cost_ratio": weighted_cost(cheap) / weighted_cost(best) if weighted_cost(best) else None}
    return out


def cheapest_markdown(cheapest: dict[str, dict]) -> list[str]:
    if not cheapest:
        return []
    lines = ["Cheapest setting within the interval of the best quality, per metric across experiments: the "
             "setting of least sampling cost (network evaluations per sample weighted by the pixels they run "
             "on, Σ_j NFE_j × pixels_j / pixels of the final image) whose 95% interval overlaps that of the "
             "best value.",
             "",
             "| metric | best (experiment, steps) | best value | best cost | cheapest within its interval "
             "| its value | its cost | cost / best's |",
             "|---|---|---|---|---|---|---|---|"]
    for metric, c in cheapest.items():
        b, ch = c["best"], c["cheapest"]
        lines.append(f"| {metric} | {b['experiment']}, {b['steps']} | {fmt_pm(b['value'], b['ci'])} | {_g(b['cost'])} "
                     f"| {ch['experiment']}, {ch['steps']} | {fmt_pm(ch['value'], ch['ci'])} | {_g(ch['cost'])} "
                     f"| {_fmt(c['cost_ratio'])} |")
    return lines


def _dataset(name: str, results: list[dict], experiments: dict | None) -> str | None:
    e = (experiments or {}).get(name) or {}
    return e.get("dataset") or next((r.get("dataset") for r in results if r["experiment"] == name
                                     and r.get("dataset")), None)


def _nfe(r: dict) -> float | None:
    v = r.get("cost", {}).get("nfe_per_sample")
    return float(v) if is_number(v) and v > 0 else None


def comparisons(results: list[dict], metrics: list[str], experiments: dict | None = None,
                cost_ratio: float = 1.5) -> list[dict]:
    """For each pair (a, b) of experiments on the same dataset (a before b by name): a − b of each
    metric at the final resolution, with the 95% interval from the bootstrap draws, (1) at equal steps
    per scale and (2) at about equal cost: each setting of either with the other's setting nearest in NFE
    per sample, kept within a factor ``cost_ratio`` (pairs already matched by (1) are not repeated)."""
    out = []
    for a, b in itertools.combinations(experiment_names(results), 2):
        da, db = _dataset(a, results, experiments), _dataset(b, results, experiments)
        if da != db:
            continue
        ra = [r for r in results if r["experiment"] == a]
        rb = [r for r in results if r["experiment"] == b]
        matches, seen = [], set()
        for x in sorted({steps_x(r) for r in ra} & {steps_x(r) for r in rb}):
            pair = (next(r for r in ra if steps_x(r) == x), next(r for r in rb if steps_x(r) == x))
            matches.append(("equal steps per scale", *pair))
            seen.add((id(pair[0]), id(pair[1])))
        if all(_nfe(r) for r in ra + rb):
            near = {}  # each setting's nearest in cost on the other side, both ways
            def nearest(x, others):
                return min(others, key=lambda q: abs(math.log(_nfe(x) / _nfe(q))))
            for r, s in [(r, nearest(r, rb)) for r in ra] + [(nearest(s, ra), s) for s in rb]:
                near[(id(r), id(s))] = (r, s)
            for key, (r, s) in sorted(near.items(), key=lambda kv: (_nfe(kv[1][0]), _nfe(kv[1][1]))):
                if max(_nfe(r), _nfe(s)) / min(_nfe(r), _nfe(s)) <= cost_ratio and key not in seen:
                    matches.append(("≈ equal cost", r, s))
                    seen.add(key)
        for match, r, s in matches:
            row = {"a": a, "b": b, "dataset": da, "match": match,
                   "steps_a": Steps(r["steps"]).label, "steps_b": Steps(s["steps"]).label,
                   "steps_per_scale_a": steps_x(r), "steps_per_scale_b": steps_x(s),
                   "nfe_a": _nfe(r), "nfe_b": _nfe(s), "metrics": {}}
            for m in metrics:
                va, vb = r["metrics"].get(m), s["metrics"].get(m)
                if not (is_number(va) and is_number(vb)):
                    continue
                ci = difference_interval(bootstrap_draws(r, m), bootstrap_draws(s, m))
                row["metrics"][m] = {"diff": float(va) - float(vb), "ci": list(ci) if ci else None,
                                     "significant": (ci[0] > 0 or ci[1] < 0) if ci else None}
            out.append(row)
    return out


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _g(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}"


def fmt_pm(value, ci) -> str:
    """``value ± h``, h = (hi − lo)/2 of the 95% interval; the value alone without one."""
    if not is_number(value):
        return _fmt(value)
    if not ci:
        return _fmt(float(value))
    return f"{float(value):.4g} ± {(ci[1] - ci[0]) / 2:.2g}"


def _fmt_ci(ci) -> str:
    return f"[{_g(ci[0])}, {_g(ci[1])}]" if ci else "–"


def _yes_no(v) -> str:
    return "–" if v is None else ("yes" if v else "no")


def _interval_note(results: list[dict]) -> list[str]:
    notes = set()
    for r in results:
        i = r.get("intervals")
        if isinstance(i, dict):
            parts = [f"level {i['level']}" if "level" in i else None,
                     f"B = {i['bootstrap']} bootstrap draws" if "bootstrap" in i else None,
                     str(i["method"]) if i.get("method") else None]
            notes.add("Intervals in the metric files: " + ", ".join(p for p in parts if p) + "."
                      + (f" Their rule: {i['rule']}" if i.get("rule") else ""))
    return sorted(notes)


def comparison_markdown(comps: list[dict], metrics: list[str]) -> list[str]:
    if not comps:
        return []
    shown = [m for m in metrics if any(m in c["metrics"] for c in comps)]
    lines = ["Differences between experiments on the same dataset, at the final resolution: each cell is "
             "Δ = a − b [lo, hi], the 95% percentile interval of draws_a − draws_b over the two experiments' "
             "independent bootstrap draws; **sig.** = significant (the interval excludes 0); for lower-is-better "
             "metrics Δ < 0 means a is better. Matched at equal steps per scale, and at about equal cost "
             "(each setting paired with the other experiment's setting nearest in NFE per sample, kept where the "
             "NFEs are within a factor 1.5).",
             "",
             "| a − b | matched on | steps a / b | NFE/sample a / b | " + " | ".join(shown) + " |",
             "|---|---|---|---|" + "---|" * len(shown)]
    for c in comps:
        cells = []
        for m in shown:
            d = c["metrics"].get(m)
            if d is None:
                cells.append("–")
                continue
            cell = f"{_g(d['diff'])} {_fmt_ci(d['ci'])}" if d["ci"] else f"{_g(d['diff'])} (no draws)"
            cells.append(cell + (" **sig.**" if d["significant"] else ""))
        lines.append(f"| {c['a']} − {c['b']} | {c['match']} | {c['steps_a']} / {c['steps_b']} "
                     f"| {_fmt(c['nfe_a'])} / {_fmt(c['nfe_b'])} | " + " | ".join(cells) + " |")
    return lines


def table_markdown(best: dict, results: list[dict], experiments: dict | None = None,
                   comps: list[dict] | None = None, metrics: list[str] | None = None,
                   cheapest: dict | None = None) -> str:
    """The best settings (value ± half-width, floor ± half-width, excess interval, reaches-floor by the
    rule, the samples' pixel std beside the data's), the differences between experiments and, from the
    report spec's ``experiments``, each model's receptive field."""
    lines = ["Best step setting of each experiment for each metric (lowest value at the final resolution).",
             "", PM_RULE, "", FLOOR_RULE, "",
             "| experiment | metric | best steps | value | real-data floor | metric − floor (95%) | reaches floor "
             "| sample std | data std | NFE/sample | samples/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, per in best.items():
        for metric, b in per.items():
            lines.append(f"| {name} | {metric} | {b['steps']} | {fmt_pm(b['value'], b.get('ci'))} "
                         f"| {fmt_pm(b['floor'], b.get('floor_ci'))} | {_fmt_ci(b.get('excess_ci'))} "
                         f"| {_yes_no(b.get('reaches_floor'))} "
                         f"| {_fmt(b.get('std'))} | {_fmt(b.get('std_data'))} "
                         f"| {_fmt(b['nfe_per_sample'])} | {_fmt(b['samples_per_s'])} |")
    cheap_lines = cheapest_markdown(cheapest or {})
    if cheap_lines:
        lines += [""] + cheap_lines
    notes = _interval_note(results)
    if notes:
        lines += [""] + notes
    comp_lines = comparison_markdown(comps or [], metrics or [m for per in best.values() for m in per])
    if comp_lines:
        lines += [""] + comp_lines
    models = [(name, m) for name, e in (experiments or {}).items() for m in e.get("models", [])]
    if models:
        lines += ["", "| experiment | model | input side | receptive field (px) | attention at | padding "
                  "| sees whole input |", "|---|---|---|---|---|---|---|"]
        for name, m in models:
            J = experiments[name]["J"]
            model = f"{m['scale']} ({'unconditional' if m['scale'] == J else 'conditional'})"
            attn = ", ".join(map(str, m["attention"])) or "–"
            lines.append(f"| {name} | {model} | {m['side']} | {m['receptive_field']} | {attn} | {m['padding']} "
                         f"| {'yes' if m['sees_whole_input'] else 'no'} |")
    ext = {json.dumps(r.get("extractor"), sort_keys=True) for r in results if r.get("extractor")}
    if ext:
        lines += ["", "FID/KID feature extractor: " + "; ".join(sorted(ext))]
    spaces = {m: feature_space(m, results) for per in best.values() for m in per}
    spaces = {m: s for m, s in spaces.items() if s}
    if spaces:
        lines += ["", "Feature space of each FID-like metric (compare values only within one): "
                  + "; ".join(f"{m}: {s}" for m, s in spaces.items())]
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", re.sub(r"`(.+?)`", r"<code>\1</code>", html.escape(text)))


def table_html(markdown: str) -> str:
    """Each Markdown table of ``markdown`` (blocks separated by blank lines) as an HTML table; other
    lines as paragraphs."""
    parts = []
    for block in markdown.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|") and "---" not in line]
        if rows:
            cells = [[_inline(c.strip()) for c in row.strip("|").split("|")] for row in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            parts.append(f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>")
        parts += [f"<p>{_inline(line)}</p>" for line in block.splitlines() if line and not line.startswith("|")]
    return "<!doctype html><meta charset='utf-8'><title>Best settings</title>" + "".join(parts) + "\n"


def report(spec: dict, metrics: list[Path], samples: dict[str, Path], data: dict[str, Path],
           outputs: dict[str, Path]) -> dict:
    results, points = learning_curve.split(load_metrics(metrics), spec)  # step sweeps apart from snapshots
    for r in results + points:  # the sampler of each curve (experiment, sampler), from the spec where the file lacks it
        sampler = (spec.get("experiments", {}).get(r["experiment"]) or {}).get("sampler")
        if sampler and not r.get("sampler"):
            r["sampler"] = sampler
    shown = spec["report"]["metrics"]
    log.info("report: %d metric files, %d sample stores", len(results), len(samples))
    quality_plot(results, shown, outputs["quality"], outputs.get("quality_svg"))
    if "cost" in outputs:
        cost_plot(results, shown, outputs["cost"], outputs.get("cost_svg"), x="cost")
    if "time" in outputs:
        cost_plot(results, shown, outputs["time"], outputs.get("time_svg"), x="seconds")
    if "training" in outputs:
        cost_plot(points, shown, outputs["training"], outputs.get("training_svg"), x="training")
    if "scales" in outputs:
        per_scale_plot(results, shown, outputs["scales"], outputs.get("scales_svg"))
    spectra_plot(results, outputs["spectra"], outputs.get("spectra_svg"))
    per_row = spec["report"]["grid"]
    by_exp: dict[str, list[tuple[str, Path]]] = {}
    for key, path in samples.items():
        name, _, label = key.partition(":")
        by_exp.setdefault(name, []).append((label, path))
    main, every = {}, {}
    for name, stores in by_exp.items():
        exp = spec["experiments"][name]
        stores.sort(key=lambda lp: Steps(lp[0]).cost if lp[0] else 0)
        real = read_array(data[name], "x", per_row)
        main[f"data ({exp['dataset']})"] = real
        label, path = stores[-1]
        label = label or max(exp["steps"], key=lambda s: Steps(s).cost)
        main[f"{experiment_label(name, exp['J'])}, {label} steps"] = read_array(path, "x0", per_row)
        every[f"data ({exp['dataset']})"] = real
        for label, path in stores:
            every[f"{experiment_label(name, exp['J'])}, {label} steps"] = read_array(path, "x0", per_row)
    sample_grid(main, per_row, outputs["samples"])
    if "steps_grid" in outputs:
        sample_grid(every, per_row, outputs["steps_grid"])
    table = {name: {Steps(r["steps"]).label: {k: v for k, v in r["metrics"].items()
                                              if not isinstance(v, list) or k.endswith("_ci")}
                    for r in results if r["experiment"] == name}
             for name in spec["experiments"]}
    best = best_table(results, shown)
    comps = comparisons(results, shown, spec.get("experiments"))
    cheapest = cheapest_within_best(results, shown)
    markdown = table_markdown(best, results, spec.get("experiments"), comps, shown, cheapest)
    curve = learning_curve.rows(points, shown)
    lc_lines = learning_curve.markdown(curve, spec.get("training") or {}, shown, fmt_pm)
    if lc_lines:
        markdown += "\n" + "\n".join(lc_lines) + "\n"
    if "table_md" in outputs:
        outputs["table_md"].write_text(markdown)
    if "table_html" in outputs:
        outputs["table_html"].write_text(table_html(markdown))
    ranked = shown[0]
    summary = {"metric": ranked, "table": table,
               "best": {n: ([b[ranked]["steps"], b[ranked]["value"]] if ranked in b else None)
                        for n, b in best.items()},
               "best_per_metric": best, "comparisons": comps, "cheapest_within_best": cheapest,
               "rules": {"plus_minus": PM_RULE, "reaches_floor": FLOOR_RULE},
               **({"training": spec["training"]} if spec.get("training") else {}),
               **({"learning_curve": curve} if curve else {})}
    outputs["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
