"""Training budgets in compute (wsgm/budget.py, train.budget), snapshots at fractions of training
(learning_curve.fractions) and their provenance chain."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess

import pytest
import torch
import yaml

from wsgm import budget, specs
from wsgm import config as config_lib
from wsgm.train import Interrupted, train

from .helpers import BIN, REPO, make_project, snakemake


@pytest.fixture(autouse=True)
def _flop_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WSGM_CACHE_DIR", str(tmp_path / "cache"))


def _default() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _with_budget(raw: dict, amount: dict, split: str) -> dict:
    raw = copy.deepcopy(raw)
    for exp in raw["experiments"].values():
        exp["train"].pop("steps", None)
        exp["train"]["budget"] = dict(amount)
        exp["train"]["budget_split"] = split
    return raw


# --- counting ---------------------------------------------------------------------------------

def test_flops_of_a_conv_are_the_hand_count():
    """2 FLOPs per multiply-add; forward N·Cout·H·W·Cin·k², backward the weight gradient (same)
    plus the input gradient (same) where the input needs one."""
    N, cin, cout, side, k = 2, 3, 5, 8, 3
    with torch.device("meta"):
        conv = torch.nn.Conv2d(cin, cout, k, padding=1, bias=False)
        x = torch.empty(N, cin, side, side)
    fwd = 2 * N * cout * side * side * cin * k * k
    assert budget.count_flops(conv, x) == 2 * fwd  # forward + weight gradient
    assert budget.count_flops(conv, x.requires_grad_()) == 3 * fwd
    with torch.device("meta"):
        lin = torch.nn.Linear(7, 4)
        y = torch.empty(6, 7)
    assert budget.count_flops(lin, y) == 2 * (2 * 6 * 7 * 4)


def test_unet_flops_on_meta_equal_a_real_run_and_are_linear_in_the_batch():
    from torch.utils.flop_counter import FlopCounterMode

    from wsgm.nets.load import build_net

    net = config_lib.load(REPO / "config" / "test.yaml")["experiments"]["wsgm"]["net"]
    per_image = budget.flops_per_image(net, 1, 16, 2, 0)
    model, kw = build_net(net, 1, 16, 2, 0)
    x = torch.randn(3, kw["in_channels"], kw["image_size"], kw["image_size"])
    cond = torch.randn(3, kw["cond_channels"], kw["image_size"], kw["image_size"])
    with FlopCounterMode(display=False) as counter:
        model(x, torch.rand(3), cond).sum().backward()
    assert counter.get_total_flops() == 3 * per_image
    assert budget.model_shape(1, 16, 2, 0) == (3, 1, 8) and budget.model_shape(1, 16, 2, 2) == (1, 0, 4)


# --- budgets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", budget.SPLITS)
@pytest.mark.parametrize("unit", budget.UNITS)
def test_sgm_and_wsgm_get_equal_compute(split, unit):
    """The default config's SGM (J = 0) and WSGM (J = 2) given one budget train with equal compute
    (within 5%, in both units' counts) under every split rule; equal gives each model 1/(J+1)."""
    raw = _default()
    sgm_now = budget.training_compute(config_lib.check(raw, warn=None)["experiments"]["sgm"],
                                      {"channels": 1, "size": 32})
    cfg = config_lib.check(_with_budget(raw, {unit: sgm_now[unit]}, split), warn=None)
    ds = cfg["datasets"]["gauss32"]
    sgm, wsgm = (budget.training_compute(cfg["experiments"][n], ds) for n in ("sgm", "wsgm"))
    assert sgm["steps"] == [1500]  # the budget equal to SGM's current compute gives it its steps back
    assert wsgm[unit] == pytest.approx(sgm[unit], rel=0.05)
    plan = budget.plan(cfg["experiments"]["wsgm"], ds)
    costs = [m["cost_per_step"] * m["steps"] for m in plan]
    if split == "equal":
        assert all(c == pytest.approx(wsgm[unit] / 3, rel=0.05) for c in costs)
    if split == "equal_steps":
        assert len(set(wsgm["steps"])) == 1
    # the derived steps reach the training spec, with the budget, split, share and cost
    spec = specs.train(cfg, "wsgm", 1)
    assert spec["train"]["steps"] == wsgm["steps"][1]
    assert spec["budget"]["total"] == {unit: sgm_now[unit]} and spec["budget"]["split"] == split
    assert spec["budget"]["share"] == pytest.approx(plan[1]["share"])
    assert "budget" not in spec["train"] and "budget_split" not in spec["train"]


def test_a_budget_edit_changes_only_the_specs_of_models_whose_steps_change():
    raw = _with_budget(_default(), {"flops": 2.0e13}, "equal")
    a = config_lib.check(raw, warn=None)
    raw["experiments"]["sgm"]["train"]["budget"] = {"flops": 3.0e13}
    b = config_lib.check(raw, warn=None)
    assert specs.train(a, "sgm", 0) != specs.train(b, "sgm", 0)
    for j in range(3):
        assert specs.train(a, "wsgm", j) == specs.train(b, "wsgm", j)


def test_no_budget_keeps_the_training_spec():
    cfg = config_lib.check(_default(), warn=None)
    spec = specs.train(cfg, "wsgm", 0)
    assert "budget" not in spec and "snapshots" not in spec
    assert set(spec["train"]) == set(cfg["experiments"]["wsgm"]["train"]) - {"budget", "budget_split", "gpus", "nodes"}
    assert specs.report(cfg).keys() == {"stage", "experiments", "report", "code"}


def test_config_errors_name_the_key_and_the_fix():
    raw = _with_budget(_default(), {"flops": 2.0e13}, "equal")
    raw["experiments"]["wsgm"]["train"]["steps"] = 1000
    with pytest.raises(config_lib.ConfigError, match=r"experiments\.wsgm\.train\.steps.*both.*Fix: remove train.steps"):
        config_lib.check(raw, warn=None)
    raw = _with_budget(_default(), {"flops": 1.0e6}, "equal")
    with pytest.raises(config_lib.ConfigError, match=r"train\.budget.*less than one training step.*Fix: raise"):
        config_lib.check(raw, warn=None)
    raw = _with_budget(_default(), {"flops": 1.0, "image_pixels": 2.0}, "equal")
    with pytest.raises(config_lib.ConfigError, match="budget"):
        config_lib.check(raw, warn=None)
    raw = _default()
    raw["experiments"]["wsgm"]["train"]["steps"] = [10, 20]
    with pytest.raises(config_lib.ConfigError, match=r"train\.steps.*J\+1 = 3"):
        config_lib.check(raw, warn=None)
    raw = _default()
    raw["learning_curve"] = {"fractions": [0.5, 0.5001]}
    with pytest.raises(config_lib.ConfigError, match="learning_curve.fractions.*distinct"):
        config_lib.check(raw, warn=None)


def test_a_checked_config_checks_again_to_itself():
    cfg = config_lib.check(_with_budget(_default(), {"image_pixels": 1e8}, "pixels"), warn=None)
    assert config_lib.check(cfg, warn=None) == cfg


def test_per_model_steps_list():
    raw = _default()
    raw["experiments"]["wsgm"]["train"]["steps"] = [300, 200, 100]
    cfg = config_lib.check(raw, warn=None)
    assert [specs.train(cfg, "wsgm", j)["train"]["steps"] for j in range(3)] == [300, 200, 100]


# --- snapshots ----------------------------------------------------------------------------------

def _snapshot_spec(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["learning_curve"]["fractions"] = [0.25, 0.5]
    cfg["experiments"]["wsgm"]["train"].update(steps=40, checkpoint_every=5)
    spec = specs.train(cfg, "wsgm", 2)
    assert spec["snapshots"] == {"0.25": 10, "0.5": 20}
    return spec


def _interrupt_at(monkeypatch, step: int):
    """Make training receive SIGTERM once it has done ``step`` steps; returns the original
    ``Progress.step`` (to restore it with monkeypatch.setattr)."""
    from wsgm import train as train_mod

    original = train_mod.Progress.step

    def stop(self, done, losses):
        original(self, done, losses)
        if done == step:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_mod.Progress, "step", stop)
    return original


def test_snapshots_at_their_steps_and_after_a_resume(tmp_path, tiny_config, tiny_store, monkeypatch):
    """Snapshot weights are the EMA at round(f × steps): equal to the final weights of a run of that
    many steps, and the same when the run was interrupted past a snapshot and resumed."""
    from wsgm import train as train_mod

    _, store = tiny_store
    cpu = torch.device("cpu")
    spec = _snapshot_spec(tiny_config)
    straight = {f: tmp_path / f"straight.at{f}.pt" for f in spec["snapshots"]}
    train(spec, store, tmp_path / "straight.pt", tmp_path / "a.ckpt", cpu, straight)

    short = {**spec, "train": {**spec["train"], "steps": 10}}  # same seeds: the first 10 steps are the same
    short.pop("snapshots")
    train(short, store, tmp_path / "short.pt", tmp_path / "s.ckpt", cpu)

    original = _interrupt_at(monkeypatch, 25)
    resumed = {f: tmp_path / f"resumed.at{f}.pt" for f in spec["snapshots"]}
    with pytest.raises(Interrupted):
        train(spec, store, tmp_path / "resumed.pt", tmp_path / "b.ckpt", cpu, resumed)
    assert (tmp_path / "b.ckpt.at0.25").exists() and not resumed["0.25"].exists()
    monkeypatch.setattr(train_mod.Progress, "step", original)
    summary = train(spec, store, tmp_path / "resumed.pt", tmp_path / "b.ckpt", cpu, resumed)
    # the flag is read in the next step's all-reduce (every rank stops at one step): stopped after 26
    assert summary["resumed_from"] == 26 and summary["snapshots"] == {"0.25": 10, "0.5": 20}
    assert not list(tmp_path.glob("b.ckpt*"))  # checkpoint and stashes removed

    ref = torch.load(tmp_path / "short.pt", weights_only=True)
    for f, step in spec["snapshots"].items():
        a = torch.load(straight[f], weights_only=True)
        b = torch.load(resumed[f], weights_only=True)
        assert a["snapshot"] == b["snapshot"] == {"fraction": float(f), "step": step}
        assert a["losses"] == b["losses"] and len(a["losses"]) == step
        for key in a["ema"]:
            assert torch.equal(a["ema"][key], b["ema"][key]), (f, key)
        if step == 10:
            for key in a["ema"]:
                assert torch.equal(a["ema"][key], ref["ema"][key]), key
    final = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert not torch.equal(final["ema"][next(iter(final["ema"]))], b["ema"][next(iter(b["ema"]))])


def test_a_checkpoint_past_a_lost_snapshot_restarts(tmp_path, tiny_config, tiny_store, monkeypatch):
    from wsgm import train as train_mod

    _, store = tiny_store
    spec = _snapshot_spec(tiny_config)
    outs = {f: tmp_path / f"w.at{f}.pt" for f in spec["snapshots"]}
    original = _interrupt_at(monkeypatch, 15)
    with pytest.raises(Interrupted):
        train(spec, store, tmp_path / "w.pt", tmp_path / "c.ckpt", torch.device("cpu"), outs)
    monkeypatch.setattr(train_mod.Progress, "step", original)
    (tmp_path / "c.ckpt.at0.25").unlink()
    summary = train(spec, store, tmp_path / "w.pt", tmp_path / "c.ckpt", torch.device("cpu"), outs)
    assert summary["resumed_from"] == 0 and all(p.exists() for p in outs.values())


# --- workflow -----------------------------------------------------------------------------------

@pytest.mark.workflow
def test_learning_curve_metrics_and_their_provenance_chain(tmp_path):
    """With learning_curve.fractions the tiny pipeline scores each snapshot, the report plots the
    learning curve, and `wsgm audit` walks from a snapshot's metrics through its samples and the
    snapshot weights (a train output) to the dataset."""
    root = make_project(tmp_path / "project")
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["learning_curve"] = {"fractions": [0.5]}
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(root)
    metric = root / "results/metrics/wsgm/steps4.at0.5.json"
    m = json.loads(metric.read_text())
    assert m["snapshot"]["fraction"] == 0.5 and m["snapshot"]["train_steps"] == [15, 15, 15]
    assert (root / "results/models/sgm/scale0.at0.5.pt").exists()
    assert (root / "results/metrics/sgm/steps4.at0.5.json").exists()
    assert (root / "results/report/quality_vs_training.png").stat().st_size > 1000
    summary = json.loads((root / "results/report/summary.json").read_text())
    points = {(r["experiment"], r["fraction"]) for r in summary["learning_curve"]}
    assert points == {(e, f) for e in ("sgm", "wsgm") for f in (0.5, 1.0)}
    assert "Training compute" in (root / "results/report/best.md").read_text()

    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([str(BIN / "wsgm"), "audit", str(metric.relative_to(root))], cwd=root, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "results/samples/wsgm/steps4.at0.5.zarr" in out
    for j in range(3):
        assert f"results/models/wsgm/scale{j}.at0.5.pt" in out
    for stage in ("[evaluate]", "[sample]", "[train]", "[decompose]", "[dataset]"):
        assert stage in out
    record = json.loads((root / "results/samples/wsgm/steps4.at0.5.zarr.prov.json").read_text())
    assert record["inputs"]["model0"]["path"] == "results/models/wsgm/scale0.at0.5.pt"
    assert "Nothing to be done" in snakemake(root, "--dry-run")


# --- report -------------------------------------------------------------------------------------

def _point(name, J, steps, fid, snapshot=None):
    m = {"fid": fid, "fid_ci": [0.9 * fid, 1.1 * fid], "fid_data_floor": 0.01, "std": 1.0, "std_data": 1.0}
    r = {"experiment": name, "J": J, "steps": steps, "steps_per_scale": [steps] * (J + 1), "metrics": m,
         "scales": {str(k): {"size": 8, "metrics": m} for k in range(J + 1)},
         "spectra": {"data": [1.0, 1.0], "samples": [1.0, 1.0]}, "cost": {"nfe_per_scale": [steps] * (J + 1)}}
    return r | ({"snapshot": snapshot} if snapshot else {})


def test_report_learning_curve_against_training_compute(tmp_path, monkeypatch):
    from wsgm import report, report_figures

    rows = [_point("sgm", 0, 4, 2.0), _point("sgm", 0, 8, 1.0), _point("wsgm", 1, 4, 3.0), _point("wsgm", 1, 8, 1.5),
            _point("sgm", 0, 8, 4.0, {"fraction": 0.5, "train_steps": [50], "train_flops": 5e9}),
            _point("wsgm", 1, 8, 5.0, {"fraction": 0.5, "train_steps": [50, 50], "train_flops": 2e9})]
    paths = []
    for i, r in enumerate(rows):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    training = {n: {"train_flops": f, "train_image_pixels": 1e6, "train_steps": s, "budget": {"flops": 1e10},
                    "budget_split": "equal", "learning_curve_steps": "8"}
                for n, f, s in (("sgm", 1e10, [100]), ("wsgm", 4e9, [100, 100]))}
    spec = {"report": {"metrics": ["fid"], "grid": 4}, "training": training,
            "learning_curve": {"fractions": [0.5]},
            "experiments": {"sgm": {"J": 0, "dataset": "g", "steps": ["4", "8"], "models": []},
                            "wsgm": {"J": 1, "dataset": "g", "steps": ["4", "8"], "models": []}}}
    (tmp_path / "out").mkdir()
    files = {**specs.REPORT_FILES, **specs.TRAINING_FILES}
    out = {k: tmp_path / "out" / v.rsplit("/", 1)[1] for k, v in files.items()}
    figs = {}
    real_save = report_figures._save
    monkeypatch.setattr(report_figures, "_save", lambda fig, o, svg=None: (figs.__setitem__(o.name, fig),
                                                                            real_save(fig, o, svg)))
    summary = report.report(spec, paths, {}, {}, out)
    assert out["training"].stat().st_size > 1000
    fid = next(ax for ax in figs["quality_vs_training.png"].axes if ax.get_title().startswith("FID"))
    lines = {ln.get_label(): ln for ln in fid.lines if ln.get_marker() == "o"}
    assert list(lines["sgm (SGM, J=0)"].get_xdata()) == [5e9, 1e10]
    assert list(lines["wsgm (WSGM, J=1)"].get_ydata()) == [5.0, 1.5]
    steps_fid = next(ax for ax in figs["quality_vs_steps.png"].axes if ax.get_title().startswith("FID"))
    sgm = next(ln for ln in steps_fid.lines if ln.get_label() == "sgm (SGM, J=0)")
    assert list(sgm.get_ydata()) == [2.0, 1.0]  # snapshots stay off the step sweeps
    assert summary["table"]["sgm"].keys() == {"4", "8"}
    assert [(r["experiment"], r["fraction"], r["train_flops"]) for r in summary["learning_curve"]] == [
        ("sgm", 0.5, 5e9), ("sgm", 1.0, 1e10), ("wsgm", 0.5, 2e9), ("wsgm", 1.0, 4e9)]
    md = out["table_md"].read_text()
    assert "| sgm | flops 1e+10 | equal | [100] | 1e+10 |" in md and "| wsgm | 0.5 | 8 | 2e+09 |" in md


def test_rebuild_hints_name_the_snapshot_rules():
    from wsgm.provenance import rule_for

    assert rule_for("results/metrics/wsgm/steps8.at0.25.json", {"stage": "evaluate", "spec": {"snapshot": {}}}) \
        == "evaluate_snapshot"
    assert rule_for("results/samples/wsgm/steps8.at0.25.zarr") == "sample_snapshot"
    assert rule_for("results/models/wsgm/scale0.at0.25.pt", {"stage": "train", "spec": {}}) == "train_scale"
    assert rule_for("results/metrics/wsgm/steps8.json") == "evaluate"
