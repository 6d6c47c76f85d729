"""DDP training throughput on this machine's CPUs: 2 processes (gloo) against 1.

Trains one model (SGM, J = 0, on a simulated Gaussian field) with ``wsgm train --gpus N`` for
1 process × 1 thread, 1 process × 2 threads and 2 processes × 1 thread, the same global batch, and
reads the steady-state rate from the training log (images/s over the last log windows, start-up
excluded). Speed-up = rate(2 processes) / rate(1 process × 1 thread); communication overhead =
the share of a 2-process step not explained by half the 1-process step, 1 - speed-up / 2 (all of
it is the all-reduce and the loss/stop all-reduce, plus any contention for the two cores). Also
the gradient bytes all-reduced per step (parameters × 4).

    python bench/ddp.py [--size 32] [--channels 32] [--batch 32] [--steps 300]
                        [--out results/bench/ddp.json]

Prints a Markdown table; writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RATE = re.compile(r"step (\d+)/\d+ .* ([\d.]+) it/s\s+(\d+) images/s")


def _wsgm(args: list[str], cwd: Path, threads: int = 1) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run([sys.executable, "-m", "wsgm", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"wsgm {' '.join(args[:1])} failed:\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32, help="image side")
    ap.add_argument("--channels", type=int, default=32, help="U-Net base channels")
    ap.add_argument("--batch", type=int, default=32, help="global batch")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("results/bench/ddp.json"))
    args = ap.parse_args()
    every = max(10, args.steps // 10)
    cfg = {"seed": 0, "device": "cpu",
           "datasets": {"field": {"kind": "gaussian", "size": args.size, "n": 512, "n_test": 64, "n_floor": 32,
                                  "xi": args.size, "chunk": 128}},
           "experiments": {"sgm": {"dataset": "field", "J": 0,
                                   "net": {"channels": args.channels, "channel_mult": [1, 2]},
                                   "train": {"steps": args.steps, "batch_size": args.batch, "warmup": 10,
                                             "checkpoint_every": 10 * args.steps, "log_every": every},
                                   "sampling": {"n_samples": 16, "batch_size": 16}}}}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        base = ["--config", "config.yaml"]
        _wsgm(["dataset", *base, "--dataset", "field", "--out", "data.zarr"], tmp)
        _wsgm(["decompose", *base, "--experiment", "sgm", "--data", "data.zarr", "--out", "store.zarr"], tmp)
        for procs, threads in ((1, 1), (1, 2), (2, 1)):
            out = tmp / f"w{procs}x{threads}.pt"
            t0 = time.perf_counter()
            log = _wsgm(["train", *base, "--experiment", "sgm", "--scale", "0", "--store", "store.zarr",
                         "--out", out.name, "--checkpoint", f"{out.name}.ckpt", "--gpus", str(procs),
                         "--threads", str(procs * threads)], tmp, threads)
            wall = time.perf_counter() - t0
            windows = [(int(s), float(r)) for s, r, _ in RATE.findall(log)]
            steady = [r for s, r in windows if s > every]  # the first window holds the start-up
            rate = sum(steady) / len(steady) * args.batch
            import torch

            params = sum(v.numel() for v in torch.load(out, weights_only=True)["ema"].values())
            runs.append({"processes": procs, "threads_per_process": threads, "images_per_s": round(rate, 1),
                         "seconds_per_step": round(args.batch / rate, 5), "wall_s": round(wall, 1),
                         "parameters": params})
    one = runs[0]["images_per_s"]
    two = runs[2]["images_per_s"]
    speedup = two / one
    result = {"bench": "ddp", "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
              "settings": {"size": args.size, "channels": args.channels, "global_batch": args.batch,
                           "steps": args.steps, "backend": "gloo (CPU)"},
              "runs": runs, "speedup_2_processes": round(speedup, 3),
              "speedup_1_process_2_threads": round(runs[1]["images_per_s"] / one, 3),
              "communication_overhead": round(1 - speedup / 2, 3),
              "allreduce_bytes_per_step": runs[0]["parameters"] * 4,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("| processes × threads | images/s | s/step | wall s |\n|---|---|---|---|")
    for r in runs:
        print(f"| {r['processes']} × {r['threads_per_process']} | {r['images_per_s']} | {r['seconds_per_step']} "
              f"| {r['wall_s']} |")
    print(f"\nspeed-up of 2 processes over 1: {speedup:.2f} (communication + contention overhead "
          f"{100 * (1 - speedup / 2):.0f} %), all-reduce {result['allreduce_bytes_per_step'] / 1e6:.2f} MB/step; "
          f"written {args.out}")


if __name__ == "__main__":
    main()
