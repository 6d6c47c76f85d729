"""Helpers shared by test modules (not fixtures: those live in conftest.py).

Test modules import these from here, never from conftest.py or from one another.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_project(root: Path) -> Path:
    """A copy of the workflow and of the `wsgm` package in ``root`` (put first on PYTHONPATH by
    :func:`snakemake`), with config/test.yaml as its config/config.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "profiles", "wsgm", "config", "environment.yml"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    shutil.copy(REPO / "config" / "test.yaml", root / "config" / "config.yaml")
    return root


def snakemake(root: Path, *args: str, timeout: float = 900, check: bool = True) -> str:
    """Run Snakemake (a subprocess, 2 cores) in the project ``root``; its combined output."""
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "snakemake"), "--cores", "2", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # SIGTERM does not stop a hung Snakemake, SIGINT does
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"snakemake {args} timed out:\n{out[-3000:]}")
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed ({proc.returncode}):\n{out[-5000:]}")
    return out


def planned(root: Path, config: dict | None = None, targets: tuple[str, ...] = ()) -> set[tuple[str, tuple]]:
    """(rule, wildcards) of every job a dry run of ``targets`` (default: all) would execute
    (without the `all` target)."""
    args = [*targets, "--dry-run"]
    if config is not None:
        path = root / "config" / "modified.yaml"
        path.write_text(yaml.safe_dump(config))
        args += ["--configfile", str(path)]
    jobs: list[list] = []
    for line in snakemake(root, *args).splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            jobs.append([m.group(1), ()])
        elif (m := re.match(r"^\s+wildcards: (.*)", line)) and jobs:
            jobs[-1][1] = tuple(sorted(m.group(1).split(", ")))
    return {(rule, wc) for rule, wc in jobs if rule != "all"}


def rules(jobs) -> dict[str, int]:
    """Number of jobs per rule."""
    out: dict[str, int] = {}
    for rule, _ in jobs:
        out[rule] = out.get(rule, 0) + 1
    return out


def train_tiny_models(cfg: dict, store: Path, outdir: Path, steps: int) -> list[Path]:
    """Weights of scales 0..2 of the ``wsgm`` experiment, trained ``steps`` steps by the real stage."""
    from wsgm import specs
    from wsgm.provenance import run_stage
    from wsgm.train import train

    paths = []
    for j in range(3):
        spec = specs.train(cfg, "wsgm", j)
        spec["train"] = {**spec["train"], "steps": steps}
        out = outdir / f"scale{j}.pt"
        run_stage("train", spec, {"store": store}, {"weights": (out, False)},
                  lambda t, spec=spec, j=j: train(spec, store, t["weights"], outdir / f"{j}.ckpt",
                                                  torch.device("cpu")))
        paths.append(out)
    return paths


def assert_same_weights(a: Path, b: Path) -> None:
    """The same training run to floating-point rounding. The loss of every step (which a different
    batch or different noise would move at the 1e-2 level) agrees to 1e-5; the weights to 1e-2 in
    relative L2 norm (measured: 2e-3 after 60 steps). They cannot agree to 1e-5: the all-reduce sums
    the gradient in another order, and AdamW divides each coordinate's step by its gradient's RMS,
    so coordinates whose gradient is at rounding level (zero-initialized output layers) move by
    about lr per step in a direction that rounding decides."""
    wa, wb = (torch.load(p, weights_only=True) for p in (a, b))
    assert len(wa["losses"]) == len(wb["losses"])
    assert max(abs(u - v) for u, v in zip(wa["losses"], wb["losses"])) < 1e-5
    x = torch.cat([v.flatten() for v in wa["ema"].values() if v.is_floating_point()])
    y = torch.cat([wb["ema"][k].flatten() for k, v in wa["ema"].items() if v.is_floating_point()])
    assert ((x - y).norm() / x.norm()).item() < 1e-2
