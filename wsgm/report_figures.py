"""The report's figures (PNG and SVG): grids of metric panels against steps per scale with 95%
bands and held-out floors, the same at every resolution, power spectra, and sample grids. One colour
per experiment (fixed by the sorted names) in every panel of every figure."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, NullFormatter  # noqa: E402

from wsgm.metric_info import (curve_key, curve_keys, curve_label, experiment_label, experiment_names,  # noqa: E402
                              interval_of, is_number, kid_like, lower_is_better, metric_title,
                              scale_metrics, seconds_per_sample, steps_x, weighted_cost)
from wsgm.learning_curve import train_flops  # noqa: E402
from wsgm.steps import Steps  # noqa: E402

log = logging.getLogger("wsgm.report")

DPI = 120
COLUMNS = 3          # panels per row of a figure grid
PANEL = (5.2, 3.9)   # inches per panel: 3 columns = 15.6 in = 1872 px at DPI


def experiment_colors(results: list[dict]) -> dict[str, tuple]:
    """One colour per experiment, fixed by the sorted names (the same in every panel and figure)."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(sorted({r["experiment"] for r in results}))}


def _save(fig, out: Path, svg: Path | None = None) -> None:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    if svg is not None:
        fig.savefig(svg)
    plt.close(fig)
    log.info("wrote %s%s", out, f" and {svg}" if svg else "")


def _grid(n: int, panel: tuple[float, float] = PANEL, columns: int = COLUMNS):
    """A figure with n panels on rows of ``columns``; the unused slots switched off."""
    ncols = max(1, min(columns, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.9),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_axis_off()
    return fig, flat[:n]


def _set_yscale(ax, metric: str, values: list[float]) -> None:
    """KID: symlog (it can be negative); other error metrics (and the std): log where every value is
    positive, symlog where not; limits fitted to the values (bands and floors included) in the scale."""
    v = np.asarray([x for x in values if is_number(x)], dtype=float)
    if not v.size:
        return
    if kid_like(metric) or (lower_is_better(metric) and (v <= 0).any()):
        nonzero = np.abs(v[v != 0])
        lin = max(10.0 ** math.floor(math.log10(nonzero.min())) if nonzero.size else 1.0, 1e-12)
        ax.set_yscale("symlog", linthresh=lin, linscale=0.5)
        ax.yaxis.set_major_locator(FixedLocator(_symlog_ticks(v, lin)))
    elif (lower_is_better(metric) or metric == "std") and (v > 0).all():
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # decade labels only
    tr = ax.yaxis.get_transform()
    t = tr.transform(np.array([v.min(), v.max()]))
    pad = 0.06 * (t[1] - t[0]) if t[1] > t[0] else 0.5
    lo, hi = tr.inverted().transform(np.array([t[0] - pad, t[1] + pad]))
    if ax.get_yscale() == "linear" and v.min() >= 0:
        lo = max(lo, 0.0)
    ax.set_ylim(lo, hi)


def _symlog_ticks(v: np.ndarray, lin: float) -> list[float]:
    """0 and at most ~6 decades above it (from 10·linthresh: ±linthresh would crowd 0), one decade
    below 0 when the values reach beyond -10·linthresh."""
    top = math.ceil(math.log10(max(v.max(), lin)))
    first = math.log10(lin) + 1
    step = max(1, math.ceil((top - first + 1) / 6))
    ticks = [0.0] + [10.0 ** e for e in np.arange(first, top + 1, step)]
    if v.min() < 0 and math.floor(math.log10(-v.min())) >= first:
        ticks.insert(0, -10.0 ** math.floor(math.log10(-v.min())))
    return ticks


def _metric_panel(ax, results: list[dict], metric: str, k: int = 0, colors: dict | None = None,
                  floor_key: str | None = None, x=steps_x, xlabel: str = "steps per scale") -> dict:
    """metric against ``x(result)`` (steps per scale by default; settings where it is None are left
    out), one line (and 95% band) per (experiment, sampler), the data floor dashed.
    Returns what was drawn: {"lines", "bands", "floor"} (all False: nothing to draw)."""
    colors = colors or experiment_colors(results)
    floor_key = floor_key or f"{metric}_data_floor"
    drawn = {"lines": False, "bands": False, "floor": False}
    values: list[float] = []
    floors: dict[tuple, list[tuple[float, float, tuple | None]]] = {}
    for key in curve_keys(results):
        rows = sorted((r for r in results if curve_key(r) == key and is_number(scale_metrics(r, k).get(metric))
                       and is_number(x(r))), key=x)
        if not rows:
            continue
        xs = [x(r) for r in rows]
        ms = [scale_metrics(r, k) for r in rows]
        ys = [float(m[metric]) for m in ms]
        c = colors[key[0]]
        ax.plot(xs, ys, "o-", color=c, ms=4, lw=1.6, zorder=3, label=curve_label(key, rows[0]["J"]))
        cis = [interval_of(m, f"{metric}_ci") for m in ms]
        if any(cis):
            lo = [ci[0] if ci else y for ci, y in zip(cis, ys)]
            hi = [ci[1] if ci else y for ci, y in zip(cis, ys)]
            ax.fill_between(xs, lo, hi, color=c, alpha=0.22, lw=0, zorder=2)
            values += lo + hi
            drawn["bands"] = True
        values += ys
        fl = [(xv, float(m[floor_key]), interval_of(m, f"{floor_key}_ci")) for xv, m in zip(xs, ms)
              if is_number(m.get(floor_key))]
        if fl:
            floors[key] = fl
        drawn["lines"] = True
    shared = {(v, ci) for fl in floors.values() for _, v, ci in fl}
    if len(shared) == 1:  # one held-out set for every experiment: one grey line across the panel
        (v, ci), = shared
        ax.axhline(v, color="0.3", ls="--", lw=1.3, zorder=1)
        if ci:
            ax.axhspan(ci[0], ci[1], color="0.5", alpha=0.15, lw=0, zorder=0)
            values += list(ci)
        values.append(v)
    else:  # floors differ (datasets, sample counts): dashed in each experiment's colour
        for key, fl in floors.items():
            xs, vs = [xv for xv, _, _ in fl], [v for _, v, _ in fl]
            ax.plot(xs, vs, "--", color=colors[key[0]], lw=1.3, zorder=1)
            if any(ci for _, _, ci in fl):
                lo = [ci[0] if ci else v for _, v, ci in fl]
                hi = [ci[1] if ci else v for _, v, ci in fl]
                ax.fill_between(xs, lo, hi, color=colors[key[0]], alpha=0.1, lw=0, hatch="//", zorder=0)
                values += lo + hi
            values += vs
    drawn["floor"] = bool(floors)
    ax.set(xscale="log", xlabel=xlabel, ylabel=metric)
    if drawn["lines"]:
        _set_yscale(ax, metric, values)
    ax.grid(True, which="major", alpha=0.3)
    return drawn


def _legend(fig, results: list[dict], colors: dict, bands: bool, floor: bool,
            floor_label: str = "data floor: the metric for as many real images as samples (dashed)") -> None:
    J = {r["experiment"]: r["J"] for r in results}
    handles = [Line2D([], [], color=colors[key[0]], marker="o", ms=4, label=curve_label(key, J[key[0]]))
               for key in curve_keys(results)]
    if floor:
        handles.append(Line2D([], [], color="0.3", ls="--", label=floor_label))
    if bands:
        handles.append(Patch(color="0.5", alpha=0.3, label="shaded: 95% bootstrap interval"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)


def _panels(results: list[dict], metrics: list[str], k: int | None = None) -> list[str]:
    """The metrics, plus the pixel std beside the data's where the files have it."""
    ks = [k] if k is not None else [0]
    has_std = any(is_number(scale_metrics(r, kk).get("std")) for r in results for kk in ks)
    return list(metrics) + (["std"] if has_std and "std" not in metrics else [])


def _draw(ax, results, metric, k, colors, x=steps_x, xlabel: str = "steps per scale") -> dict:
    if metric == "std":
        drawn = _metric_panel(ax, results, "std", k, colors, floor_key="std_data", x=x, xlabel=xlabel)
        ax.set_title("pixel std of the samples (solid)\nvs the real data's (dashed): closer is better", fontsize=10)
        drawn["floor"] = False  # its dashed line is the data std, explained in the title
    else:
        drawn = _metric_panel(ax, results, metric, k, colors, x=x, xlabel=xlabel)
        ax.set_title(metric_title(metric, results), fontsize=10)
    if not drawn["lines"]:
        missing = "not computed" if x is steps_x else f"not computed, or no {xlabel} recorded"
        ax.text(0.5, 0.5, f"{metric}: {missing}", ha="center", transform=ax.transAxes, wrap=True)
    return drawn


def quality_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None) -> None:
    """A grid of panels, one per metric (and the pixel std) at the final resolution, against steps per scale."""
    colors = experiment_colors(results)
    panels = _panels(results, metrics)
    fig, axes = _grid(len(panels))
    bands = floor = False
    for ax, metric in zip(axes, panels):
        d = _draw(ax, results, metric, 0, colors)
        bands, floor = bands or d["bands"], floor or d["floor"]
    fig.suptitle("Sample quality against sampling steps (final resolution)")
    _legend(fig, results, colors, bands, floor)
    _save(fig, out, svg)


# x axes of ``cost_plot``: (accessor, axis label, title phrase)
COST_AXES = {
    "cost": (weighted_cost, "sampling cost per sample (NFE × pixels / final-image pixels)",
             "against sampling cost (network evaluations weighted by the pixels they run on)"),
    "seconds": (seconds_per_sample, "measured seconds per sample",
                "against measured sampling time per sample"),
    "training": (train_flops, "training compute (FLOPs, summed over the models)",
                 "against training compute (EMA snapshots and final weights)"),
}


def cost_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None,
              x: str = "cost") -> None:
    """``quality_plot``'s panels against sampling cost: ``x = "cost"``, network evaluations per sample
    weighted by pixels (Σ_j NFE_j × pixels_j / pixels of the final image, ``weighted_cost``), or
    ``"seconds"``, the measured wall time per sample (``seconds_per_sample``)."""
    if x not in COST_AXES:
        raise ValueError(f"cost axis must be one of {tuple(COST_AXES)}, not {x!r}")
    accessor, xlabel, what = COST_AXES[x]
    colors = experiment_colors(results)
    panels = _panels(results, metrics)
    fig, axes = _grid(len(panels))
    bands = floor = False
    for ax, metric in zip(axes, panels):
        d = _draw(ax, results, metric, 0, colors, x=accessor, xlabel=xlabel)
        bands, floor = bands or d["bands"], floor or d["floor"]
    fig.suptitle(f"Sample quality {what} (final resolution)")
    _legend(fig, results, colors, bands, floor)
    _save(fig, out, svg)


def per_scale_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None) -> None:
    """Rows = metrics (and pixel std), columns = resolutions x_0 (final) .. x_J (coarsest)."""
    colors = experiment_colors(results)
    max_j = max(r["J"] for r in results)
    panels = list(metrics) + (["std"] if "std" not in metrics and any(
        is_number(scale_metrics(r, k).get("std")) for r in results for k in range(r["J"] + 1)) else [])
    width = min(PANEL[0], 16.0 / (max_j + 1))  # at most 16 in = 1920 px wide
    fig, axes = plt.subplots(len(panels), max_j + 1, figsize=(width * (max_j + 1), 3.4 * len(panels) + 0.9),
                             squeeze=False, layout="constrained")
    bands = floor = False
    for i, metric in enumerate(panels):
        for k in range(max_j + 1):
            ax = axes[i, k]
            sizes = [r["scales"][str(k)]["size"] for r in results if str(k) in r.get("scales", {})]
            d = _draw(ax, results, metric, k, colors)
            bands, floor = bands or d["bands"], floor or d["floor"]
            where = f"x{k}" + (f" ({sizes[0]}×{sizes[0]})" if sizes else "")
            ax.set_title(f"{where}: {ax.get_title()}", fontsize=9)
    fig.suptitle("Quality at every resolution of the cascade (x0 = final image)")
    _legend(fig, results, colors, bands, floor)
    _save(fig, out, svg)


def spectra_plot(results: list[dict], out: Path, svg: Path | None = None) -> None:
    """One panel per experiment: data (solid black) and exact (dotted grey) spectra, the samples' at
    every step count, from shell 0 (DC); the legend gives the pixel std of each."""
    colors = experiment_colors(results)
    names = experiment_names(results)
    fig, axes = _grid(len(names), panel=(5.4, 4.2))
    for ax, name in zip(axes, names):
        rows = [r for r in results if r["experiment"] == name and "samples" in r.get("spectra", {})]
        if not rows:
            ax.text(0.5, 0.5, f"{name}: no spectra", ha="center", transform=ax.transAxes)
            continue
        spectra = rows[0]["spectra"]
        shells = np.arange(len(spectra["data"]))  # from shell 0 (DC): its error is scored too
        std_data = rows[0].get("metrics", {}).get("std_data")
        ax.plot(shells, spectra["data"], "k-", lw=2, zorder=2,
                label="data" + (f" (std {std_data:.3g})" if is_number(std_data) else ""))
        if "exact" in spectra:  # dotted grey drawn over the black: both stay visible where they agree
            ax.plot(shells, spectra["exact"], color="0.6", ls=(0, (1, 1.2)), lw=2.6, zorder=4, label="exact law")
        cmap = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
        for c, r in zip(cmap, rows):
            std = r.get("metrics", {}).get("std")
            ax.plot(shells, r["spectra"]["samples"], color=c, lw=1.3, zorder=3,
                    label=f"{Steps(r['steps']).label} steps" + (f" (std {std:.3g})" if is_number(std) else ""))
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)  # logarithmic above shell 1, linear to 0
        ax.set(yscale="log", xlim=(0, shells[-1]), xlabel="radial frequency (shell; 0 = DC)", ylabel="power")
        ax.set_title(f"power spectrum: {experiment_label(name, rows[0]['J'])}", color=colors[name], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, title="pixel std in ( )", title_fontsize=7)
    fig.suptitle("Radially averaged power spectra (data solid black, exact law dotted grey)")
    _save(fig, out, svg)


def sample_grid(rows: dict[str, np.ndarray], per_row: int, out: Path, svg: Path | None = None) -> None:
    if not rows:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no sample stores given", ha="center", transform=ax.transAxes)
        _save(fig, out, svg)
        return
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
