"""The report stage end to end on tiny trained models (no Snakemake): every file, sane content."""

import json

import numpy as np
import pytest
import torch

from wsgm import specs
from wsgm.cascade import sample_to_store
from wsgm.cli import main
from wsgm.provenance import run_stage
from wsgm.reference import compute
from wsgm.steps import Steps

from .helpers import train_tiny_models


@pytest.mark.slow
def test_report_files_from_real_stages(tmp_path, tiny_config, tiny_store):
    data, store = tiny_store
    cfg = tiny_config
    cfg["experiments"]["wsgm"]["sampling"]["steps"] = [2, [3, 2, 1]]
    cfg["experiments"] = {"wsgm": cfg["experiments"]["wsgm"]}
    models = train_tiny_models(cfg, store, tmp_path, steps=3)
    rspec = specs.reference(cfg, "tiny", "haar", 2)
    ref = tmp_path / "ref.npz"
    run_stage("reference", rspec, {"data": data}, {"reference": (ref, False)},
              lambda t: compute(rspec, data, t["reference"]))
    metrics, samples = [], []
    for steps in cfg["experiments"]["wsgm"]["sampling"]["steps"]:
        label = Steps(steps).label
        spec = specs.sample(cfg, "wsgm", label)
        s = tmp_path / f"steps{label}.zarr"
        run_stage("sample", spec, {"store": store}, {"samples": (s, True)},
                  lambda t, spec=spec: sample_to_store(spec, store, models, t["samples"], torch.device("cpu")))
        m = tmp_path / f"steps{label}.json"
        assert main(["evaluate", "--spec", json.dumps(specs.evaluate(cfg, "wsgm", label)), "--samples", str(s),
                     "--data", str(data), "--reference", str(ref), "--out", str(m)]) == 0
        metrics.append(str(m))
        samples.append(f"wsgm:{label}={s}")
    outdir = tmp_path / "report"
    assert main(["report", "--spec", specs.as_json(specs.report(cfg)), "--metrics", *metrics,
                 "--samples", *samples, "--data", f"wsgm={data}", "--outdir", str(outdir)]) == 0
    for key, path in specs.REPORT_FILES.items():
        f = outdir / path.rsplit("/", 1)[1]
        assert f.stat().st_size > (1000 if f.suffix in (".png", ".svg") else 50), key
        assert (outdir / f"{f.name}.prov.json").exists()
    assert (outdir / "quality_vs_steps.svg").read_text().lstrip().startswith("<?xml")
    summary = json.loads((outdir / "summary.json").read_text())
    assert set(summary["table"]["wsgm"]) == {"2", "3-2-1"}
    assert summary["metric"] == "fid" and summary["best"]["wsgm"][0] in ("2", "3-2-1")
    md = (outdir / "best.md").read_text()
    assert "| wsgm | fid |" in md and "wsgm-fields" in md
    assert "<table" in (outdir / "best.html").read_text()
    m = json.loads((tmp_path / "steps3-2-1.json").read_text())
    assert m["cost"]["nfe_per_scale"] == [3, 2, 1] and m["steps"] == [3, 2, 1]


def test_spectra_plot_starts_at_the_dc_shell(monkeypatch, tmp_path):
    """Shell 0 (the image mean's power) is scored by the spectrum errors, so it is plotted too."""
    from wsgm import report_figures as report

    figs = []
    monkeypatch.setattr(report, "_save", lambda fig, out, svg=None: figs.append(fig))
    data = [4.0, 2.0, 1.0, 0.5, 0.25]
    row = {"experiment": "e", "J": 0, "steps": 8, "spectra": {"data": data, "samples": [3 * data[0], *data[1:]]}}
    report.spectra_plot([row], tmp_path / "s.png")
    lines = figs[0].axes[0].lines
    assert list(lines[0].get_xdata()) == [0, 1, 2, 3, 4] and list(lines[0].get_ydata()) == data
    assert lines[1].get_ydata()[0] == 12.0  # a DC error is visible


# --- intervals, floors and differences from fabricated metric files (fast: no model, no store) -----

def _metric_file(name, J, steps, values, floors=None, cis=None, floor_cis=None, excess=None, draws=None,
                 nfe=None):
    """A metric JSON as wsgm.evaluate writes it; the interval keys only where given (else: old format)."""
    metrics = {"std": 1.1, "std_data": 1.0}
    for m, v in values.items():
        metrics[m] = v
        if floors and m in floors:
            metrics[f"{m}_data_floor"] = floors[m]
        for suffix, given in (("_ci", cis), ("_data_floor_ci", floor_cis), ("_excess_ci", excess)):
            if given and m in given:
                metrics[f"{m}{suffix}"] = list(given[m])
    scale = {"size": 8, "metrics": metrics, "spectra": {"data": [4.0, 2.0, 1.0], "samples": [4.5, 2.0, 1.1],
                                                        "exact": [4.0, 2.1, 0.9]}}
    if draws:
        scale["bootstrap"] = {m: list(d) for m, d in draws.items()}
    r = {"experiment": name, "J": J, "steps": steps, "steps_per_scale": [steps] * (J + 1), "n_samples": 64,
         "extractor": {"name": "wsgm-fields", "layer": "stats"}, "metrics": metrics,
         "spectra": scale["spectra"], "scales": {str(k): scale for k in range(J + 1)},
         "cost": {"nfe_per_sample": nfe or steps * (J + 1), "samples_per_s": 10.0},
         "definitions": {"fid": "Fréchet distance (extractor named in 'extractor')"}}
    if cis:
        r["intervals"] = {"level": 0.95, "bootstrap": len(next(iter(draws.values()))) if draws else 0,
                          "method": "percentile bootstrap", "rule": "excess_ci[0] <= 0"}
    return r


def _write(tmp_path, rows):
    paths = []
    for r in rows:
        p = tmp_path / f"{r['experiment']}_steps{r['steps']}.json"
        p.write_text(json.dumps(r))
        paths.append(p)
    return paths


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _spec(metrics):
    return {"report": {"metrics": metrics, "grid": 4},
            "experiments": {"sgm": {"J": 0, "dataset": "g", "steps": ["8", "16"], "models": []},
                            "wsgm": {"J": 1, "dataset": "g", "steps": ["8", "16"], "models": []}}}


def _outputs(outdir):
    from wsgm.specs import REPORT_FILES

    outdir.mkdir()
    return {k: outdir / v.rsplit("/", 1)[1] for k, v in REPORT_FILES.items()}


def test_best_md_intervals_floor_rule_and_differences(tmp_path):
    from wsgm import report

    rng = np.random.default_rng(0)
    b = rng.normal(2.0, 0.1, 100)
    rows = [
        # reaches the floor: the interval of fid - floor, [-0.1, 0.5], has its lower end <= 0
        _metric_file("sgm", 0, 8, {"fid": 1.0, "kid": -0.001}, floors={"fid": 0.8, "kid": -0.002},
                     cis={"fid": [0.9, 1.3], "kid": [-0.004, 0.002]},
                     floor_cis={"fid": [0.7, 1.0], "kid": [-0.003, 0.0]},
                     excess={"fid": [-0.1, 0.5], "kid": [-0.003, 0.004]}, draws={"fid": b + 1, "kid": b}),
        _metric_file("sgm", 0, 16, {"fid": 3.0, "kid": 0.5}, floors={"fid": 0.8, "kid": -0.002},
                     cis={"fid": [2.8, 3.2], "kid": [0.4, 0.6]}, floor_cis={"fid": [0.7, 1.0], "kid": [-0.003, 0.0]},
                     excess={"fid": [1.9, 2.5], "kid": [0.4, 0.6]}, draws={"fid": b + 5, "kid": b}),
        # does not reach it: the lower end 0.3 > 0
        _metric_file("wsgm", 1, 8, {"fid": 2.0, "kid": 0.1}, floors={"fid": 0.8, "kid": -0.002},
                     cis={"fid": [1.5, 2.7], "kid": [0.05, 0.15]}, floor_cis={"fid": [0.7, 1.0], "kid": [-0.003, 0.0]},
                     excess={"fid": [0.3, 1.7], "kid": [0.06, 0.16]}, draws={"fid": b, "kid": b + 0.5}),
        _metric_file("wsgm", 1, 16, {"fid": 4.0, "kid": 0.3}, floors={"fid": 0.8, "kid": -0.002},
                     cis={"fid": [3.5, 4.5], "kid": [0.2, 0.4]}, floor_cis={"fid": [0.7, 1.0], "kid": [-0.003, 0.0]},
                     excess={"fid": [2.6, 3.8], "kid": [0.2, 0.4]}, draws={"fid": b + 2, "kid": b + 0.5}),
    ]
    results = report.load_metrics(_write(tmp_path, rows))
    best = report.best_table(results, ["fid", "kid"])
    assert best["sgm"]["fid"]["reaches_floor"] is True and best["wsgm"]["fid"]["reaches_floor"] is False
    assert report.reaches_floor(results[0], "fid") is True    # excess [-0.1, 0.5]: lower end <= 0
    assert report.reaches_floor(results[2], "fid") is False   # excess [0.3, 1.7]
    # the rule at its edge: a lower end of exactly 0 reaches the floor
    assert report.reaches_floor({"metrics": {"m_excess_ci": [0.0, 1.0]}}, "m") is True

    # draws a = b + 1 exactly: the difference interval is [1, 1]
    assert report.difference_interval(list(b + 1), list(b)) == pytest.approx((1.0, 1.0))
    lo, hi = report.difference_interval(list(rng.normal(0, 1, 4000)), list(rng.normal(0, 1, 4000)))
    assert lo == pytest.approx(-1.96 * 2 ** 0.5, abs=0.2) and hi == pytest.approx(1.96 * 2 ** 0.5, abs=0.2)
    assert report.difference_interval([], list(b)) is None

    summary = report.report(_spec(["fid", "kid"]), _write(tmp_path, rows), {}, {}, _outputs(tmp_path / "out"))
    md = (tmp_path / "out" / "best.md").read_text()
    # value ± (hi - lo)/2 from <m>_ci, floors likewise
    assert "| sgm | fid | 8 | 1 ± 0.2 | 0.8 ± 0.15 | [-0.1, 0.5] | yes |" in md
    assert "| wsgm | fid | 8 | 2 ± 0.6 | 0.8 ± 0.15 | [0.3, 1.7] | no |" in md
    assert "| sgm | kid | 8 | -0.001 ± 0.003 | -0.002 ± 0.0015 | [-0.003, 0.004] | yes |" in md
    assert report.FLOOR_RULE in md and report.PM_RULE in md
    # sgm - wsgm at 8 steps per scale: fid draws (b + 1) - b = 1 exactly -> [1, 1], significant
    comp = [c for c in summary["comparisons"] if c["match"] == "equal steps per scale" and c["steps_a"] == "8"]
    assert len(comp) == 1 and (comp[0]["a"], comp[0]["b"]) == ("sgm", "wsgm")
    assert comp[0]["metrics"]["fid"]["diff"] == pytest.approx(-1.0)
    assert comp[0]["metrics"]["fid"]["ci"] == pytest.approx([1.0, 1.0]) and comp[0]["metrics"]["fid"]["significant"]
    assert comp[0]["metrics"]["kid"]["ci"] == pytest.approx([-0.5, -0.5])
    assert "| sgm − wsgm | equal steps per scale | 8 / 8 | 8 / 16 | -1 [1, 1] **sig.** |" in md
    # about equal cost: sgm 16 steps (NFE 16) against wsgm 8 steps per scale (NFE 16)
    cost = [c for c in summary["comparisons"] if c["match"] == "≈ equal cost"]
    assert [(c["steps_a"], c["steps_b"]) for c in cost] == [("16", "8")]
    assert cost[0]["metrics"]["fid"]["ci"] == pytest.approx([5.0, 5.0])
    assert "<b>sig.</b>" in (tmp_path / "out" / "best.html").read_text()
    assert "fid: wsgm-fields" in md
    assert summary["best"] == {"sgm": ["8", 1.0], "wsgm": ["8", 2.0]}


def test_figures_are_grids_of_sane_width_with_bands(tmp_path):
    from wsgm import report

    metrics = ["fid", "kid", "spectrum_log_error", "marginal_w1", "energy_w1"]
    rows = []
    for name, J in (("sgm", 0), ("wsgm", 2)):
        for steps in (4, 8, 16, 32):
            v = {m: 10.0 / steps for m in metrics} | {"kid": 1.0 / steps - 0.05}
            rows.append(_metric_file(name, J, steps, v, floors={m: 0.01 for m in metrics},
                                     cis={m: [x * 0.9 - 0.01, x * 1.1 + 0.01] for m, x in v.items()},
                                     floor_cis={m: [0.005, 0.02] for m in metrics},
                                     excess={m: [x - 0.1, x + 0.1] for m, x in v.items()},
                                     draws={m: [x] * 10 for m, x in v.items()}))
    out = _outputs(tmp_path / "out")
    report.report(_spec(metrics), _write(tmp_path, rows), {}, {}, out)
    for key in ("quality", "scales", "spectra"):
        w, h = _png_size(out[key])
        assert 800 <= w <= 2400 and h > 300, (key, w, h)
        assert out[f"{key}_svg"].read_text().lstrip().startswith("<?xml")
    assert _png_size(out["quality"])[0] > 1500  # 3 columns, not 6 panels in a strip (6 x 624 px)

    figs = []
    from wsgm import report_figures

    real_save = report_figures._save
    report_figures._save = lambda fig, o, svg=None: figs.append(fig)
    try:
        results = report.load_metrics(_write(tmp_path, rows))
        report.quality_plot(results, metrics, tmp_path / "q.png")
        report.spectra_plot(results, tmp_path / "s.png")
    finally:
        report_figures._save = real_save
    axes = [ax for ax in figs[0].axes if ax.get_visible() and ax.axison]
    assert len(axes) == 6  # 5 metrics and the pixel std, on 2 rows of 3
    assert len({round(ax.get_position().x0, 3) for ax in axes}) == 3
    by_title = {ax.get_title(): ax for ax in axes}
    fid = next(ax for t, ax in by_title.items() if t.startswith("FID"))
    kid = next(ax for t, ax in by_title.items() if t.startswith("KID"))
    assert "wsgm-fields" in fid.get_title() and "(lower is better)" in fid.get_title()
    assert kid.get_yscale() == "symlog" and fid.get_yscale() == "log"
    assert any("std" in t for t in by_title)
    assert len(fid.collections) >= 2  # a 95% band per experiment (and the floor's)
    colors = report.experiment_colors(results)
    for ax in axes:  # one colour per experiment, the same in every panel
        solid = [ln for ln in ax.lines if ln.get_linestyle() == "-" and ln.get_marker() == "o"]
        assert {ln.get_label() for ln in solid} == {"sgm (SGM, J=0)", "wsgm (WSGM, J=2)"}
        for ln in solid:
            assert ln.get_color() == colors[ln.get_label().split()[0]]
    spec_ax = figs[1].axes[0]
    styles = {ln.get_label().split(" (")[0]: ln for ln in spec_ax.lines}
    assert styles["data"].get_xdata()[0] == 0 and "exact law" in styles
    assert styles["data"].get_color() != styles["exact law"].get_color()
    assert styles["data"].get_linestyle() != styles["exact law"].get_linestyle()
    assert "std 1" in " ".join(ln.get_label() for ln in spec_ax.lines)


def test_old_metric_files_still_render(tmp_path):
    """Files without any interval key: no bands, no reaches-floor decision, no difference intervals."""
    from wsgm import report

    rows = []
    for name, J in (("sgm", 0), ("wsgm", 1)):
        for steps in (8, 16):
            r = _metric_file(name, J, steps, {"fid": 1.0 / steps, "kid": 0.01 - 0.1 / steps}, floors={"fid": 0.01})
            del r["scales"]["1" if J else "0"]  # a file may lack some resolutions too
            rows.append(r)
    out = _outputs(tmp_path / "out")
    summary = report.report(_spec(["fid", "kid"]), _write(tmp_path, rows), {}, {}, out)
    for key in ("quality", "scales", "spectra", "samples"):
        assert out[key].stat().st_size > 1000
    md = out["table_md"].read_text()
    assert "| sgm | fid | 16 | 0.0625 | 0.01 | – | – |" in md
    assert "| wsgm | kid | 8 | -0.0025 | – | – | – |" in md
    assert "(no draws)" in md and "±" not in md.split("| experiment | metric")[1]
    assert all(d["ci"] is None for c in summary["comparisons"] for d in c["metrics"].values())


# --- sampling cost: weighted NFE, the cost figures, the cheapest setting within the best's interval ---

def _costed(r, size, nfe_per_scale, samples_per_s=10.0):
    """A fabricated metric file with real scale sizes (x_k of side size / 2^k) and per-scale NFE."""
    r["scales"] = {k: {**s, "size": size // 2 ** int(k)} for k, s in r["scales"].items()}
    r["cost"] = {**r["cost"], "nfe_per_scale": list(nfe_per_scale), "nfe_per_sample": sum(nfe_per_scale),
                 "samples_per_s": samples_per_s}
    return r


def test_weighted_cost_and_seconds_per_sample():
    from wsgm.metric_info import seconds_per_sample, weighted_cost

    r = _costed(_metric_file("wsgm", 2, 8, {"fid": 1.0}), 16, [10, 20, 40], samples_per_s=4.0)
    # model 0 draws x0's details on the 8×8 grid of x1, model 1 on the 4×4 grid of x2, model 2 x2 itself
    assert weighted_cost(r) == pytest.approx((10 * 64 + 20 * 16 + 40 * 16) / 256)
    assert seconds_per_sample(r) == pytest.approx(0.25)
    sgm = _costed(_metric_file("sgm", 0, 8, {"fid": 1.0}), 16, [8])
    assert weighted_cost(sgm) == pytest.approx(8.0)  # plain SGM: NFE per sample
    del r["scales"]["1"]  # a missing resolution: its side from the cascade's geometry
    assert weighted_cost(r) == pytest.approx((10 * 64 + 20 * 16 + 40 * 16) / 256)
    del r["cost"]["nfe_per_scale"]
    assert weighted_cost(r) is None
    assert seconds_per_sample({"cost": {"wall_time_s": 6.0}, "n_samples": 3}) == pytest.approx(2.0)
    assert seconds_per_sample({"cost": {}}) is None


def test_quality_vs_cost_figure(tmp_path, monkeypatch):
    from wsgm import report, report_figures
    from wsgm.metric_info import weighted_cost

    metrics = ["fid", "kid"]
    rows = []
    for name, J in (("sgm", 0), ("wsgm", 2)):
        for steps in (4, 8, 16):
            v = {"fid": 10.0 / steps, "kid": 1.0 / steps}
            r = _metric_file(name, J, steps, v, floors={m: 0.01 for m in metrics},
                             cis={m: [x * 0.9, x * 1.1] for m, x in v.items()},
                             floor_cis={m: [0.005, 0.02] for m in metrics})
            rows.append(_costed(r, 16, [steps] * (J + 1), samples_per_s=100.0 / steps))
    out = _outputs(tmp_path / "out")
    report.report(_spec(metrics), _write(tmp_path, rows), {}, {}, out)
    for key in ("cost", "time"):
        w, h = _png_size(out[key])
        assert 800 <= w <= 2400 and h > 300, (key, w, h)
        assert out[f"{key}_svg"].read_text().lstrip().startswith("<?xml")
    assert out["cost"].name == "quality_vs_cost.png" and out["cost_svg"].name == "quality_vs_cost.svg"

    figs = []
    monkeypatch.setattr(report_figures, "_save", lambda fig, o, svg=None: figs.append(fig))
    results = report.load_metrics(_write(tmp_path, rows))
    for r in results:
        r["sampler"] = "em"
    report.cost_plot(results, metrics, tmp_path / "c.png")
    report.cost_plot(results, metrics, tmp_path / "t.png", x="seconds")
    with pytest.raises(ValueError, match="cost axis"):
        report.cost_plot(results, metrics, tmp_path / "x.png", x="flops")
    fid = next(ax for ax in figs[0].axes if ax.get_title().startswith("FID"))
    solid = {ln.get_label(): ln for ln in fid.lines if ln.get_marker() == "o"}
    assert set(solid) == {"sgm (SGM, J=0), em", "wsgm (WSGM, J=2), em"}  # one curve per (experiment, sampler)
    wsgm = [r for r in results if r["experiment"] == "wsgm"]
    assert list(solid["wsgm (WSGM, J=2), em"].get_xdata()) == pytest.approx([weighted_cost(r) for r in wsgm])
    assert list(solid["sgm (SGM, J=0), em"].get_xdata()) == pytest.approx([4, 8, 16])
    assert "pixels" in fid.get_xlabel() and fid.get_xscale() == "log"
    assert len(fid.collections) >= 2  # the 95% bands and the floor's
    t_fid = next(ax for ax in figs[1].axes if ax.get_title().startswith("FID"))
    assert "seconds" in t_fid.get_xlabel()
    t_line = next(ln for ln in t_fid.lines if ln.get_label() == "sgm (SGM, J=0), em")
    assert list(t_line.get_xdata()) == pytest.approx([0.04, 0.08, 0.16])


def test_cheapest_setting_within_the_best_interval(tmp_path):
    from wsgm import report

    def row(name, J, steps, fid, ci, nfe):
        return _costed(_metric_file(name, J, steps, {"fid": fid, "susceptibility": fid},
                                    cis={"fid": ci}), 16, nfe)

    rows = [row("sgm", 0, 64, 1.0, [0.8, 1.2], [64]),        # the best value, cost 64
            row("sgm", 0, 16, 1.1, [0.9, 1.3], [16]),        # within, cost 16
            row("wsgm", 1, 8, 1.3, [1.1, 1.5], [8, 8]),      # within (1.1 <= 1.2), cost (8·64 + 8·64)/256 = 4
            row("wsgm", 1, 4, 2.0, [1.9, 2.1], [4, 4])]      # cheaper (2) but outside the best's interval
    results = report.load_metrics(_write(tmp_path, rows))
    got = report.cheapest_within_best(results, ["fid", "susceptibility"])
    assert set(got) == {"fid"}  # only lower-is-better metrics have a "best quality"
    assert (got["fid"]["best"]["experiment"], got["fid"]["best"]["steps"]) == ("sgm", "64")
    assert (got["fid"]["cheapest"]["experiment"], got["fid"]["cheapest"]["steps"]) == ("wsgm", "8")
    assert got["fid"]["cheapest"]["cost"] == pytest.approx(4.0) and got["fid"]["cost_ratio"] == pytest.approx(4 / 64)
    # touching intervals overlap; a point value (no interval) counts as a zero-width one
    rows[3] = row("wsgm", 1, 4, 2.0, [1.2, 2.1], [4, 4])
    got = report.cheapest_within_best(report.load_metrics(_write(tmp_path, rows)), ["fid"])
    assert got["fid"]["cheapest"]["steps"] == "4"
    summary = report.report(_spec(["fid"]), _write(tmp_path, rows), {}, {}, _outputs(tmp_path / "out"))
    md = (tmp_path / "out" / "best.md").read_text()
    assert "Cheapest setting within the interval of the best quality" in md
    assert "| fid | sgm, 64 | 1 ± 0.2 | 64 | wsgm, 4 | 2 ± 0.45 | 2 | 0.03125 |" in md
    assert summary["cheapest_within_best"]["fid"]["cheapest"]["steps"] == "4"
