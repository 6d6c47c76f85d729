"""Multi-GPU training as one DDP process group (`wsgm train --gpus N --nodes M`, wsgm.launch): the
launcher's command lines, world-size-invariant noise, a 2-process CPU run equal to a 1-process run,
a synchronized stop on a signal to one rank, and train.gpus kept out of the hashed spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from wsgm import config as config_lib
from wsgm import launch, specs
from wsgm.errors import UserError
from wsgm.losses import DSMLoss
from wsgm.sde import build

from .helpers import REPO, assert_same_weights, make_project, snakemake

PY = "/venv/bin/python"


# --- the launcher -----------------------------------------------------------------------------

def test_one_node_runs_torchrun_standalone_with_the_same_arguments():
    args = ["train", "--spec", "{}", "--gpus", "4"]
    assert launch.launch_argv(args, 4, 1, python=PY) == [
        PY, "-m", "wsgm.launch", "--standalone", "--nnodes", "1", "--nproc_per_node", "4", "-m", "wsgm", *args]


def test_several_nodes_run_one_torchrun_per_node_through_srun():
    args = ["train", "--gpus", "4", "--nodes", "2"]
    argv = launch.launch_argv(args, 4, 2, python=PY, job_id="1234", host="node07", gpus_per_node=True)
    assert argv == ["srun", "--overlap", "--nodes", "2", "--ntasks", "2", "--ntasks-per-node", "1",
                    "--kill-on-bad-exit=1", "--gpus-per-node=4", PY, "-m", "wsgm.launch", "--nnodes", "2",
                    "--nproc_per_node", "4", "--rdzv_backend", "c10d", "--rdzv_endpoint",
                    f"node07:{launch.port_for('1234')}", "--rdzv_id", "1234", "-m", "wsgm", *args]
    assert launch.port_for("1234") == 21234 and 20000 <= launch.port_for("987654321") < 40000


def test_several_nodes_outside_slurm_is_one_clear_error():
    with pytest.raises(UserError, match="train.nodes = 2 needs a SLURM job.*Fix: run it through the SLURM"):
        launch.launch_argv(["train"], 2, 2)


def test_a_torchrun_worker_does_not_launch_again():
    assert launch.is_worker({"TORCHELASTIC_RUN_ID": "x", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert not launch.is_worker({"SLURM_JOB_ID": "5"})


def test_more_gpus_than_visible_is_one_clear_error(monkeypatch):
    from wsgm.cli import _check_processes

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    spec = {"train": {"batch_size": 64}}
    with pytest.raises(UserError, match=r"train.gpus = 4 but only 1 CUDA device.*Fix: request 4 GPUs"):
        _check_processes(spec, torch.device("cuda"), 4, 1)
    with pytest.raises(UserError, match="batch_size 64 is not divisible by .* 3 x 1 = 3"):
        _check_processes(spec, torch.device("cpu"), 3, 1)


def test_a_batch_not_divisible_by_the_processes_is_a_config_error(tiny_config):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["experiments"]["sgm"]["train"].update(gpus=3)
    with pytest.raises(config_lib.ConfigError, match=r"experiments.sgm.train.batch_size.*not divisible by "
                                                     r"train.gpus x train.nodes = 3 x 1 = 3.*Fix"):
        config_lib.check(cfg, warn=None)


def test_gpus_and_nodes_are_not_part_of_the_training_spec(tiny_config):
    before = specs.train(tiny_config, "wsgm", 1)
    tiny_config["experiments"]["wsgm"]["train"].update(gpus=4, nodes=2)
    assert specs.train(tiny_config, "wsgm", 1) == before
    assert specs.train_processes(tiny_config, "wsgm") == (4, 2)
    assert "gpus" not in before["train"] and "nodes" not in before["train"]


# --- noise: world-size invariant --------------------------------------------------------------

def test_every_rank_draws_its_rows_of_the_global_batch_noise():
    loss = DSMLoss(build(config_lib.defaults("sde")))
    shape = torch.Size([8, 3, 4, 4])
    g = torch.Generator().manual_seed(3)
    t1, z1 = loss.draw(shape, g)
    g = torch.Generator().manual_seed(3)  # world = 1: t then z, as before DDP existed
    assert torch.equal(t1, loss.sample_time(8, g)) and torch.equal(z1, torch.randn(shape, generator=g))
    parts = []
    for rank in (0, 1):
        g = torch.Generator().manual_seed(3)
        parts.append(loss.draw(torch.Size([4, 3, 4, 4]), g, rank, 2))
    assert torch.equal(torch.stack([parts[0][0], parts[1][0]], 1).flatten(), t1)
    assert torch.equal(torch.stack([parts[0][1], parts[1][1]], 1).flatten(0, 1), z1)


# --- real runs: 2 CPU processes (gloo) against 1 ----------------------------------------------

def _train(tmp: Path, store: Path, name: str, gpus: int, cfg: Path, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "wsgm", "train", "--config", str(cfg), "--experiment", "wsgm", "--scale", "2",
           "--store", str(store), "--out", str(tmp / f"{name}.pt"), "--checkpoint", str(tmp / f"{name}.ckpt"),
           "--gpus", str(gpus), "--threads", str(gpus)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _run(*args, **kw) -> str:
    proc = _train(*args, **kw)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture
def config_file(tmp_path) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["experiments"]["wsgm"]["train"].update(steps=60, checkpoint_every=5, log_every=10)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_two_processes_are_one_group_with_the_weights_of_one(tmp_path, tiny_store, config_file):
    _, store = tiny_store
    _run(tmp_path, store, "one", 1, config_file)
    out = _run(tmp_path, store, "two", 2, config_file)
    assert "one DDP process group" in out
    assert_same_weights(tmp_path / "one.pt", tmp_path / "two.pt")
    rec = json.loads((tmp_path / "two.pt.prov.json").read_text())
    summary = json.dumps(rec)
    ranks = _find(rec, "ranks")
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}, summary
    assert len({r["pid"] for r in ranks}) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == [
        "two.loss.csv", "two.pt", "two.pt.prov.json"]  # one set of outputs, no checkpoint left


def _find(node, key):
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            if (found := _find(item, key)) is not None:
                return found
    return None


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _interrupt(tmp: Path, store: Path, config_file: Path, target, after_step: int = 0) -> tuple[int, str]:
    """Start a 2-process run, wait for a checkpoint past ``after_step``, send SIGUSR1 to
    ``target(launcher pid, worker pids)``; (the checkpoint's step, the run's output)."""
    ckpt = tmp / "two.ckpt"
    proc = _train(tmp, store, "two", 2, config_file)
    try:
        deadline = time.time() + 240

        def step():
            try:
                return torch.load(ckpt, weights_only=True)["step"] if ckpt.exists() else 0
            except Exception:  # being replaced
                return 0
        while step() <= after_step and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) == 2, (workers, proc.poll())
        os.kill(target(proc.pid, workers), signal.SIGUSR1)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out[-3000:]
    return torch.load(ckpt, weights_only=True)["step"], out


@pytest.mark.slow
def test_a_signal_to_one_rank_or_the_launcher_stops_all_at_one_step_and_the_rerun_resumes(
        tmp_path, tiny_store, config_file):
    _, store = tiny_store
    cfg = yaml.safe_load(config_file.read_text())
    cfg["experiments"]["wsgm"]["train"].update(steps=400)
    config_file.write_text(yaml.safe_dump(cfg))
    ckpt = tmp_path / "two.ckpt"
    # one worker only (as if SLURM signalled one task): both ranks stop at the checkpoint's step
    step, out = _interrupt(tmp_path, store, config_file, lambda launcher, workers: max(workers))
    assert 0 < step < 400 and not (tmp_path / "two.pt").exists()
    assert f"at step {step}" in out, out[-3000:]
    # the launcher (sbatch --signal=USR1 reaches every process of the step): torchrun forwards it
    again, out = _interrupt(tmp_path, store, config_file, lambda launcher, workers: launcher, step)
    assert f"resuming from {ckpt} at step {step}/400" in out
    assert step < again < 400 and f"at step {again}" in out, out[-3000:]
    out = _run(tmp_path, store, "two", 2, config_file)
    assert f"resuming from {ckpt} at step {again}/400" in out
    _run(tmp_path, store, "one", 1, config_file)
    assert_same_weights(tmp_path / "one.pt", tmp_path / "two.pt")


# --- the workflow: editing train.gpus reruns nothing ------------------------------------------

@pytest.mark.workflow
def test_editing_train_gpus_reruns_nothing(tmp_path):
    root = make_project(tmp_path / "p")
    snakemake(root, "results/models/sgm/scale0.pt", timeout=600)
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["experiments"]["sgm"]["train"]["gpus"] = 2
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(root, "results/models/sgm/scale0.pt", "--dry-run")
    assert "Nothing to be done" in out, out[-3000:]
    out = snakemake(root, "results/models/sgm/scale0.pt", "--dry-run", "--forcerun", "train_scale", "--printshellcmds")
    assert "gpu=2" in out and "gpus_per_node=2" in out and "--gpus 2 --nodes 1" in out, out[-3000:]
