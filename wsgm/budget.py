"""Training budgets in compute, and the training compute of models and of their snapshots.

A budget (``train.budget``) is given in one of two units:

- ``flops``: floating-point operations of the training steps, each step = one forward and one
  backward pass of the model's U-Net on ``train.batch_size`` inputs, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention; a multiply-add
  is 2 FLOPs; elementwise ops, the optimizer and the loss are not counted);
- ``image_pixels``: images × pixels seen, each step = ``batch_size`` × the model's grid pixels
  (side², channels not counted).

SGM (J = 0) spends the whole budget on its one model; WSGM splits it over its J + 1 models by
``train.budget_split``:

- ``equal``: every model gets 1/(J+1) of the budget;
- ``pixels``: shares proportional to each model's grid pixels (side²: (L/2^(j+1))² for the
  conditional model j < J, (L/2^J)² for the coarsest model J);
- ``equal_steps``: shares proportional to each model's cost per step, i.e. every model trains the
  same number of steps (the split of a config that gives every model the same ``train.steps``).

Each model's ``train.steps`` is derived as round(share × budget / cost per step), ≥ 1. The FLOPs
of one net are counted once on the ``meta`` device (shapes only, no arithmetic) at batch 1 and are
linear in the batch; counts are memoized in the process and in a JSON cache on disk
(``$WSGM_CACHE_DIR`` or ``$XDG_CACHE_HOME/wsgm`` or ``~/.cache/wsgm``, keyed by the torch version,
the U-Net's code hash and the net's arguments), so loading a config stays fast.

Snapshots (``learning_curve.fractions``): at fraction f a model with ``steps`` training steps
writes its EMA weights after ``snapshot_step(steps, f)`` steps.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path

UNITS = ("flops", "image_pixels")
SPLITS = ("equal", "pixels", "equal_steps")
BUDGET_KEYS = ("budget", "budget_split")  # train keys that are config-level, not per model


def model_side(size: int, J: int, j: int) -> int:
    """Side of model j's input grid (as :func:`wsgm.nets.load.build_net`)."""
    return size // 2 ** (J if j == J else j + 1)


def model_shape(channels: int, size: int, J: int, j: int) -> tuple[int, int, int]:
    """(input channels, conditioning channels, side) of model j: the coarsest model J sees the
    C-channel low-pass, the conditional models j < J the 3C detail bands given the C-channel low-pass."""
    side = model_side(size, J, j)
    return (channels, 0, side) if j == J else (3 * channels, channels, side)


def _cache_file() -> Path:
    root = os.environ.get("WSGM_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wsgm"
    return Path(root) / "flops.json"


def count_flops(model, *inputs) -> int:
    """FLOPs of ``model(*inputs)`` plus the backward pass of the sum of its output, as counted by
    torch's FlopCounterMode (works on ``meta`` tensors: shapes only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*inputs).sum().backward()
    return int(counter.get_total_flops())


def _count(net: dict, in_ch: int, cond_ch: int, side: int) -> int:
    import torch

    from wsgm.nets.load import net_kwargs
    from wsgm.nets.unet import UNet

    with torch.device("meta"):
        model = UNet(**net_kwargs(net, in_ch, cond_ch, side))
        x = torch.empty(1, in_ch, side, side)
        cond = torch.empty(1, cond_ch, side, side) if cond_ch else None
        t = torch.empty(1)
    return count_flops(model, x, t, cond)


NET_KEYS = ("channels", "channel_mult", "num_res_blocks", "attn_resolutions", "padding")


@functools.cache
def _flops_cached(key: str) -> int:
    import torch

    args = json.loads(key)
    from wsgm.code_version import code_hash

    # keyed by the U-Net's code too (and what it imports), so an edited network is counted again
    disk_key = hashlib.sha256(f"{torch.__version__}|{code_hash('wsgm.nets.unet')}|{key}".encode()).hexdigest()[:24]
    path = _cache_file()
    table: dict = {}
    with contextlib.suppress(OSError, ValueError):
        table = json.loads(path.read_text())
    if isinstance(table.get(disk_key), int):
        return table[disk_key]
    net = {k: args["net"][k] for k in NET_KEYS if k in args["net"]} | {"dropout": 0.0}
    flops = _count(net, args["in"], args["cond"], args["side"])
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        from wsgm.atomic import atomic_path

        table[disk_key] = flops
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(table, sort_keys=True))
    return flops


def flops_per_image(net: dict, channels: int, size: int, J: int, j: int) -> int:
    """FLOPs of one forward + backward pass of model j's U-Net on one input (FlopCounterMode)."""
    in_ch, cond_ch, side = model_shape(channels, size, J, j)
    key = json.dumps({"net": {k: net.get(k) for k in NET_KEYS}, "in": in_ch, "cond": cond_ch, "side": side},
                     sort_keys=True)
    return _flops_cached(key)


def cost_per_step(unit: str, net: dict, channels: int, size: int, J: int, j: int, batch: int) -> float:
    """What one training step of model j costs in ``unit`` (flops or image_pixels)."""
    if unit == "flops":
        return float(batch * flops_per_image(net, channels, size, J, j))
    if unit == "image_pixels":
        return float(batch * model_side(size, J, j) ** 2)
    raise ValueError(f"budget unit must be one of {UNITS}, not {unit!r}")


def shares(split: str, costs: list[float], sides: list[int]) -> list[float]:
    """Fractions of the budget per model 0..J (summing to 1) under a split rule."""
    if split == "equal":
        weights = [1.0] * len(costs)
    elif split == "pixels":
        weights = [float(s * s) for s in sides]
    elif split == "equal_steps":
        weights = list(costs)
    else:
        raise ValueError(f"budget_split must be one of {SPLITS}, not {split!r}")
    total = sum(weights)
    return [w / total for w in weights]


def unit_of(budget: dict) -> tuple[str, float]:
    """(unit, amount) of a budget mapping such as {flops: 2.0e13}."""
    (unit, amount), = budget.items()
    return unit, float(amount)


def plan(exp: dict, dataset: dict) -> list[dict]:
    """Per model j = 0..J: its side, FLOPs per image and per step, pixels per step, share of the
    budget and derived steps (``exp['train']['budget']`` must be set). Steps < 1 are returned as 0
    (the caller says the budget is too small)."""
    tcfg, J = exp["train"], exp["J"]
    unit, amount = unit_of(tcfg["budget"])
    C, L, B = dataset["channels"], dataset["size"], tcfg["batch_size"]
    costs = [cost_per_step(unit, exp["net"], C, L, J, j, B) for j in range(J + 1)]
    sides = [model_side(L, J, j) for j in range(J + 1)]
    out = []
    for j, share in enumerate(shares(tcfg.get("budget_split", "equal"), costs, sides)):
        steps = int(round(share * amount / costs[j]))
        out.append({"scale": j, "side": sides[j], "unit": unit, "share": share, "cost_per_step": costs[j],
                    "steps": steps})
    return out


def steps_of(tcfg: dict, j: int) -> int:
    """Model j's training steps: ``train.steps`` (one number, or one per model)."""
    steps = tcfg["steps"]
    return int(steps[j] if isinstance(steps, list) else steps)


def snapshot_step(steps: int, fraction: float) -> int:
    """The training step at which the snapshot at ``fraction`` of ``steps`` is taken (≥ 1)."""
    return max(1, int(round(fraction * steps)))


def fraction_label(fraction: float) -> str:
    """The fraction as it appears in file names (``0.25`` → ``0.25``)."""
    return f"{float(fraction):g}"


def training_compute(exp: dict, dataset: dict, fraction: float = 1.0) -> dict:
    """Training compute summed over the experiment's models at ``fraction`` of their steps
    (snapshot steps below 1): {"flops", "image_pixels", "steps": [per model]}."""
    tcfg, J = exp["train"], exp["J"]
    C, L, B = dataset["channels"], dataset["size"], tcfg["batch_size"]
    steps = [steps_of(tcfg, j) for j in range(J + 1)]
    if fraction < 1:
        steps = [snapshot_step(s, fraction) for s in steps]
    flops = sum(s * cost_per_step("flops", exp["net"], C, L, J, j, B) for j, s in enumerate(steps))
    pixels = sum(s * cost_per_step("image_pixels", exp["net"], C, L, J, j, B) for j, s in enumerate(steps))
    return {"flops": flops, "image_pixels": pixels, "steps": steps}
