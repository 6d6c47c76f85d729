"""Compact DDPM-style U-Net score network with time embedding and optional conditioning."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= 8 that divides ``channels``."""
    return nn.GroupNorm(max(g for g in range(1, 9) if channels % g == 0), channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise the parameters of ``module`` in place and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of ``1000 * t``: t in [1e-3, 5] maps to [1, 5000], all within ``max_period``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


PADDINGS = ("zeros", "circular")


def circular_pad(x: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Periodic padding of the last two dimensions by ``pad`` on each side: exactly
    ``F.pad(x, (pad,) * 4, mode="circular")``, by concatenating wrapped slices (width, then
    height), which is cheaper on CPU than F.pad's circular mode (bench/unet_speed.py)."""
    x = torch.cat([x[..., -pad:], x, x[..., :pad]], dim=-1)
    return torch.cat([x[..., -pad:, :], x, x[..., :pad, :]], dim=-2)


class CircularConv2d(nn.Conv2d):
    """A Conv2d with periodic padding (``circular_pad``) and then none: the same parameters and
    output as ``nn.Conv2d(..., padding=pad, padding_mode="circular")``, faster on CPU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, pad: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(circular_pad(x, self.pad), self.weight, self.bias)


def conv3(in_ch: int, out_ch: int, padding: str = "zeros", stride: int = 1) -> nn.Conv2d:
    """3×3 convolution keeping the size (halving it with ``stride`` 2), padded with zeros or
    periodically (``circular``: exactly shift-equivariant on periodic fields)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")
    if padding == "circular":
        return CircularConv2d(in_ch, out_ch, 3, stride=stride)
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """Norm-SiLU-conv residual block with an additive time-embedding projection."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, padding: str = "zeros") -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), conv3(in_ch, out_ch, padding)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.drop = _norm(out_ch), nn.Dropout(dropout)
        self.conv2 = _zero(conv3(out_ch, out_ch, padding))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` given the (already SiLU-activated) embedding ``emb``."""
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with a residual connection."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm, self.qkv = _norm(ch), nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over all H*W positions of ``x``; ``emb`` is ignored."""
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, hw, c)
        return x + self.proj(out.transpose(1, 2).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution halving the spatial size."""

    def __init__(self, ch: int, padding: str = "zeros") -> None:
        super().__init__()
        self.conv = conv3(ch, ch, padding, stride=2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """Downsample ``x``; ``emb`` is ignored."""
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution."""

    def __init__(self, ch: int, padding: str = "zeros") -> None:
        super().__init__()
        self.conv = conv3(ch, ch, padding)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """Upsample ``x``; ``emb`` is ignored."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """DDPM-style U-Net mapping (x, t[, cond]) to a tensor of shape (N, out_channels, H, W).

    Attention placement is fixed at construction from ``image_size``; the middle block gets
    attention only if the lowest resolution is listed in ``attn_resolutions``. ``padding`` pads
    every 3×3 convolution (down- and upsampling included) with zeros or periodically
    (``circular``: the net is then exactly equivariant to shifts by multiples of 2^(levels-1)).
    Its receptive field: :mod:`wsgm.nets.receptive_field`.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int = 0,
                 channels: int = 32, channel_mult: tuple[int, ...] = (1, 2),
                 num_res_blocks: int = 1, attn_resolutions: tuple[int, ...] = (),
                 dropout: float = 0.0, image_size: int = 32, padding: str = "zeros") -> None:
        super().__init__()
        if len(channel_mult) < 1:
            raise ValueError("channel_mult must have at least one level")
        self.factor = 2 ** (len(channel_mult) - 1)
        if image_size % self.factor:
            raise ValueError(f"image_size {image_size} not divisible by {self.factor} "
                             f"(2**(len(channel_mult)-1) for channel_mult={tuple(channel_mult)})")
        self.in_channels, self.cond_channels, self.channels = in_channels, cond_channels, channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if padding not in PADDINGS:
            raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")
        self.conv_in = conv3(in_channels + cond_channels, channels, padding)

        self.down = nn.ModuleList()
        skips, ch, res = [channels], channels, image_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, channels * mult, emb_dim, dropout, padding))
                ch = channels * mult
                if res in attn_resolutions:
                    self.down.append(AttnBlock(ch))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Downsample(ch, padding))
                skips.append(ch)
                res //= 2

        mid_attn = [AttnBlock(ch)] if res in attn_resolutions else []
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout, padding), *mid_attn,
                                  ResBlock(ch, ch, emb_dim, dropout, padding)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), channels * mult, emb_dim, dropout, padding))
                ch = channels * mult
                if res in attn_resolutions:
                    self.up.append(AttnBlock(ch))
            if level > 0:
                self.up.append(Upsample(ch, padding))
                res *= 2
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _zero(conv3(ch, out_channels, padding)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Return the network output for inputs ``x`` (N, C, H, W), times ``t`` (N,), optional ``cond``."""
        n, _, height, width = x.shape
        if height % self.factor or width % self.factor:
            raise ValueError(f"spatial size {height}x{width} not divisible by {self.factor} = 2**(levels-1)")
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f"cond_channels={self.cond_channels} but cond is "
                             f"{'None' if cond is None else 'given'}")
        if cond is not None:
            if cond.shape != (n, self.cond_channels, height, width):
                expected = (n, self.cond_channels, height, width)
                raise ValueError(f"cond shape {tuple(cond.shape)} != expected {expected}")
            x = torch.cat([x, cond], dim=1)
        t = t.reshape(-1) if t.numel() == 1 else t.reshape(n)
        if not self.training and t.numel() > 1 and bool((t == t[0]).all()):
            t = t[:1]
        # one time for the whole batch (sampling, in eval mode; training never pays the check):
        # embed it once, as one row broadcast over the batch, so that a sample's output does not
        # depend on the batch size (a GEMM's rounding depends on its number of rows)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.channels).to(x.dtype)))

        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:  # skip = output of each res(+attn) block and each downsample
            h = layer(h, emb)
            if isinstance(layer, AttnBlock):
                hs[-1] = h
            else:
                hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = layer(h, emb)
        return self.out(h)
