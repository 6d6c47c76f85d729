"""Plots (PNG and SVG) and tables of the best settings from the per-(experiment, steps) metric files.

x axes are the steps per scale (the mean over scales for a per-scale list), so WSGM (J > 0) and
plain SGM (J = 0) sit on the same axes at equal cost per scale. Figures are grids of panels (three
columns), one colour per experiment (a fixed mapping from the sorted experiment names, the same in
every figure); shaded bands are the 95% bootstrap intervals (``<metric>_ci``) where the metric file
has them, dashed lines the same metric for as many held-out real images as samples (the
sampling-noise floor, ``<metric>_data_floor``, band ``<metric>_data_floor_ci``).

best.md prints every value as ``value ± h``, h = half the width of its 95% interval; a setting
*reaches the floor* when the 95% interval of (metric − floor), ``<metric>_excess_ci``, has its lower
end ≤ 0. The comparison table gives, for two experiments on the same dataset, the difference of
each metric with the percentile interval of the differences of their (independent) bootstrap draws
(``scales[k]["bootstrap"][metric]``). Metric files without these keys still render, without bands.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, NullFormatter  # noqa: E402

from wsgm.data.store import read_array  # noqa: E402
from wsgm.steps import Steps  # noqa: E402

log = logging.getLogger("wsgm.report")

DPI = 120
COLUMNS = 3          # panels per row of a figure grid
PANEL = (5.2, 3.9)   # inches per panel: 3 columns = 15.6 in = 1872 px at DPI
LEVEL = 0.95

PM_RULE = ("Values are `value ± h`, h = half the width (hi − lo)/2 of the 95% percentile-bootstrap "
           "interval [lo, hi] over the samples (images resampled with replacement, reference fixed); "
           "the interval may be asymmetric about the value (summary.json keeps [lo, hi]). Floors: the same "
           "metric for a held-out set of as many real images, with its own interval.")
FLOOR_RULE = ("Reaches floor: **yes** when the lower end of the 95% interval of (metric − data floor) is ≤ 0, "
              "i.e. the interval contains 0 or lies below it (the samples cannot be told from as many "
              "held-out real images by this metric); **no** otherwise; – where the metric file has no intervals.")

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
}


def _label(name: str, J: int) -> str:
    return f"{name} ({'SGM' if J == 0 else 'WSGM'}, J={J})"


def _steps_x(r: dict) -> float:
    per_scale = r.get("steps_per_scale") or Steps(r["steps"]).per_scale(r["J"])
    return float(np.mean(per_scale))


def load_metrics(paths: list[Path]) -> list[dict]:
    return sorted((json.loads(Path(p).read_text()) for p in paths),
                  key=lambda m: (m["experiment"], _steps_x(m)))


def experiment_colors(results: list[dict]) -> dict[str, tuple]:
    """One colour per experiment, fixed by the sorted names (the same in every panel and figure)."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(sorted({r["experiment"] for r in results}))}


def _names(results: list[dict]) -> list[str]:
    return sorted({r["experiment"] for r in results})


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


# --- what a metric is -------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ci(metrics: dict, key: str) -> tuple[float, float] | None:
    v = metrics.get(key)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v):
        return float(v[0]), float(v[1])
    return None


def _fid_like(m: str) -> bool:
    return m in ("fid", "kid") or (m.startswith(("fid_", "kid_")) and not m.endswith(
        ("_data_floor", "_ci", "_std", "_subset_size")))


def _kid_like(m: str) -> bool:
    return m == "kid" or (m.startswith("kid_") and _fid_like(m))


def lower_is_better(m: str) -> bool:
    return _fid_like(m) or "error" in m or m.endswith("_w1") or m.startswith("kl_")


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
    if not _fid_like(m):
        return None
    names = sorted({n for r in results if (n := _feature_space_of(r, m))})
    return ", ".join(names) or None


def metric_title(m: str, results: list[dict]) -> str:
    short = SHORT.get(m)
    if short is None and _fid_like(m):
        short = f"{'KID' if _kid_like(m) else 'FID'} ({m})"
    title = short or m.replace("_", " ")
    space = feature_space(m, results)
    if space:
        title += f" in {space} features"
    if lower_is_better(m):
        title += "\n(lower is better)"
    return title


# --- plots ------------------------------------------------------------------------------------

def _scale_metrics(r: dict, k: int) -> dict:
    scales = r.get("scales", {"0": {"metrics": r["metrics"]}})
    return scales.get(str(k), {}).get("metrics", {})


def _set_yscale(ax, metric: str, values: list[float]) -> None:
    """KID: symlog (it can be negative); other error metrics (and the std): log where every value is
    positive, symlog where not; limits fitted to the values (bands and floors included) in the scale."""
    v = np.asarray([x for x in values if _is_number(x)], dtype=float)
    if not v.size:
        return
    if _kid_like(metric) or (lower_is_better(metric) and (v <= 0).any()):
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
                  floor_key: str | None = None) -> dict:
    """metric against steps per scale, one line (and 95% band) per experiment, the data floor dashed.
    Returns what was drawn: {"lines", "bands", "floor"} (all False: nothing to draw)."""
    colors = colors or experiment_colors(results)
    floor_key = floor_key or f"{metric}_data_floor"
    drawn = {"lines": False, "bands": False, "floor": False}
    values: list[float] = []
    floors: dict[str, list[tuple[float, float, tuple | None]]] = {}
    for name in _names(results):
        rows = [r for r in results if r["experiment"] == name and _is_number(_scale_metrics(r, k).get(metric))]
        if not rows:
            continue
        xs = [_steps_x(r) for r in rows]
        ms = [_scale_metrics(r, k) for r in rows]
        ys = [float(m[metric]) for m in ms]
        c = colors[name]
        ax.plot(xs, ys, "o-", color=c, ms=4, lw=1.6, zorder=3, label=_label(name, rows[0]["J"]))
        cis = [_ci(m, f"{metric}_ci") for m in ms]
        if any(cis):
            lo = [ci[0] if ci else y for ci, y in zip(cis, ys)]
            hi = [ci[1] if ci else y for ci, y in zip(cis, ys)]
            ax.fill_between(xs, lo, hi, color=c, alpha=0.22, lw=0, zorder=2)
            values += lo + hi
            drawn["bands"] = True
        values += ys
        fl = [(x, float(m[floor_key]), _ci(m, f"{floor_key}_ci")) for x, m in zip(xs, ms)
              if _is_number(m.get(floor_key))]
        if fl:
            floors[name] = fl
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
        for name, fl in floors.items():
            xs, vs = [x for x, _, _ in fl], [v for _, v, _ in fl]
            ax.plot(xs, vs, "--", color=colors[name], lw=1.3, zorder=1)
            if any(ci for _, _, ci in fl):
                lo = [ci[0] if ci else v for _, v, ci in fl]
                hi = [ci[1] if ci else v for _, v, ci in fl]
                ax.fill_between(xs, lo, hi, color=colors[name], alpha=0.1, lw=0, hatch="//", zorder=0)
                values += lo + hi
            values += vs
    drawn["floor"] = bool(floors)
    ax.set(xscale="log", xlabel="steps per scale", ylabel=metric)
    if drawn["lines"]:
        _set_yscale(ax, metric, values)
    ax.grid(True, which="major", alpha=0.3)
    return drawn


def _legend(fig, results: list[dict], colors: dict, bands: bool, floor: bool,
            floor_label: str = "data floor: the metric for as many real images as samples (dashed)") -> None:
    J = {r["experiment"]: r["J"] for r in results}
    handles = [Line2D([], [], color=colors[n], marker="o", ms=4, label=_label(n, J[n])) for n in _names(results)]
    if floor:
        handles.append(Line2D([], [], color="0.3", ls="--", label=floor_label))
    if bands:
        handles.append(Patch(color="0.5", alpha=0.3, label="shaded: 95% bootstrap interval"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)


def _panels(results: list[dict], metrics: list[str], k: int | None = None) -> list[str]:
    """The metrics, plus the pixel std beside the data's where the files have it."""
    ks = [k] if k is not None else [0]
    has_std = any(_is_number(_scale_metrics(r, kk).get("std")) for r in results for kk in ks)
    return list(metrics) + (["std"] if has_std and "std" not in metrics else [])


def _draw(ax, results, metric, k, colors) -> dict:
    if metric == "std":
        drawn = _metric_panel(ax, results, "std", k, colors, floor_key="std_data")
        ax.set_title("pixel std of the samples (solid)\nvs the real data's (dashed): closer is better", fontsize=10)
        drawn["floor"] = False  # its dashed line is the data std, explained in the title
    else:
        drawn = _metric_panel(ax, results, metric, k, colors)
        ax.set_title(metric_title(metric, results), fontsize=10)
    if not drawn["lines"]:
        ax.text(0.5, 0.5, f"{metric}: not computed", ha="center", transform=ax.transAxes)
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


def per_scale_plot(results: list[dict], metrics: list[str], out: Path, svg: Path | None = None) -> None:
    """Rows = metrics (and pixel std), columns = resolutions x_0 (final) .. x_J (coarsest)."""
    colors = experiment_colors(results)
    max_j = max(r["J"] for r in results)
    panels = list(metrics) + (["std"] if "std" not in metrics and any(
        _is_number(_scale_metrics(r, k).get("std")) for r in results for k in range(r["J"] + 1)) else [])
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
    names = _names(results)
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
                label="data" + (f" (std {std_data:.3g})" if _is_number(std_data) else ""))
        if "exact" in spectra:  # dotted grey drawn over the black: both stay visible where they agree
            ax.plot(shells, spectra["exact"], color="0.6", ls=(0, (1, 1.2)), lw=2.6, zorder=4, label="exact law")
        cmap = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
        for c, r in zip(cmap, rows):
            std = r.get("metrics", {}).get("std")
            ax.plot(shells, r["spectra"]["samples"], color=c, lw=1.3, zorder=3,
                    label=f"{Steps(r['steps']).label} steps" + (f" (std {std:.3g})" if _is_number(std) else ""))
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)  # logarithmic above shell 1, linear to 0
        ax.set(yscale="log", xlim=(0, shells[-1]), xlabel="radial frequency (shell; 0 = DC)", ylabel="power")
        ax.set_title(f"power spectrum: {_label(name, rows[0]['J'])}", color=colors[name], fontsize=10)
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


# --- tables -----------------------------------------------------------------------------------

def reaches_floor(r: dict, metric: str, k: int = 0) -> bool | None:
    """The rule: the 95% interval of (metric − data floor) has its lower end ≤ 0 (contains 0 or lies
    below). From ``<metric>_excess_ci``; else the file's own ``reaches_floor``; None without either."""
    ci = _ci(_scale_metrics(r, k), f"{metric}_excess_ci")
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


def difference_interval(a, b, level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile interval of draws_a − draws_b: the bootstraps of two experiments are independent, so
    pairing the i-th draws is a valid draw of the difference (the shorter list sets the count)."""
    if not a or not b:
        return None
    n = min(len(a), len(b))
    d = np.asarray(a[:n], dtype=float) - np.asarray(b[:n], dtype=float)
    d = d[np.isfinite(d)]
    if not d.size:
        return None
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(d, [q, 100 - q])
    return float(lo), float(hi)


def best_table(results: list[dict], metrics: list[str]) -> dict[str, dict]:
    """Per experiment and metric: the step setting with the lowest value at the final resolution,
    with its interval, floor, floor interval, excess interval and the reaches-floor decision."""
    best: dict[str, dict] = {}
    for name in dict.fromkeys(r["experiment"] for r in results):
        rows = [r for r in results if r["experiment"] == name]
        best[name] = {}
        for metric in metrics:
            cands = [(r, r["metrics"][metric]) for r in rows if _is_number(r["metrics"].get(metric))]
            if cands:
                r, v = min(cands, key=lambda rv: rv[1])
                m = r["metrics"]
                best[name][metric] = {"steps": Steps(r["steps"]).label, "value": v,
                                      "ci": _ci(m, f"{metric}_ci"),
                                      "floor": m.get(f"{metric}_data_floor"),
                                      "floor_ci": _ci(m, f"{metric}_data_floor_ci"),
                                      "excess_ci": _ci(m, f"{metric}_excess_ci"),
                                      "reaches_floor": reaches_floor(r, metric),
                                      "std": m.get("std"), "std_data": m.get("std_data"),
                                      "nfe_per_sample": r.get("cost", {}).get("nfe_per_sample"),
                                      "samples_per_s": r.get("cost", {}).get("samples_per_s")}
    return best


def _dataset(name: str, results: list[dict], experiments: dict | None) -> str | None:
    e = (experiments or {}).get(name) or {}
    return e.get("dataset") or next((r.get("dataset") for r in results if r["experiment"] == name
                                     and r.get("dataset")), None)


def _nfe(r: dict) -> float | None:
    v = r.get("cost", {}).get("nfe_per_sample")
    return float(v) if _is_number(v) and v > 0 else None


def comparisons(results: list[dict], metrics: list[str], experiments: dict | None = None,
                cost_ratio: float = 1.5) -> list[dict]:
    """For each pair (a, b) of experiments on the same dataset (a before b by name): a − b of each
    metric at the final resolution, with the 95% interval from the bootstrap draws, (1) at equal steps
    per scale and (2) at about equal cost: each setting of either with the other's setting nearest in NFE
    per sample, kept within a factor ``cost_ratio`` (pairs already matched by (1) are not repeated)."""
    out = []
    for a, b in itertools.combinations(_names(results), 2):
        da, db = _dataset(a, results, experiments), _dataset(b, results, experiments)
        if da != db:
            continue
        ra = [r for r in results if r["experiment"] == a]
        rb = [r for r in results if r["experiment"] == b]
        matches, seen = [], set()
        for x in sorted({_steps_x(r) for r in ra} & {_steps_x(r) for r in rb}):
            pair = (next(r for r in ra if _steps_x(r) == x), next(r for r in rb if _steps_x(r) == x))
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
                   "steps_per_scale_a": _steps_x(r), "steps_per_scale_b": _steps_x(s),
                   "nfe_a": _nfe(r), "nfe_b": _nfe(s), "metrics": {}}
            for m in metrics:
                va, vb = r["metrics"].get(m), s["metrics"].get(m)
                if not (_is_number(va) and _is_number(vb)):
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
    if not _is_number(value):
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
                   comps: list[dict] | None = None, metrics: list[str] | None = None) -> str:
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
    table = {name: {Steps(r["steps"]).label: {k: v for k, v in r["metrics"].items()
                                              if not isinstance(v, list) or k.endswith("_ci")}
                    for r in results if r["experiment"] == name}
             for name in spec["experiments"]}
    best = best_table(results, shown)
    comps = comparisons(results, shown, spec.get("experiments"))
    markdown = table_markdown(best, results, spec.get("experiments"), comps, shown)
    if "table_md" in outputs:
        outputs["table_md"].write_text(markdown)
    if "table_html" in outputs:
        outputs["table_html"].write_text(table_html(markdown))
    ranked = shown[0]
    summary = {"metric": ranked, "table": table,
               "best": {n: ([b[ranked]["steps"], b[ranked]["value"]] if ranked in b else None)
                        for n, b in best.items()},
               "best_per_metric": best, "comparisons": comps,
               "rules": {"plus_minus": PM_RULE, "reaches_floor": FLOOR_RULE}}
    outputs["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
