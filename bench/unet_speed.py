"""U-Net speed on CPU: forward and training-step images/s and GFLOP/s of the default config's nets,
against the matmul rate of the same machine in the same run.

Nets (config/config.yaml, built through ``wsgm.nets.load.build_net``, padding resolved as the
pipeline does: circular on these periodic fields): SGM's (1×32×32, channels 16, mult 1-2-2,
attention at 8) and WSGM's three (channels 16, mult 1-2): the unconditional coarsest at 8×8 and
the conditional ones at 8×8 and 16×16. FLOPs per image from ``torch.utils.flop_counter``
(convolutions, matmuls, attention: what the counter sees; 2 FLOPs per multiply-add), forward alone
and forward + backward; the training step is forward, ε loss, backward, clipping and AdamW.

Padding variants, on the same weights, timed round-robin (the machine may be loaded: each number is
the best of ``--repeats`` rounds): ``fpad`` = nn.Conv2d(padding_mode="circular") (F.pad's circular
mode, the U-Net before ``wsgm.nets.unet.circular_pad``), ``cat`` = the U-Net now (periodic padding
by concatenating wrapped slices), ``cat_cl`` = the same in channels_last memory format, and
``zeros`` = zero padding (not equivalent: the floor that padding costs are measured against).

    python bench/unet_speed.py [--threads N] [--repeats 3] [--out results/bench/unet_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsgm import config as config_lib  # noqa: E402
from wsgm.nets import count_parameters  # noqa: E402
from wsgm.nets.load import build_net  # noqa: E402
from wsgm.nets.unet import CircularConv2d  # noqa: E402


def matmul_gflops(n: int = 2048, reps: int = 3) -> float:
    """fp32 n×n matmul rate (best of ``reps``), 2 n³ FLOPs each."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def with_fpad(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose circular convolutions pad through nn.Conv2d's own circular mode."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, CircularConv2d):
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                                 padding=child.pad, padding_mode="circular")
                conv.load_state_dict(child.state_dict())
                setattr(parent, name, conv)
    return net


def flops(net: nn.Module, x: torch.Tensor, t: torch.Tensor, cond, backward: bool) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        out = net(x, t, cond)
        if backward:
            out.pow(2).mean().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


class Timer:
    """Forward (no_grad) and training-step timing of one net variant."""

    def __init__(self, net: nn.Module, shape, cond_ch: int, batch: int, channels_last: bool) -> None:
        self.net, self.batch = net, batch
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, *shape, generator=gen).contiguous(memory_format=fmt)
        self.z = torch.randn(batch, *shape, generator=gen).contiguous(memory_format=fmt)
        self.cond = (torch.randn(batch, cond_ch, *shape[1:], generator=gen).contiguous(memory_format=fmt)
                     if cond_ch else None)
        self.t = torch.rand(batch, generator=gen)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-4)

    def forward(self, iters: int) -> float:
        self.net.eval()
        with torch.no_grad():
            self.net(self.x, self.t, self.cond)
            start = time.perf_counter()
            for _ in range(iters):
                self.net(self.x, self.t, self.cond)
        return self.batch * iters / (time.perf_counter() - start)

    def step(self) -> None:
        loss = (self.net(self.x, self.t, self.cond) - self.z).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()

    def train(self, iters: int) -> float:
        self.net.train()
        self.step()
        start = time.perf_counter()
        for _ in range(iters):
            self.step()
        return self.batch * iters / (time.perf_counter() - start)


def nets(cfg: dict):
    """(name, net config, in-channels of the image, side, J, j) of the default config's models."""
    sgm, wsgm = cfg["experiments"]["sgm"], cfg["experiments"]["wsgm"]
    size = cfg["datasets"][sgm["dataset"]]["size"]
    yield "sgm 32x32", sgm["net"], size, 0, 0
    for j in range(wsgm["J"], -1, -1):
        side = size // 2 ** (wsgm["J"] if j == wsgm["J"] else j + 1)
        yield f"wsgm j={j} {side}x{side}{' (coarsest)' if j == wsgm['J'] else ''}", wsgm["net"], size, wsgm["J"], j


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="images per forward / training step")
    parser.add_argument("--seconds", type=float, default=0.6, help="rough time per timing")
    parser.add_argument("--variants", default="fpad,cat,cat_cl,zeros")
    parser.add_argument("--out", default=str(REPO / "results" / "bench" / "unet_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = config_lib.load(REPO / "config" / "config.yaml")
    variants = args.variants.split(",")
    matmul = [matmul_gflops()]
    rows = []
    for name, net_cfg, size, J, j in nets(cfg):
        net, kwargs = build_net(net_cfg, 1, size, J, j)
        shape = (kwargs["in_channels"], kwargs["image_size"], kwargs["image_size"])
        zeros, _ = build_net({**net_cfg, "padding": "zeros"}, 1, size, J, j)
        zeros.load_state_dict(net.state_dict())
        build = {"fpad": lambda: with_fpad(net), "cat": lambda: copy.deepcopy(net),
                 "cat_cl": lambda: copy.deepcopy(net), "zeros": lambda: copy.deepcopy(zeros)}
        timers = {v: Timer(build[v](), shape, kwargs["cond_channels"], args.batch, v.endswith("_cl"))
                  for v in variants}
        probe = timers[variants[0]]
        fwd_flops = flops(probe.net, probe.x[:1], probe.t[:1], None if probe.cond is None else probe.cond[:1], False)
        fb_flops = flops(probe.net, probe.x[:1], probe.t[:1], None if probe.cond is None else probe.cond[:1], True)
        # calibrate iteration counts on the first variant, then time every variant round-robin
        f_iters = max(2, int(args.seconds * probe.forward(2) / args.batch))
        s_iters = max(2, int(args.seconds * probe.train(1) / args.batch))
        best = {v: {"forward": 0.0, "train": 0.0} for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                best[v]["forward"] = max(best[v]["forward"], timers[v].forward(f_iters))
                best[v]["train"] = max(best[v]["train"], timers[v].train(s_iters))
            matmul.append(matmul_gflops())
        row = {"net": name, "padding": net_cfg["padding"], "parameters": count_parameters(net),
               "input": list(shape), "cond_channels": kwargs["cond_channels"], "batch": args.batch,
               "forward_gflop_per_image": fwd_flops / 1e9, "train_gflop_per_image": fb_flops / 1e9,
               "variants": {}}
        for v in variants:
            fr, tr = best[v]["forward"], best[v]["train"]
            row["variants"][v] = {"forward_images_per_s": fr, "train_images_per_s": tr,
                                  "forward_gflop_per_s": fr * fwd_flops / 1e9, "train_gflop_per_s": tr * fb_flops / 1e9}
        base = row["variants"].get("zeros")
        for v, r in row["variants"].items():
            if base:
                r["forward_time_vs_zeros"] = base["forward_images_per_s"] / r["forward_images_per_s"]
                r["train_time_vs_zeros"] = base["train_images_per_s"] / r["train_images_per_s"]
        rows.append(row)
        print(f"{name}: {fwd_flops / 1e6:.1f} MFLOP/img fwd, {fb_flops / 1e6:.1f} fwd+bwd", flush=True)
        for v, r in row["variants"].items():
            print(f"  {v:7s} fwd {r['forward_images_per_s']:8.0f} img/s {r['forward_gflop_per_s']:6.2f} GFLOP/s"
                  f"   train {r['train_images_per_s']:7.0f} img/s {r['train_gflop_per_s']:6.2f} GFLOP/s"
                  + (f"   time vs zeros fwd {r['forward_time_vs_zeros']:.2f} train {r['train_time_vs_zeros']:.2f}"
                     if base else ""), flush=True)
    result = {"machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()}, {platform.processor()})",
              "torch": torch.__version__, "threads": args.threads,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "matmul_2048_fp32_gflop_per_s": max(matmul), "matmul_samples": matmul,
              "note": "best of repeats, variants timed round-robin on a possibly loaded machine; "
                      "fpad = before (F.pad circular), cat = after (wsgm.nets.unet.circular_pad)",
              "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"matmul 2048² fp32: {max(matmul):.1f} GFLOP/s; wrote {args.out}")


if __name__ == "__main__":
    main()
