"""Denoising score matching for one scale: EMA, warm-up, clipping, AMP, DDP, resumable checkpoints.

Model j < J learns the normalized detail bands of level j+1 given the normalized low-pass of level
j+1; model J learns the normalized coarsest low-pass (J = 0: the image itself, i.e. plain SGM).
The net's parameterization (eps, score, x0, edm) sets its loss; ``train.weighting: likelihood`` weighs
the ε error by g²/s² (Song et al.'s likelihood weighting), ``edm`` by Karras et al.'s λ(σ); times
follow the process's law (``sde.time_law``, EDM's log-normal σ included).
Batches stream from the per-scale Zarr store whole chunks at a time (``wsgm.batches``).
Checkpoints hold model, EMA, optimizer, RNG states and the spec; a restarted job resumes from the
last one and ends with the same weights as an uninterrupted run; a checkpoint made for another
experiment, scale or config is refused (named in the log) and training starts afresh. A damaged
checkpoint (truncated, corrupt, or not fitting the model) is set aside as ``<checkpoint>.corrupt``
(an atomic rename, named with the reason in a log warning) and training restarts from step 0, so
the job still succeeds, with the weights of an uninterrupted run.
SIGTERM/SIGUSR1 (SLURM time limit, preemption) and SIGINT (Ctrl-C) save a checkpoint before
exiting. Under torchrun (WORLD_SIZE > 1; ``wsgm train --gpus N --nodes M`` launches it, see
``wsgm.launch``) the model is wrapped in DDP (NCCL on CUDA, gloo on CPU); rank 0 alone writes
checkpoints and weights. Every rank draws the noise of the whole global batch from one generator
and keeps its rows (``DSMLoss``), and reads its rows of the same global batch, so the weights equal
a single-process run's (to floating-point rounding of the gradient all-reduce) whatever the world
size, and a checkpoint resumes under another world size. A signal on any rank stops every rank
at the same step (the flag travels with the per-step loss all-reduce). The summary lists every
rank's identity (host, pid, device, SLURM job/step/task ids).
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
from wsgm.batches import ChunkBatches, loader
from wsgm.errors import Interrupted, UserError
from wsgm.losses import DSMLoss
from wsgm.nets import UNet
from wsgm.nets.load import READ_ERRORS, net_kwargs, short_reason
from wsgm.provenance import spec_hash
from wsgm.runtime import derive_seed
from wsgm.snapshots import Snapshots

__all__ = ["train", "TrainingError", "Interrupted"]

log = logging.getLogger("wsgm.train")


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (diverged loss, bad data)."""


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


def identity(rank: int, world: int, device: torch.device) -> dict:
    """Who this process is: rank, host, pid, device and its SLURM job/step/task ids (if any)."""
    import socket

    env = os.environ
    out = {"rank": rank, "local_rank": int(env.get("LOCAL_RANK", "0")), "world_size": world,
           "hostname": socket.gethostname(), "pid": os.getpid(), "device": str(device),
           "slurm_job_id": env.get("SLURM_JOB_ID"), "slurm_step_id": env.get("SLURM_STEP_ID")}
    if "SLURM_PROCID" in env:
        out["slurm_procid"] = env["SLURM_PROCID"]
    return out


def _ranks(rank: int, world: int, device: torch.device) -> list[dict]:
    """Every rank's :func:`identity`, in rank order (all_gather_object under DDP)."""
    me = identity(rank, world, device)
    if world == 1:
        return [me]
    import torch.distributed as dist

    every: list = [None] * world
    dist.all_gather_object(every, me)
    return every


def _dist() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1); initializes the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


STATE_KEYS = ("spec_hash", "step", "model", "ema", "opt", "losses", "gen", "torch_rng")


class Checkpoint:
    """The resumable state of one training job (model, EMA, optimizer, RNGs, losses, step) in one
    file outside the rule's declared outputs; only a checkpoint made by the very same spec is used.
    A damaged one is set aside (``<checkpoint>.corrupt``) and training starts from step 0."""

    def __init__(self, path: Path, spec: dict) -> None:
        self.path, self.spec, self.key = Path(path), spec, spec_hash(spec)

    @property
    def aside(self) -> Path:
        """Where a damaged checkpoint is moved (kept for inspection; delete it at will)."""
        return self.path.with_name(self.path.name + ".corrupt")

    def set_aside(self, reason: str) -> None:
        """Rename a damaged checkpoint to :attr:`aside` (atomically; replaces an older one) and say so."""
        try:
            os.replace(self.path, self.aside)
        except FileNotFoundError:  # another DDP rank set it aside first
            pass
        log.warning("checkpoint %s is damaged (%s): set aside as %s; training restarts from step 0 and "
                    "ends with the same weights as an uninterrupted run (delete %s once inspected)",
                    self.path, reason, self.aside, self.aside)

    def load(self, device: torch.device) -> dict | None:
        """The saved state if this spec made it; otherwise None, saying why (a damaged file is set
        aside)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except READ_ERRORS as exc:
            self.set_aside(short_reason(exc))
            return None
        if not isinstance(state, dict):
            self.set_aside(f"it holds a {type(state).__name__}, not a training state")
            return None
        if state.get("spec_hash") == self.key:
            missing = [k for k in STATE_KEYS if k not in state]
            if missing:
                self.set_aside(f"no {', '.join(missing)}")
                return None
            return state
        theirs = f"experiment {state.get('experiment', '?')!r} scale {state.get('scale', '?')} " \
                 f"(spec {str(state.get('spec_hash'))[:12]})"
        ours = f"experiment {self.spec['experiment']!r} scale {self.spec['scale']} (spec {self.key[:12]})"
        log.warning("refusing checkpoint %s: it was made for %s, this run is %s; starting from step 0",
                    self.path, theirs, ours)
        return None

    def save(self, step: int, model, ema, opt, gen: torch.Generator, losses: list[float],
             device: torch.device) -> None:
        state = {"spec_hash": self.key, "experiment": self.spec["experiment"], "scale": self.spec["scale"],
                 "spec": self.spec, "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                 "opt": opt.state_dict(), "losses": losses, "gen": gen.get_state(),
                 "torch_rng": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        try:
            with atomic_path(self.path) as tmp:
                torch.save(state, tmp)
        except OSError as exc:
            raise TrainingError(f"cannot write checkpoint {self.path} ({exc}). Fix: free space on its disk "
                                "(or pass --checkpoint elsewhere) and rerun; training resumes from the last "
                                "checkpoint written") from None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def restore(state: dict, model, ema, opt, gen: torch.Generator, device: torch.device) -> tuple[list[float], int]:
    """Put a checkpoint's state back; returns (losses so far, step to resume at)."""
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return list(state["losses"]), int(state["step"])


class Progress:
    """Progress bar (on a terminal) and a log line every ``log_every`` steps, from rank 0."""

    def __init__(self, spec: dict, start: int, rank: int) -> None:
        self.tcfg, self.rank = spec["train"], rank
        self.t0, self.last = time.perf_counter(), start
        self.bar = tqdm(total=self.tcfg["steps"], initial=start, desc=f"train {spec['experiment']} scale "
                        f"{spec['scale']}", disable=rank != 0 or not sys.stderr.isatty(), dynamic_ncols=True)

    def step(self, done: int, losses: list[float]) -> None:
        self.bar.update(1)
        every, total, batch = self.tcfg["log_every"], self.tcfg["steps"], self.tcfg["batch_size"]
        if done % every and done != total:
            return
        rate = (done - self.last) / max(1e-9, time.perf_counter() - self.t0)
        window = losses[-every:]
        mean = sum(window) / len(window)
        self.bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{rate * batch:.0f}")
        if self.rank == 0:
            log.info("step %d/%d  loss %.4f  %.1f it/s  %.0f images/s", done, total, mean, rate, rate * batch)
        self.t0, self.last = time.perf_counter(), done

    def close(self) -> None:
        self.bar.close()


def optimizer_step(model, ema, opt, loss: torch.Tensor, tcfg: dict, step: int) -> None:
    """Warm-up learning rate, backward, clipping, AdamW step, then the EMA update."""
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


def _reduce(loss: torch.Tensor, signum: int | None, world: int) -> tuple[float, bool]:
    """(loss averaged over ranks, whether any rank got a stop signal): one all-reduce per step, so
    every rank stops at the same step."""
    if world == 1:
        return loss.item(), signum is not None
    import torch.distributed as dist

    both = torch.stack([loss.detach().float(), torch.tensor(float(signum is not None), device=loss.device)])
    dist.all_reduce(both)
    return both[0].item() / world, both[1].item() > 0


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def train(spec: dict, store: Path, out: Path, checkpoint: Path, device: torch.device,
          snapshots: dict[str, Path] | None = None) -> dict:
    """Train model ``spec['scale']`` and write its EMA weights to ``out``; returns a summary.
    ``snapshots`` ({fraction label: path}, the fractions of ``spec['snapshots']``) also get the
    EMA weights at each snapshot's step (:class:`Snapshots`)."""
    tcfg, J, j = spec["train"], spec["J"], spec["scale"]
    kind = spec["net"].get("parameterization", "eps")
    rank, world = _dist()
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if tcfg["batch_size"] % world:
        raise TrainingError(f"train.batch_size {tcfg['batch_size']} is not divisible by the {world} "
                            "DDP processes (train.gpus x train.nodes). Fix: make batch_size a multiple "
                            "of the process count, or change train.gpus / --nproc_per_node")
    ranks = _ranks(rank, world, device)
    loss_fn = DSMLoss(sde_lib.build(spec["sde"]), kind, tcfg.get("weighting", "none"),
                      spec["net"].get("sigma_data", 1.0))
    torch.manual_seed(derive_seed(spec["seed"], "train-init", spec["experiment"], j))
    data = ChunkBatches(store, J, j, tcfg["batch_size"], derive_seed(spec["seed"], "train-batches",
                        spec["experiment"], j), rank=rank, world=world)
    kwargs = net_kwargs(spec["net"], data.shape[0], data.cond_shape[0] if data.cond_shape else 0, data.shape[-1])
    model = UNet(**kwargs).to(device)
    checks = fairness(spec, store, data.shape[-1])
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    # one stream for the whole global batch, the same on every rank (DSMLoss keeps this rank's rows)
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "train-data", spec["experiment"], j))
    amp = bool(tcfg.get("amp", True)) and device.type == "cuda"
    ckpt = Checkpoint(checkpoint, spec)
    snaps = Snapshots(ckpt, snapshots or {})
    losses: list[float] = []
    start = 0
    state = snaps.usable(ckpt.load(device))
    if state is not None:
        try:
            losses, start = restore(state, model, ema, opt, gen, device)
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            ckpt.set_aside(f"it does not fit this run's model or optimizer: {reason}")
            return train(spec, store, out, checkpoint, device, snapshots)  # afresh: model, RNGs, data order
        if rank == 0:
            log.info("resuming from %s at step %d/%d", checkpoint, start, tcfg["steps"])
    if rank > 0:  # its own stream for dropout masks (rank 0 keeps a plain run's; the checkpoint holds rank 0's)
        torch.manual_seed(derive_seed(spec["seed"], "train-rank", spec["experiment"], j, rank, start))
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    data.start = start
    batches = iter(loader(data))
    progress = Progress(spec, start, rank)
    with _SignalFlag() as flag:
        for step in range(start, tcfg["steps"]):
            x0, cond = next(batches)
            x0 = x0.to(device, non_blocking=True)
            cond = cond.to(device, non_blocking=True) if cond.numel() else None
            loss = loss_fn(net, x0, cond, gen, amp, rank, world).mean()
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {loss.item()} at step {step}; lower train.lr "
                                    "or set train.grad_clip")
            optimizer_step(model, ema, opt, loss, tcfg, step)
            mean, stop = _reduce(loss, flag.signum, world)
            losses.append(mean)
            done = step + 1
            progress.step(done, losses)
            if rank == 0:
                snaps.stash(done, ema)
            if rank == 0 and (stop or done % tcfg["checkpoint_every"] == 0):
                ckpt.save(done, model, ema, opt, gen, losses, device)
            if stop:
                _barrier(world)  # the others wait for rank 0's checkpoint before exiting
                raise Interrupted(f"signal {flag.signum or 'on another rank'} at step {done}: checkpoint "
                                  f"saved to {checkpoint}; rerun to resume")
    progress.close()
    if rank == 0:
        weights = {"ema": ema.state_dict(), "net": kwargs, "spec": spec, "losses": losses}
        with atomic_path(out) as tmp:
            torch.save(weights, tmp)
        snaps.write(weights)
        ckpt.remove()
    _barrier(world)
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10):]
    return {"loss_start": sum(head) / len(head), "loss_end": sum(tail) / len(tail),
            "parameters": sum(p.numel() for p in model.parameters()), "steps": len(losses),
            "resumed_from": start, "world_size": world, "ranks": ranks, "amp": amp, "parameterization": kind, **checks,
            **({"snapshots": snaps.steps} if snaps.steps else {})}


def fairness(spec: dict, store: Path, side: int) -> dict:
    """What the record says about this model's handicaps: its receptive field (and whether it sees
    its whole input), and how far the forward process at T leaves the band's largest-variance mode
    from the prior (:mod:`wsgm.prior`; a log warning above its threshold)."""
    from wsgm import prior
    from wsgm.data.store import open_group
    from wsgm.nets import receptive_field

    J, j = spec["J"], spec["scale"]
    out = {"receptive_field": receptive_field.describe(spec["net"], side)}
    band = prior.band_name(J, j)
    lam = dict(open_group(store).attrs.get("max_mode_variance", {})).get(band)
    if lam is not None:
        r = prior.mismatch(spec["sde"], lam)
        out["prior_mismatch"] = {"band": band, "max_mode_variance": lam, "ratio": r, "kl_nats": prior.kl_per_mode(r),
                                 "threshold": prior.THRESHOLD}
        if r > prior.THRESHOLD:
            log.warning("the forward process does not reach its prior for experiment %r scale %d: m(T)²·λ_max / "
                        "prior variance = %.3g > %g (λ_max = %.4g, the largest mode variance of the normalized "
                        "band %s): that mode's sampled variance is about %.1f%% too small even with the exact "
                        "score. Fix: raise sde.beta_max (vp, subvp, vp_exp), sde.T, or sde.sigma_max (ve)",
                        spec["experiment"], j, r, prior.THRESHOLD, lam, band, 100 * r)
    return out


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
