"""Plots and a summary table from the per-(experiment, steps) metric files."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wsgm.data.store import read_array  # noqa: E402


def _label(name: str, J: int) -> str:
    return f"{name} ({'SGM' if J == 0 else 'WSGM'}, J={J})"


def load_metrics(paths: list[Path]) -> list[dict]:
    return sorted((json.loads(Path(p).read_text()) for p in paths),
                  key=lambda m: (m["experiment"], m["steps"]))


def quality_plot(results: list[dict], metrics: list[str], out: Path) -> None:
    """One panel per metric: metric against steps per scale, one line per experiment."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name in dict.fromkeys(r["experiment"] for r in results):
            rows = [r for r in results if r["experiment"] == name and metric in r["metrics"]]
            if rows:
                ax.plot([r["steps"] for r in rows], [r["metrics"][metric] for r in rows], "o-",
                        label=_label(name, rows[0]["J"]))
        floors = [r["metrics"][f"{metric}_data_floor"] for r in results
                  if f"{metric}_data_floor" in r["metrics"]]
        if floors:
            ax.axhline(float(np.median(floors)), color="gray", ls="--", label="real images (same count)")
        ax.set(xscale="log", yscale="log", xlabel="steps per scale", ylabel=metric, title=metric)
        ax.legend(fontsize=8)
    fig.suptitle("Sample quality against sampling steps")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def spectra_plot(results: list[dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    best = {}
    for r in results:
        best[r["experiment"]] = r  # sorted by steps: keeps the largest
    first = next(iter(best.values()))
    shells = np.arange(1, len(first["spectra"]["data"]))
    ax.plot(shells, first["spectra"]["data"][1:], "k-", lw=2, label="data")
    if "exact" in first["spectra"]:
        ax.plot(shells, first["spectra"]["exact"][1:], "k:", label="exact")
    for name, r in best.items():
        ax.plot(shells, r["spectra"]["samples"][1:], label=f"{_label(name, r['J'])}, {r['steps']} steps")
    ax.set(xscale="log", yscale="log", xlabel="radial frequency (shell)", ylabel="power",
           title="Radially averaged power spectrum")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def sample_grid(rows: dict[str, np.ndarray], per_row: int, out: Path) -> None:
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
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def report(spec: dict, metrics: list[Path], samples: dict[str, Path], data: dict[str, Path],
           outputs: dict[str, Path]) -> dict:
    results = load_metrics(metrics)
    metrics_shown = spec["report"]["metrics"]
    metric = metrics_shown[0]
    quality_plot(results, metrics_shown, outputs["quality"])
    spectra_plot(results, outputs["spectra"])
    per_row = spec["report"]["grid"]
    rows = {}
    for name, path in samples.items():
        exp = spec["experiments"][name]
        rows[f"data ({exp['dataset']})"] = read_array(data[name], "x", per_row)
        rows[f"{_label(name, exp['J'])}, {max(exp['steps'])} steps"] = read_array(path, "x0", per_row)
    sample_grid(rows, per_row, outputs["samples"])
    table = {name: {str(r["steps"]): r["metrics"] for r in results if r["experiment"] == name}
             for name in spec["experiments"]}
    best = {name: min(((s, m[metric]) for s, m in rows_.items() if metric in m),
                      key=lambda sm: sm[1], default=None)
            for name, rows_ in table.items()}
    summary = {"metric": metric, "table": table, "best": best}
    outputs["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
