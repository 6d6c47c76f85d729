"""Cost of batch-invariant sampling on CPU: per-sample generators and fixed-size network calls.

The cascade of the default config's experiments (config/config.yaml: SGM at 32², WSGM J = 2 with
its three nets; weights drawn at random, which does not change the cost) draws ``--batch`` samples
with the em sampler at ``--steps`` steps per scale, four ways, timed round-robin (the machine may
be loaded: each number is the best of ``--repeats`` rounds):

- ``before``: one shared ``torch.Generator`` for the batch, one network call per batch: the sampler
  before sharding;
- ``noise``: per-sample generators (``wsgm.noise.PerSample``), one call per batch;
- ``kernels``: shared generator, the networks run on chunks of exactly ``KERNEL_ROWS`` rows
  (``wsgm.cascade.fixed_rows``: oneDNN and NNPACK pick their algorithm by batch size);
- ``after``: both, what ``wsgm sample`` does now on CPU.
- ``native``: per-sample generators, one call per batch, oneDNN and NNPACK off (PyTorch's native
  per-sample convolution: also batch-invariant; the alternative not taken).

    python bench/sample_noise.py [--threads 1] [--batch 256] [--steps 4] [--repeats 3] [--kernel-rows 32]
                                 [--out results/bench/sample_noise.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsgm.atomic import write_json  # noqa: E402
from wsgm import config as config_lib  # noqa: E402
from wsgm import specs  # noqa: E402
from wsgm.cascade import KERNEL_ROWS, cascade  # noqa: E402
from wsgm.nets.load import build_net  # noqa: E402
from wsgm.noise import PerSample  # noqa: E402

CPU = torch.device("cpu")
ROWS = [KERNEL_ROWS]
VARIANTS = {"before": (False, False), "noise": (True, False), "kernels": (False, True), "after": (True, True),
            "native": (True, "native")}


def models(cfg: dict, name: str) -> list:
    exp = cfg["experiments"][name]
    ds = cfg["datasets"][exp["dataset"]]
    torch.manual_seed(0)
    out = []
    for j in range(exp["J"] + 1):
        net, _ = build_net(exp["net"], ds["channels"], ds["size"], exp["J"], j)
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.05)
        out.append(net.eval())
    return out


@contextlib.contextmanager
def native_convolution():
    before = torch._C._get_mkldnn_enabled(), torch._C._get_nnpack_enabled()
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_nnpack_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(before[0])
        torch._C._set_nnpack_enabled(before[1])


def run(nets, stats, spec, n, per_sample: bool, invariant) -> float:
    noise = PerSample(0, 0, n) if per_sample else torch.Generator().manual_seed(0)
    ctx = native_convolution() if invariant == "native" else contextlib.nullcontext()
    rows = ROWS[0] if invariant is True else None
    with torch.no_grad(), ctx:
        t0 = time.perf_counter()
        cascade(nets, stats, spec, n, noise, CPU, kernel_rows=rows)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernel-rows", type=int, default=KERNEL_ROWS, help="rows per network call (fixed_rows)")
    parser.add_argument("--out", default=str(REPO / "results/bench/sample_noise.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ROWS[0] = args.kernel_rows
    cfg = config_lib.load(REPO / "config" / "config.yaml")
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "kernel_rows": args.kernel_rows,
              "platform": platform.platform(), "threads": args.threads, "batch": args.batch, "steps": args.steps,
              "repeats": args.repeats, "experiments": {}}
    for name in cfg["experiments"]:
        spec = specs.sample(cfg, name, args.steps)
        spec["sampling"] = {**spec["sampling"], "sampler": "em"}
        J = spec["J"]
        stats = {f"low{k}": {"mean": [0.0], "std": [1.0]} for k in range(J + 1)}
        stats |= {f"detail{k}": {"mean": [0.0] * 3, "std": [1.0] * 3} for k in range(1, J + 1)}
        nets = models(cfg, name)
        run(nets, stats, spec, 8, True, True)  # warm-up
        best = {v: float("inf") for v in VARIANTS}
        for _ in range(args.repeats):
            for v, (per_sample, invariant) in VARIANTS.items():
                best[v] = min(best[v], run(nets, stats, spec, args.batch, per_sample, invariant))
        rates = {v: args.batch / s for v, s in best.items()}
        result["experiments"][name] = {
            "J": J, "seconds": best, "samples_per_s": rates,
            "overhead": {v: best[v] / best["before"] - 1 for v in VARIANTS if v != "before"}}
        print(name, {v: f"{r:.1f}/s" for v, r in rates.items()},
              {v: f"{o:+.1%}" for v, o in result["experiments"][name]["overhead"].items()}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
