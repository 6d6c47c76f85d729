"""Score-network cost: training throughput (images/s) and sampling cost (ms per function evaluation).

Two networks built through the config path (``wsgm.train.build_net``): the embedded default's
plain-SGM net (config/config.yaml, experiment sgm, 1×32×32) and the paper-sized CIFAR-10 net
(128 channels, mult 1-2-2-2, 2 residual blocks, attention at 16, 3×32×32, ~35.5M parameters).
Training = the DSM step of wsgm.train (forward, ε loss, backward, clip, AdamW), timed after one
warm-up step; sampling = Euler–Maruyama through ``wsgm.samplers.sample`` under no_grad, its
wall time divided by the reported nfe. On CPU, and on CUDA (bf16 autocast for training, as in
training) when a GPU is visible. Tiny counts so it runs in a minute or two on CPU.

    python bench/core.py [--threads 2] [--out results/bench/core.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsgm import config as config_lib  # noqa: E402
from wsgm import sde as sde_lib  # noqa: E402
from wsgm.nets import count_parameters  # noqa: E402
from wsgm.nets.param import native_loss  # noqa: E402
from wsgm.samplers import sample  # noqa: E402
from wsgm.nets.load import build_net  # noqa: E402

PAPER = {"channels": 128, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 2, "attn_resolutions": [16],
         "dropout": 0.1, "parameterization": "eps"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(model, sde, shape, batch, steps, device) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = device.type == "cuda"
    model.train()

    def step():
        x0 = torch.randn(batch, *shape, device=device)
        t = sde.sample_time(torch.rand(batch, dtype=torch.float64))
        m, s = (v.float().view(-1, 1, 1, 1).to(device) for v in sde.marginal(t))
        z = torch.randn_like(x0)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(m * x0 + s * z, t.float().to(device))
        loss = native_loss("eps", pred.float(), x0, z, s.flatten()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def ms_per_nfe(model, sde, shape, batch, steps, device) -> float:
    model.eval()
    eps = lambda x, t: model(x, t)  # noqa: E731
    sample(eps, sde, (batch, *shape), 1, "em", device=device)  # warm-up
    _sync(device)
    info: dict = {}
    start = time.perf_counter()
    sample(eps, sde, (batch, *shape), steps, "em", device=device, info=info)
    _sync(device)
    return 1000 * (time.perf_counter() - start) / info["nfe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "results" / "bench" / "core.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = config_lib.load(REPO / "config" / "config.yaml")
    default = cfg["experiments"]["sgm"]["net"]
    sde = sde_lib.build(cfg["experiments"]["sgm"]["sde"])
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        gpu = device.type == "cuda"
        for name, net, channels, batch, train_steps, sample_steps in [
                ("default", default, 1, 64, 10 if not gpu else 50, 10 if not gpu else 50),
                ("paper-128ch", PAPER, 3, 8 if not gpu else 128, 2 if not gpu else 20, 2 if not gpu else 20)]:
            model, kwargs = build_net(net, channels, 32, 0, 0)
            model = model.to(device)
            shape = (channels, 32, 32)
            row = {"net": name, "device": str(device), "parameters": count_parameters(model),
                   "image": list(shape), "batch": batch,
                   "train_images_per_s": train_rate(model, sde, shape, batch, train_steps, device),
                   "sample_ms_per_nfe": ms_per_nfe(model, sde, shape, batch, sample_steps, device)}
            row["sample_ms_per_nfe_per_image"] = row["sample_ms_per_nfe"] / batch
            rows.append(row)
            print(f"| {name} | {device} | {row['parameters']:,} | {batch} | {row['train_images_per_s']:.1f} | "
                  f"{row['sample_ms_per_nfe']:.1f} | {row['sample_ms_per_nfe_per_image']:.2f} |", flush=True)
    result = {"machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})",
              "torch": torch.__version__, "threads": args.threads,
              "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
