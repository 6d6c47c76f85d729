"""Denoising score matching for one scale: EMA, warm-up, clipping, atomic resumable checkpoints.

Model j < J learns the normalized detail bands of level j+1 given the normalized low-pass of level
j+1; model J learns the normalized coarsest low-pass (J = 0: the image itself, i.e. plain SGM).
Checkpoints hold model, EMA, optimizer, RNG states and the spec; a restarted job resumes from the
last one and ends with the same weights as an uninterrupted run. SIGTERM/SIGUSR1 (SLURM time
limit, preemption) and SIGINT (Ctrl-C) save a checkpoint before exiting.
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wsgm import sde as sde_lib
from wsgm.atomic import atomic_path
from wsgm.data.store import open_group
from wsgm.decompose import read_stats
from wsgm.nets import UNet
from wsgm.provenance import spec_hash
from wsgm.runtime import derive_seed

log = logging.getLogger("wsgm.train")


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, bad data)."""


class Interrupted(RuntimeError):
    """A termination signal arrived; a checkpoint was saved."""


@dataclass
class ScaleData:
    target: torch.Tensor  # normalized, N×Ct×h×w
    cond: torch.Tensor | None  # normalized low-pass, N×C×h×w, or None at the coarsest scale


def band_pair(J: int, j: int) -> tuple[str, str | None]:
    """(target band, conditioning band) names in the decomposed store for model j."""
    if not 0 <= j <= J:
        raise ValueError(f"scale {j} is outside 0..J={J}")
    return (f"low{J}", None) if j == J else (f"detail{j + 1}", f"low{j + 1}")


def normalize(x: torch.Tensor, stats: dict, inverse: bool = False) -> torch.Tensor:
    mean = torch.tensor(stats["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(stats["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean if inverse else (x - mean) / std


def load_scale(store: Path, J: int, j: int) -> ScaleData:
    target_name, cond_name = band_pair(J, j)
    group = open_group(store, target_name, *([cond_name] if cond_name else []))
    stats = read_stats(store)

    def band(name: str) -> torch.Tensor:
        return normalize(torch.from_numpy(np.asarray(group[name][:])), stats[name])

    return ScaleData(band(target_name), band(cond_name) if cond_name else None)


def net_kwargs(net: dict, data: ScaleData) -> dict:
    return {
        "in_channels": data.target.shape[1],
        "out_channels": data.target.shape[1],
        "cond_channels": 0 if data.cond is None else data.cond.shape[1],
        "channels": net["channels"],
        "channel_mult": tuple(net["channel_mult"]),
        "num_res_blocks": net["num_res_blocks"],
        "attn_resolutions": tuple(net["attn_resolutions"]),
        "dropout": net["dropout"],
        "image_size": data.target.shape[-1],
    }


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


def train(spec: dict, store: Path, out: Path, checkpoint: Path, device: torch.device) -> dict:
    """Train model ``spec['scale']`` and write its EMA weights to ``out``; returns a summary."""
    tcfg, J, j = spec["train"], spec["J"], spec["scale"]
    data = load_scale(store, J, j)
    sde = sde_lib.build(spec["sde"])
    torch.manual_seed(derive_seed(spec["seed"], "train-init", spec["experiment"], j))
    kwargs = net_kwargs(spec["net"], data)
    model = UNet(**kwargs).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "train-data", spec["experiment"], j))
    losses: list[float] = []
    start = 0
    key = spec_hash(spec)
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("spec_hash") == key:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            torch.set_rng_state(state["torch_rng"])
            losses, start = list(state["losses"]), int(state["step"])
            log.info("resuming from %s at step %d/%d", checkpoint, start, tcfg["steps"])
        else:
            log.warning("ignoring checkpoint %s: it was made with another spec", checkpoint)

    def snapshot(step: int) -> None:
        _save(checkpoint, {"spec_hash": key, "step": step, "model": model.state_dict(),
                           "ema": ema.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                           "torch_rng": torch.get_rng_state(), "losses": losses})

    n, bs = data.target.shape[0], tcfg["batch_size"]
    t0, last_log = time.perf_counter(), start
    bar = tqdm(total=tcfg["steps"], initial=start, desc=f"train {spec['experiment']} scale {j}",
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    with _SignalFlag() as flag:
        for step in range(start, tcfg["steps"]):
            idx = torch.randint(n, (bs,), generator=gen)
            x0 = data.target[idx].to(device)
            cond = data.cond[idx].to(device) if data.cond is not None else None
            t = sde.eps + (sde.T - sde.eps) * torch.rand(bs, generator=gen, dtype=torch.float64)
            z = torch.randn(x0.shape, generator=gen).to(device)
            mean, std = (v.float().view(-1, 1, 1, 1).to(device) for v in sde.marginal(t))
            pred = model(mean * x0 + std * z, t.float().to(device), cond)
            loss = ((pred - z) ** 2).mean()
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
            losses.append(loss.item())
            bar.update(1)
            done = step + 1
            if done % tcfg["log_every"] == 0 or done == tcfg["steps"]:
                rate = (done - last_log) / max(1e-9, time.perf_counter() - t0)
                window = losses[-tcfg["log_every"]:]
                log.info("step %d/%d  loss %.4f  %.1f it/s", done, tcfg["steps"],
                         sum(window) / len(window), rate)
                t0, last_log = time.perf_counter(), done
            if flag.signum is not None or done % tcfg["checkpoint_every"] == 0:
                snapshot(done)
            if flag.signum is not None:
                raise Interrupted(f"signal {flag.signum} at step {done}: checkpoint saved to "
                                  f"{checkpoint}; rerun to resume")
    bar.close()
    weights = {"ema": ema.state_dict(), "net": kwargs, "spec": spec, "losses": losses}
    with atomic_path(out) as tmp:
        torch.save(weights, tmp)
    checkpoint.unlink(missing_ok=True)
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10):]
    return {"loss_start": sum(head) / len(head), "loss_end": sum(tail) / len(tail),
            "parameters": sum(p.numel() for p in model.parameters()), "steps": len(losses),
            "resumed_from": start}


def load_model(path: Path, device: torch.device) -> tuple[UNet, dict]:
    """EMA network from a weights file written by ``train`` (safe: weights_only)."""
    weights = torch.load(path, map_location=device, weights_only=True)
    model = UNet(**weights["net"]).to(device).eval()
    model.load_state_dict(weights["ema"])
    return model, weights

