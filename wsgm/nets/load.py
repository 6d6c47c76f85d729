"""Build the U-Net of model j from its config, and load trained weights (what sampling,
likelihood and the benches need from a model, without importing the training loop)."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from wsgm import sde as sde_lib
from wsgm.errors import UserError, damaged
from wsgm.nets.param import EpsModel
from wsgm.nets.unet import UNet


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
        "padding": net.get("padding", "zeros"),  # a spec from before the option: zeros
    }


def build_net(net: dict, channels: int, size: int, J: int, j: int) -> tuple[UNet, dict]:
    """The U-Net of model j for ``channels``-channel images of side ``size``: unconditional on the
    coarsest low-pass (j = J), conditional on the low-pass by channel concatenation otherwise."""
    side = size // 2 ** (J if j == J else j + 1)
    kwargs = net_kwargs(net, channels if j == J else 3 * channels, 0 if j == J else channels, side)
    return UNet(**kwargs), kwargs


class ModelError(UserError):
    """A weights file that cannot be used (truncated, corrupt, not written by ``wsgm train``)."""


# What torch.load (weights_only) raises on a damaged file: a truncated zip gives OSError (Errno 22)
# or RuntimeError, random bytes UnpicklingError, a text file KeyError, an empty file EOFError.
READ_ERRORS = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError,
               ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError)


def short_reason(exc: BaseException) -> str:
    """One short line saying why torch.load failed (never torch's advice to drop weights_only)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # torch's weights_only refusal: keep only its cause
        cause = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n")[0]
        cause = re.split(r"(?<=[a-z0-9])\. ", cause)[0].rstrip(".")
        if "Unsupported global" in cause:
            return f"unsafe content refused: {cause}; a weights file holds only tensors and plain data"
        return f"truncated or corrupt: {cause or type(exc).__name__}"
    line = text.strip().splitlines()[0][:160] if text.strip() else ""
    if isinstance(exc, OSError) and exc.errno == 22 or "PytorchStreamReader" in line:
        return f"truncated or corrupt: incomplete zip archive ({line})"
    if isinstance(exc, KeyError) or not line:
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return f"truncated or corrupt: {line}"


def _model_error(path: Path, reason: str) -> ModelError:
    return ModelError(damaged(path, f"is not a readable weights file ({reason})",
                              "rerun `snakemake` (or `wsgm train` for that scale), which retrains that scale"))


def load_weights(path: Path, device: torch.device | str = "cpu") -> dict:
    """The dict a weights file holds (safe: weights_only); a damaged file is one ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist. Fix: rerun `snakemake` (or `wsgm train` for "
                         "that scale), which trains it")
    try:
        weights = torch.load(path, map_location=device, weights_only=True)
    except READ_ERRORS as exc:
        raise _model_error(path, short_reason(exc)) from None
    if not isinstance(weights, dict):
        raise _model_error(path, f"it holds a {type(weights).__name__}, not the dict `wsgm train` writes")
    missing = [k for k in ("ema", "net", "spec") if not isinstance(weights.get(k), dict)]
    if missing:
        raise _model_error(path, f"not written by `wsgm train`: no {', '.join(map(repr, missing))}")
    return weights


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """EMA network from a weights file written by ``train`` (safe: weights_only).

    Whatever the parameterization, the returned model maps (x, t, cond) to ε. A file that cannot be
    read or does not fit its own network (truncated, corrupt, foreign) raises one :class:`ModelError`
    naming it and the fix (delete it and its record, rerun: that scale is retrained).
    """
    path = Path(path)
    weights = load_weights(path, device)
    try:
        net = UNet(**weights["net"]).to(device).eval()
        net.load_state_dict(weights["ema"])
        kind = weights["spec"]["net"].get("parameterization", "eps")
        if kind != "eps":
            sigma_data = weights["spec"]["net"].get("sigma_data", 1.0)
            return EpsModel(net, sde_lib.build(weights["spec"]["sde"]), kind, sigma_data).eval(), weights
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().replace("\n\t", " ").replace("\n", " ") or type(exc).__name__
        raise _model_error(path, f"its weights do not fit its network: {reason[:200]}") from None
    return net, weights
