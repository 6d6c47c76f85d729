"""GPU cost of the CelebA-HQ 128² paper run (config/celebahq128_paper.yaml), and the runtimes that
its workflow profile (profiles/celebahq128_paper) asks SLURM for.

Per model (built through the config path, ``wsgm.train.build_net``): parameters and forward
FLOPs per image, counted by torch's FLOP counter. From them, at a sustained rate (``--tflops``,
default 40 TFLOP/s, an A100-class GPU), the hours of each training job (3 x forward x batch x
steps) and of each sampling job (steps x n_samples x the forward FLOPs summed over scales), set
beside the profile's runtime for the first attempt. With ``--measure`` on a machine with a GPU the
rate is measured instead (forward of one sampling batch and one bf16 training step of each net).

    python bench/celebahq128_cost.py [--tflops 40] [--measure] [--out results/bench/celebahq128_cost.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsgm import config as config_lib  # noqa: E402
from wsgm import specs  # noqa: E402
from wsgm.nets import count_parameters  # noqa: E402
from wsgm.nets.load import build_net  # noqa: E402
from wsgm.steps import Steps  # noqa: E402

CONFIG = REPO / "config" / "celebahq128_paper.yaml"
PROFILE = REPO / "profiles" / "celebahq128_paper" / "config.yaml"


def _inputs(kw: dict, n: int, device) -> tuple:
    side = kw["image_size"]
    x = torch.randn(n, kw["in_channels"], side, side, device=device)
    cond = torch.randn(n, kw["cond_channels"], side, side, device=device) if kw["cond_channels"] else None
    return x, torch.full((n,), 0.5, device=device), cond


def forward_flops(net: torch.nn.Module, kw: dict) -> int:
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(*_inputs(kw, 1, "cpu"))
    return counter.get_total_flops()


def measured_tflops(net: torch.nn.Module, kw: dict, flops: int, batch: int, train_batch: int) -> dict:
    """Sustained TFLOP/s of a sampling forward and a bf16 training step on the visible GPU."""
    net = net.cuda()
    x, t, cond = _inputs(kw, batch, "cuda")
    rates = {}
    with torch.no_grad():
        net.eval()
        net(x, t, cond)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(3):
            net(x, t, cond)
        torch.cuda.synchronize()
        rates["sample"] = 3 * flops * batch / (time.perf_counter() - start) / 1e12
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x, t, cond = _inputs(kw, train_batch, "cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = net(x, t, cond).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    rates["train"] = 3 * 3 * flops * train_batch / (time.perf_counter() - start) / 1e12
    net.cpu()
    return rates


def profile_runtime(rule: str, steps=1) -> int:
    expr = yaml.safe_load(PROFILE.read_text())["set-resources"][rule]["runtime"]
    return eval(str(expr), {"attempt": 1, "wildcards": SimpleNamespace(steps=Steps(steps).label)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflops", type=float, default=40.0, help="assumed sustained TFLOP/s (no --measure)")
    ap.add_argument("--measure", action="store_true", help="measure the rate on the visible GPU")
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "celebahq128_cost.json"))
    args = ap.parse_args(argv)
    if args.measure and not torch.cuda.is_available():
        ap.error("--measure needs a visible CUDA GPU")
    cfg = config_lib.load(CONFIG, {"datasets": {"celebahq128": {"sha256": "0" * 64}}})  # no download here
    ds = cfg["datasets"]["celebahq128"]
    experiments, total = {}, {"train_gpu_h": 0.0, "sample_gpu_h": 0.0}
    for name in specs.trained_experiments(cfg):
        exp = cfg["experiments"][name]
        models = []
        for j in range(exp["J"] + 1):
            net, kw = build_net(exp["net"], ds["channels"], ds["size"], exp["J"], j)
            flops = forward_flops(net, kw)
            rate = {"train": args.tflops, "sample": args.tflops}
            if args.measure:
                rate = measured_tflops(net, kw, flops, exp["sampling"]["batch_size"], exp["train"]["batch_size"])
            train_h = 3 * flops * exp["train"]["batch_size"] * exp["train"]["steps"] / (rate["train"] * 1e12) / 3600
            models.append({"scale": j, "side": kw["image_size"], "in_channels": kw["in_channels"],
                           "parameters": count_parameters(net), "forward_gflop": flops / 1e9,
                           "tflops": rate, "train_hours": train_h})
            total["train_gpu_h"] += train_h
        sharers = [n for n in cfg["experiments"] if specs.models_owner(cfg, n) == name]
        sampling = {}
        for steps in map(Steps, exp["sampling"]["steps"]):
            per_scale = steps.per_scale(exp["J"])
            hours = sum(per_scale[m["scale"]] * exp["sampling"]["n_samples"] * m["forward_gflop"] * 1e9
                        / (m["tflops"]["sample"] * 1e12) for m in models) / 3600
            sampling[steps.label] = {"hours": hours, "profile_runtime_h": profile_runtime("sample", steps) / 60}
            total["sample_gpu_h"] += hours * len(sharers)
        experiments[name] = {"J": exp["J"], "sharers": sharers, "models": models,
                             "train_profile_runtime_h": profile_runtime("train_scale") / 60, "sampling": sampling}
        print(f"{name}: " + ", ".join(f"scale {m['scale']} {m['side']}² {m['parameters'] / 1e6:.1f}M params "
                                      f"{m['forward_gflop']:.1f} GFLOP, train {m['train_hours']:.1f} h" for m in models)
              + f"; sampling 1024 steps {sampling['1024']['hours']:.1f} h"
              f" (asked {sampling['1024']['profile_runtime_h']:.1f} h)")
    print(f"total: training {total['train_gpu_h']:.0f} GPU-h, sampling {total['sample_gpu_h']:.0f} GPU-h")
    result = {"config": str(CONFIG.relative_to(REPO)), "profile": str(PROFILE.relative_to(REPO)),
              "rate": "measured" if args.measure else f"assumed {args.tflops} TFLOP/s",
              "device": torch.cuda.get_device_name() if args.measure else "none (FLOP count on CPU)",
              "machine": platform.machine(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "experiments": experiments, "total": total}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
