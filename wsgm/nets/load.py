"""Build the U-Net of model j from its config, and load trained weights (what sampling,
likelihood and the benches need from a model, without importing the training loop)."""

from __future__ import annotations

from pathlib import Path

import torch

from wsgm import sde as sde_lib
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
    }


def build_net(net: dict, channels: int, size: int, J: int, j: int) -> tuple[UNet, dict]:
    """The U-Net of model j for ``channels``-channel images of side ``size``: unconditional on the
    coarsest low-pass (j = J), conditional on the low-pass by channel concatenation otherwise."""
    side = size // 2 ** (J if j == J else j + 1)
    kwargs = net_kwargs(net, channels if j == J else 3 * channels, 0 if j == J else channels, side)
    return UNet(**kwargs), kwargs


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
