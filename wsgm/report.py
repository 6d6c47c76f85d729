"""Plots (PNG and SVG) and tables of the best settings from the per-(experiment, steps) metric files.

x axes are the steps per scale (the mean over scales for a per-scale list), so WSGM (J > 0) and
plain SGM (J = 0) sit on the same axes at equal cost per scale; dashed lines are the same metric
for as many real images as samples (the sampling-noise floor).
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wsgm.data.store import read_array  # noqa: E402
from wsgm.steps import Steps  # noqa: E402

log = logging.getLogger("wsgm.report")


def _label(name: str, J: int) -> str:
    return f"{name} ({'SGM' if J == 0 else 'WSGM'}, J={J})"


def _steps_x(r: dict) -> float:
    per_scale = r.get("steps_per_scale") or Steps(r["steps"]).per_scale(r["J"])
    return float(np.mean(per_scale))


def load_metrics(paths: list[Path]) -> list[dict]:
    return sorted((json.loads(Path(p).read_text()) for p in paths),
                  key=lambda m: (m["experiment"], _steps_x(m)))


def _save(fig, out: Path, svg: Path | None = None) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    if svg is not None:
        fig.savefig(svg)
    plt.close(fig)
    log.info("wrote %s%s", out, f" and {svg}" if svg else "")


def _scale_metrics(r: dict, k: int) -> dict:
    scales = r.get("scales", {"0": {"metrics": r["metrics"]}})
    return scales.get(str(k), {}).get("metrics", {})


def _metric_panel(ax, results: list[dict], metric: str, k: int = 0) -> bool:
    drawn = False
    floors = []
    for name in dict.fromkeys(r["experiment"] for r in results):
        rows = [r for r in results if r["experiment"] == name and metric in _scale_metrics(r, k)]
        if not rows:
            continue
        ys = [_scale_metrics(r, k)[metric] for r in rows]
        ax.plot([_steps_x(r) for r in rows], ys, "o-", label=_label(name, rows[0]["J"]))
        floors += [_scale_metrics(r, k)[f"{metric}_data_floor"] for r in rows
                   if f"{metric}_data_floor" in _scale_metrics(r, k)]
        drawn = True
    if floors:
        ax.axhline(float(np.median(floors)), color="gray", ls="--", label="real images (same count)")
    positive = all(v > 0 for line in ax.get_lines() for v in line.get_ydata())
    ax.set(xscale="log", yscale="log" if drawn and positive else "linear", xlabel="steps per scale",
           ylabel=metric)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def quality_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None) -> None:
    """One panel per metric at the final resolution: metric against steps per scale."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        if not _metric_panel(ax, results, metric):
            ax.text(0.5, 0.5, f"{metric}: not computed", ha="center", transform=ax.transAxes)
        ax.set_title(metric)
    fig.suptitle("Sample quality against sampling steps (final resolution)")
    _save(fig, out, svg)


def per_scale_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None) -> None:
    """Rows = metrics, columns = resolutions x_0 (final) .. x_J (coarsest)."""
    max_j = max(r["J"] for r in results)
    fig, axes = plt.subplots(len(metrics), max_j + 1, figsize=(4.2 * (max_j + 1), 3.3 * len(metrics)),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        for k in range(max_j + 1):
            ax = axes[i, k]
            sizes = [r["scales"][str(k)]["size"] for r in results if str(k) in r.get("scales", {})]
            if not _metric_panel(ax, results, metric, k):
                ax.text(0.5, 0.5, "not computed", ha="center", transform=ax.transAxes)
            ax.set_title(f"{metric} at x{k}" + (f" ({sizes[0]}×{sizes[0]})" if sizes else ""), fontsize=9)
    fig.suptitle("Quality at every resolution of the cascade (x0 = final image)")
    _save(fig, out, svg)


def spectra_plot(results: list[dict], out: Path, svg: Path | None = None) -> None:
    """One panel per experiment: data (and exact) spectrum and the samples' at every step count."""
    names = list(dict.fromkeys(r["experiment"] for r in results))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = [r for r in results if r["experiment"] == name and "samples" in r.get("spectra", {})]
        if not rows:
            continue
        shells = np.arange(len(rows[0]["spectra"]["data"]))  # from shell 0 (DC): its error is scored too
        ax.plot(shells, rows[0]["spectra"]["data"], "k-", lw=2.5, label="data")
        if "exact" in rows[0]["spectra"]:
            ax.plot(shells, rows[0]["spectra"]["exact"], "k:", lw=2, label="exact")
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
        for c, r in zip(colors, rows):
            ax.plot(shells, r["spectra"]["samples"], color=c, label=f"{Steps(r['steps']).label} steps")
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)  # logarithmic above shell 1, linear to 0
        ax.set(yscale="log", xlim=(0, shells[-1]), xlabel="radial frequency (shell; 0 = DC)", ylabel="power",
               title=f"power spectrum: {_label(name, rows[0]['J'])}")
        ax.legend(fontsize=7)
    _save(fig, out, svg)


def sample_grid(rows: dict[str, np.ndarray], per_row: int, out: Path, svg: Path | None = None) -> None:
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 1.2, len(rows) * 1.35),
                             squeeze=False)
    for i, (label, x) in enumerate(rows.items()):
        lo, hi = np.percentile(x[:per_row], [1, 99])
        for k in range(per_row):
            ax = axes[i, k]
            ax.set_axis_off()
            if k < len(x):
                img = x[k].transpose(1, 2, 0)
                img = img[..., 0] if img.shape[-1] == 1 else np.clip((img - lo) / (hi - lo), 0, 1)
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        axes[i, 0].set_title(label, fontsize=7, loc="left")
    _save(fig, out, svg)


def best_table(results: list[dict], metrics: list[str]) -> dict[str, dict]:
    """Per experiment and metric: the step setting with the lowest value at the final resolution."""
    best: dict[str, dict] = {}
    for name in dict.fromkeys(r["experiment"] for r in results):
        rows = [r for r in results if r["experiment"] == name]
        best[name] = {}
        for metric in metrics:
            cands = [(r, r["metrics"][metric]) for r in rows if metric in r["metrics"]]
            if cands:
                r, v = min(cands, key=lambda rv: rv[1])
                best[name][metric] = {"steps": Steps(r["steps"]).label, "value": v,
                                      "floor": r["metrics"].get(f"{metric}_data_floor"),
                                      "std": r["metrics"].get("std"), "std_data": r["metrics"].get("std_data"),
                                      "nfe_per_sample": r.get("cost", {}).get("nfe_per_sample"),
                                      "samples_per_s": r.get("cost", {}).get("samples_per_s")}
    return best


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def table_markdown(best: dict, results: list[dict], experiments: dict | None = None) -> str:
    """The best settings (with the samples' pixel std beside the data's at that setting) and, from
    the report spec's ``experiments``, each model's receptive field."""
    lines = ["| experiment | metric | best steps | value | real-data floor | sample std | data std | NFE/sample "
             "| samples/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, per in best.items():
        for metric, b in per.items():
            lines.append(f"| {name} | {metric} | {b['steps']} | {_fmt(b['value'])} | {_fmt(b['floor'])} "
                         f"| {_fmt(b.get('std'))} | {_fmt(b.get('std_data'))} "
                         f"| {_fmt(b['nfe_per_sample'])} | {_fmt(b['samples_per_s'])} |")
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
    return "\n".join(lines) + "\n"


def table_html(markdown: str) -> str:
    """Each Markdown table of ``markdown`` (blocks separated by blank lines) as an HTML table; other
    lines as paragraphs."""
    parts = []
    for block in markdown.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|") and "---" not in line]
        if rows:
            cells = [[html.escape(c.strip()) for c in row.strip("|").split("|")] for row in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            parts.append(f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>")
        parts += [f"<p>{html.escape(line)}</p>" for line in block.splitlines() if line and not line.startswith("|")]
    return "<!doctype html><meta charset='utf-8'><title>Best settings</title>" + "".join(parts) + "\n"


def report(spec: dict, metrics: list[Path], samples: dict[str, Path], data: dict[str, Path],
           outputs: dict[str, Path]) -> dict:
    results = load_metrics(metrics)
    shown = spec["report"]["metrics"]
    log.info("report: %d metric files, %d sample stores", len(results), len(samples))
    quality_plot(results, shown, outputs["quality"], outputs.get("quality_svg"))
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
        main[f"{_label(name, exp['J'])}, {label} steps"] = read_array(path, "x0", per_row)
        every[f"data ({exp['dataset']})"] = real
        for label, path in stores:
            every[f"{_label(name, exp['J'])}, {label} steps"] = read_array(path, "x0", per_row)
    sample_grid(main, per_row, outputs["samples"])
    if "steps_grid" in outputs:
        sample_grid(every, per_row, outputs["steps_grid"])
    table = {name: {Steps(r["steps"]).label: {k: v for k, v in r["metrics"].items() if not isinstance(v, list)}
                    for r in results if r["experiment"] == name}
             for name in spec["experiments"]}
    best = best_table(results, shown)
    markdown = table_markdown(best, results, spec.get("experiments"))
    if "table_md" in outputs:
        outputs["table_md"].write_text(markdown)
    if "table_html" in outputs:
        outputs["table_html"].write_text(table_html(markdown))
    ranked = shown[0]
    summary = {"metric": ranked, "table": table,
               "best": {n: ([b[ranked]["steps"], b[ranked]["value"]] if ranked in b else None)
                        for n, b in best.items()},
               "best_per_metric": best}
    outputs["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
