"""Snakemake end to end on the tiny config: outputs, stale-only reruns, provenance, determinism.

Each project is a copy of the workflow and of the `wsgm` package in a temporary folder (put first
on PYTHONPATH), so code edits made by a test stay in that copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from .helpers import BIN, REPO, make_project, planned, rules, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("project"))
    snakemake(root)
    return root


@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load((REPO / "config" / "test.yaml").read_text())


def test_full_run_makes_the_report_and_a_second_run_does_nothing(project):
    for name in ("quality_vs_steps.png", "samples.png", "spectra.png", "summary.json",
                 "quality_per_scale.svg", "samples_per_steps.png", "best.html"):
        path = project / "results" / "report" / name
        assert path.stat().st_size > 1000 or name.endswith((".json", ".html")), name
        assert (path.parent / f"{name}.prov.json").exists()
    summary = json.loads((project / "results" / "report" / "summary.json").read_text())
    assert set(summary["table"]) == {"sgm", "wsgm"}
    assert set(summary["table"]["wsgm"]) == {"2", "4"}
    for name in ("make_dataset", "decompose", "train_scale", "sample", "evaluate", "report"):
        assert list((project / "results" / "logs").rglob("*.log")), name
    assert "Nothing to be done" in snakemake(project, "--dry-run")


def test_changing_sampling_steps_runs_only_the_new_counts(project, tiny):
    cfg = json.loads(json.dumps(tiny))
    for exp in cfg["experiments"].values():
        exp["sampling"]["steps"] = [2, 4, 8]
    jobs = planned(project, cfg)
    new = {(rule, (f"experiment={exp}", "steps=8")) for rule in ("sample", "evaluate") for exp in ("sgm", "wsgm")}
    assert jobs == new | {("report", ())}


def test_changing_a_width_retrains_only_that_experiment(project, tiny):
    cfg = json.loads(json.dumps(tiny))
    cfg["experiments"]["sgm"]["net"]["channels"] = 12
    jobs = planned(project, cfg)
    assert ("train_scale", ("experiment=sgm", "j=0")) in jobs
    assert not [j for j in jobs if "experiment=wsgm" in j[1]], jobs
    assert rules(jobs) == {"train_scale": 1, "sample": 2, "evaluate": 2, "report": 1}


def test_changing_the_dataset_reruns_everything(project, tiny):
    cfg = json.loads(json.dumps(tiny))
    cfg["datasets"]["tiny"]["n"] = 96
    assert rules(planned(project, cfg)) == {"make_dataset": 1, "decompose": 2, "reference": 2,
                                            "train_scale": 4, "sample": 4, "evaluate": 4, "report": 1}


@pytest.mark.parametrize("module, expected", [
    ("evaluate.py", {"evaluate": 4, "report": 1}),
    ("report.py", {"report": 1}),
    ("nets/unet.py", {"train_scale": 4, "sample": 4, "evaluate": 4, "report": 1}),
    ("decompose.py", {"decompose": 2, "train_scale": 4, "sample": 4, "evaluate": 4, "report": 1}),
])
def test_editing_a_stage_reruns_it_and_downstream_only(project, module, expected):
    path = project / "wsgm" / module
    original = path.read_text()
    try:
        path.write_text(original + "\n_EDITED = 1\n")  # a change to what the module runs
        assert rules(planned(project)) == expected
        # comments, blank lines and docstrings are not code: such an edit reruns nothing
        path.write_text("# an edited comment\n\n" + original.replace(
            '"""', '"""Edited. ', 1) + "\n# a trailing comment\n")
        assert "Nothing to be done" in snakemake(project, "--dry-run")
    finally:
        path.write_text(original)
    assert "Nothing to be done" in snakemake(project, "--dry-run")


def test_audit_walks_from_a_metric_to_the_dataset(project):
    env = {**os.environ, "PYTHONPATH": str(project)}
    res = subprocess.run([str(BIN / "wsgm"), "audit", "results/metrics/wsgm/steps4.json"],
                         cwd=project, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    for stage in ("[evaluate]", "[sample]", "[train]", "[decompose]", "[dataset]"):
        assert stage in res.stdout
    assert "every link verified" in res.stdout


def test_snakemake_summary_list_changes_and_report(project):
    summary = snakemake(project, "--summary")
    assert "results/models/wsgm/scale2.pt" in summary
    snakemake(project, "--list-changes", "params")
    snakemake(project, "--report", "report.html")
    html = (project / "report.html").read_text(errors="replace")
    assert "quality_vs_steps.png" in html and len(html) > 100_000


def test_two_runs_give_bit_identical_samples(project, tmp_path):
    other = make_project(tmp_path / "again")
    snakemake(other, "--until", "sample")
    for exp, steps in (("sgm", 4), ("wsgm", 2)):
        a = zarr.open_group(str(project / f"results/samples/{exp}/steps{steps}.zarr"), mode="r")
        b = zarr.open_group(str(other / f"results/samples/{exp}/steps{steps}.zarr"), mode="r")
        assert np.array_equal(a["x0"][:], b["x0"][:]), exp


def test_interrupted_training_resumes_without_clean_up(tmp_path, tiny):
    root = make_project(tmp_path / "killed")
    cfg = json.loads(json.dumps(tiny))
    cfg["experiments"] = {"sgm": cfg["experiments"]["sgm"]}
    cfg["experiments"]["sgm"]["train"].update(steps=1500, checkpoint_every=50, log_every=50)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "snakemake"), "--cores", "2"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    ckpt = root / "results/checkpoints/sgm/scale0.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "training never wrote a checkpoint"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C on the whole run
    proc.communicate(timeout=120)
    weights = root / "results/models/sgm/scale0.pt"
    assert not weights.exists() and not Path(f"{weights}.prov.json").exists()
    assert ckpt.exists()
    snakemake(root)
    log = (root / "results/logs/train/sgm_scale0.log").read_text()
    assert "resuming from" in log
    assert weights.exists() and (root / "results/report/summary.json").exists()


def test_inverse_target_scores_the_known_part_and_reruns_only_its_stale_tasks(project, tiny):
    snakemake(project, "inverse")
    for exp in ("sgm", "wsgm"):
        for task in ("inpaint_center", "inpaint_blocks", "superres"):
            result = json.loads((project / f"results/inverse/{exp}/{task}_steps4.json").read_text())
            assert result["inverse"]["metrics"]["known_max_abs_error"] < 1e-4, (exp, task)
            assert result["mode"] == "inverse" and "spectrum_log_error" in result["metrics"]
    assert "Nothing to be done" in snakemake(project, "inverse", "--dry-run")
    cfg = json.loads(json.dumps(tiny))
    cfg["inverse"] = {"fraction": 0.25}  # only the random-block task reads it
    jobs = planned(project, cfg, ("inverse",))
    assert jobs == {(rule, (f"experiment={exp}", "steps=4", "task=inpaint_blocks"))
                    for rule in ("inverse_sample", "inverse_evaluate") for exp in ("sgm", "wsgm")} | {("inverse", ())}


def test_lint_is_clean_and_a_bad_config_stops_before_any_job(tmp_path, tiny):
    root = make_project(tmp_path / "lint")
    assert "Congratulations, your workflow is in a good condition" in snakemake(root, "--lint")
    cfg = json.loads(json.dumps(tiny))
    cfg["experiments"]["wsgm"]["J"] = 5
    (root / "bad.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(root, "--dry-run", "--configfile", "bad.yaml", check=False)
    assert "config error at 'experiments.wsgm.J'" in out and "Fix: set J <= 3" in out
    assert not (root / "results").exists()
