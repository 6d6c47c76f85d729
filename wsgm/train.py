"""Denoising score matching for one scale: EMA, warm-up, clipping, AMP, DDP, resumable checkpoints.

Model j < J learns the normalized detail bands of level j+1 given the normalized low-pass of level
j+1; model J learns the normalized coarsest low-pass (J = 0: the image itself, i.e. plain SGM).
The net's parameterization (eps, score, x0) sets its loss; ``train.weighting: likelihood`` weighs
the ε error by g²/s² (Song et al.'s likelihood weighting); times follow the process's law.
Batches stream from the per-scale Zarr store whole chunks at a time (``wsgm.batches``).
Checkpoints hold model, EMA, optimizer, RNG states and the spec; a restarted job resumes from the
last one and ends with the same weights as an uninterrupted run; a checkpoint made for another
experiment, scale or config is refused (named in the log) and training starts afresh.
SIGTERM/SIGUSR1 (SLURM time limit, preemption) and SIGINT (Ctrl-C) save a checkpoint before
exiting. Under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP (NCCL on CUDA, gloo on CPU);
rank 0 alone writes checkpoints and weights.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from wsgm import sde as sde_lib
from wsgm.atomic import atomic_path
from wsgm.batches import ChunkBatches, band_pair, loader, normalize
from wsgm.nets import UNet
from wsgm.nets.param import EpsModel, native_loss, to_eps
from wsgm.provenance import spec_hash
from wsgm.runtime import derive_seed

__all__ = ["band_pair", "normalize", "train", "load_model", "build_net", "TrainingError", "Interrupted"]

log = logging.getLogger("wsgm.train")


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, bad data)."""


class Interrupted(RuntimeError):
    """A termination signal arrived; a checkpoint was saved."""


def net_kwargs(net: dict, in_channels: int, cond_channels: int, image_size: int) -> dict:
    return {
        "in_channels": in_channels,
        "out_channels": in_channels,
        "cond_channels": cond_channels,
        "channels": net["channels"],
        "channel_mult": tuple(net["channel_mult"]),
        "num_res_blocks": net["num_res_blocks"],
        "attn_resolutions": tuple(net["attn_resolutions"]),
        "dropout": net["dropout"],
        "image_size": image_size,
    }


def build_net(net: dict, channels: int, size: int, J: int, j: int) -> tuple[UNet, dict]:
    """The U-Net of model j for ``channels``-channel images of side ``size``: unconditional on the
    coarsest low-pass (j = J), conditional on the low-pass by channel concatenation otherwise."""
    side = size // 2 ** (J if j == J else j + 1)
    kwargs = net_kwargs(net, channels if j == J else 3 * channels, 0 if j == J else channels, side)
    return UNet(**kwargs), kwargs


class _SignalFlag:
    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._set) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
        return self

    def _set(self, signum, _frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _dist() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1); initializes the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _rng_state(gen: torch.Generator, device: torch.device) -> dict:
    state = {"gen": gen.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def _load_checkpoint(checkpoint: Path, spec: dict, key: str, device: torch.device) -> dict | None:
    """The checkpoint's state if it was made by this very spec; otherwise None, saying why."""
    if not checkpoint.is_file():
        return None
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    if state.get("spec_hash") == key:
        return state
    theirs = f"experiment {state.get('experiment', '?')!r} scale {state.get('scale', '?')} " \
             f"(spec {str(state.get('spec_hash'))[:12]})"
    ours = f"experiment {spec['experiment']!r} scale {spec['scale']} (spec {key[:12]})"
    log.warning("refusing checkpoint %s: it was made for %s, this run is %s; starting from step 0",
                checkpoint, theirs, ours)
    return None


def train(spec: dict, store: Path, out: Path, checkpoint: Path, device: torch.device) -> dict:
    """Train model ``spec['scale']`` and write its EMA weights to ``out``; returns a summary."""
    tcfg, J, j = spec["train"], spec["J"], spec["scale"]
    kind = spec["net"].get("parameterization", "eps")
    weighting = tcfg.get("weighting", "none")
    rank, world = _dist()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if tcfg["batch_size"] % world:
        raise TrainingError(f"train.batch_size {tcfg['batch_size']} is not divisible by the {world} "
                            "DDP processes; change batch_size or --nproc_per_node")
    sde = sde_lib.build(spec["sde"])
    torch.manual_seed(derive_seed(spec["seed"], "train-init", spec["experiment"], j))
    data = ChunkBatches(store, J, j, tcfg["batch_size"], derive_seed(spec["seed"], "train-batches",
                        spec["experiment"], j), rank=rank, world=world)
    kwargs = net_kwargs(spec["net"], data.shape[0], data.cond_shape[0] if data.cond_shape else 0, data.shape[-1])
    model = UNet(**kwargs).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "train-data", spec["experiment"], j,
                                                    *([rank] if rank else [])))
    amp = bool(tcfg.get("amp", True)) and device.type == "cuda"
    losses: list[float] = []
    start = 0
    key = spec_hash(spec)
    state = _load_checkpoint(checkpoint, spec, key, device)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        losses, start = list(state["losses"]), int(state["step"])
        log.info("resuming from %s at step %d/%d", checkpoint, start, tcfg["steps"])
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def snapshot(step: int) -> None:
        if rank == 0:
            _save(checkpoint, {"spec_hash": key, "experiment": spec["experiment"], "scale": j, "spec": spec,
                               "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                               "opt": opt.state_dict(), "losses": losses, **_rng_state(gen, device)})

    data.start = start
    batches = iter(loader(data))
    bs = tcfg["batch_size"] // world
    t0, last_log = time.perf_counter(), start
    bar = tqdm(total=tcfg["steps"], initial=start, desc=f"train {spec['experiment']} scale {j}",
               disable=rank != 0 or not sys.stderr.isatty(), dynamic_ncols=True)
    with _SignalFlag() as flag:
        for step in range(start, tcfg["steps"]):
            x0, cond = next(batches)
            x0 = x0.to(device, non_blocking=True)
            cond = cond.to(device, non_blocking=True) if cond.numel() else None
            t = sde.sample_time(torch.rand(bs, generator=gen, dtype=torch.float64))
            z = torch.randn(x0.shape, generator=gen).to(device)
            m, s = (v.float().to(device) for v in sde.marginal(t))
            xt = m.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * z
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                pred = net(xt, t.float().to(device), cond)
            pred = pred.float()
            if weighting == "likelihood":
                w = (sde.g2(t) / sde.var(t)).float().to(device)
                per = w * (to_eps(kind, pred, xt, m, s) - z).pow(2).flatten(1).mean(1)
            else:
                per = native_loss(kind, pred, x0, z, s)
            loss = per.mean()
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {loss.item()} at step {step}; lower train.lr "
                                    "or set train.grad_clip")
            for group in opt.param_groups:
                group["lr"] = tcfg["lr"] * min(1.0, (step + 1) / max(1, tcfg["warmup"]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
            opt.step()
            decay = min(tcfg["ema"], (1 + step) / (10 + step))  # warm-up: early EMA tracks the model
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
            if world > 1:
                import torch.distributed as dist

                loss = loss.detach().clone()
                dist.all_reduce(loss)
                loss /= world
            losses.append(loss.item())
            bar.update(1)
            done = step + 1
            if done % tcfg["log_every"] == 0 or done == tcfg["steps"]:
                rate = (done - last_log) / max(1e-9, time.perf_counter() - t0)
                window = losses[-tcfg["log_every"]:]
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", img_s=f"{rate * tcfg['batch_size']:.0f}")
                if rank == 0:
                    log.info("step %d/%d  loss %.4f  %.1f it/s  %.0f images/s", done, tcfg["steps"],
                             sum(window) / len(window), rate, rate * tcfg["batch_size"])
                t0, last_log = time.perf_counter(), done
            if flag.signum is not None or done % tcfg["checkpoint_every"] == 0:
                snapshot(done)
            if flag.signum is not None:
                raise Interrupted(f"signal {flag.signum} at step {done}: checkpoint saved to "
                                  f"{checkpoint}; rerun to resume")
    bar.close()
    if rank == 0:
        weights = {"ema": ema.state_dict(), "net": kwargs, "spec": spec, "losses": losses}
        with atomic_path(out) as tmp:
            torch.save(weights, tmp)
        checkpoint.unlink(missing_ok=True)
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10):]
    return {"loss_start": sum(head) / len(head), "loss_end": sum(tail) / len(tail),
            "parameters": sum(p.numel() for p in model.parameters()), "steps": len(losses),
            "resumed_from": start, "world_size": world, "amp": amp, "parameterization": kind}


def loss_curve_path(weights: Path) -> Path:
    """The loss-curve CSV written beside a weights file (a sidecar, like its record)."""
    return Path(weights).with_suffix(".loss.csv")


def write_loss_curve(weights: Path) -> Path:
    """Write step,loss rows from a weights file to its sidecar CSV (atomically)."""
    losses = torch.load(weights, map_location="cpu", weights_only=True)["losses"]
    path = loss_curve_path(weights)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss"])
        writer.writerows((i + 1, f"{v:.6g}") for i, v in enumerate(losses))
    return path


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """EMA network from a weights file written by ``train`` (safe: weights_only).

    Whatever the parameterization, the returned model maps (x, t, cond) to ε.
    """
    weights = torch.load(path, map_location=device, weights_only=True)
    net = UNet(**weights["net"]).to(device).eval()
    net.load_state_dict(weights["ema"])
    kind = weights["spec"]["net"].get("parameterization", "eps")
    if kind == "eps":
        return net, weights
    return EpsModel(net, sde_lib.build(weights["spec"]["sde"]), kind).eval(), weights
