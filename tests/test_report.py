"""The report stage end to end on tiny trained models (no Snakemake): every file, sane content."""

import json

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
    from wsgm import report

    figs = []
    monkeypatch.setattr(report, "_save", lambda fig, out, svg=None: figs.append(fig))
    data = [4.0, 2.0, 1.0, 0.5, 0.25]
    row = {"experiment": "e", "J": 0, "steps": 8, "spectra": {"data": data, "samples": [3 * data[0], *data[1:]]}}
    report.spectra_plot([row], tmp_path / "s.png")
    lines = figs[0].axes[0].lines
    assert list(lines[0].get_xdata()) == [0, 1, 2, 3, 4] and list(lines[0].get_ydata()) == data
    assert lines[1].get_ydata()[0] == 12.0  # a DC error is visible
