"""Receptive field of :class:`wsgm.nets.unet.UNet`, from its config alone (no network is built).

The U-Net's spatial operations are 3×3 convolutions (stride 1, or stride 2 in ``Downsample``),
nearest-neighbour ×2 upsampling (followed by a 3×3 convolution), skip concatenations and, at the
resolutions listed in ``attn_resolutions``, global self-attention. Along each axis the input
pixels an output pixel depends on form an interval, found here by walking the network backwards
from that pixel on an unbounded line (no boundary: with zero padding the interval is cut at the
image edges, with circular padding it wraps around them). Channels, widths and the time embedding
do not move information in space and play no part.

GroupNorm's per-group spatial mean and variance are also global, but only as two scalars per
group: they cannot place anything in space, and they are left out (as in the empirical
measurement of tests/test_receptive_field.py, which replaces them by the identity).

Walking one resolution level l (stride 2^l in input pixels) adds 2·2^l per ResBlock (two 3×3
convolutions) on each side; so, ignoring the ±2^l rounding of the stride-2 and nearest-upsampling
steps, the receptive field of L = len(channel_mult) levels with B = num_res_blocks is
    RF ≈ 2 R + 1,  R = 2 + (4B + 2)(2^L − 1) + 2(2^(L−1) − 1) + 4·2^(L−1)
(conv_in and the output conv 1 each; per level B ResBlocks down, B+1 up; one Downsample and one
Upsample conv per level transition; the two middle ResBlocks at the bottleneck).
:func:`interval` is the exact count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Interval = tuple[int, int]
Back = Callable[[int, int], Interval]


def _conv(f: Back) -> Back:
    return lambda a, b: f(a - 1, b + 1)


def _res(f: Back) -> Back:  # two 3×3 convolutions; the 1×1 skip is inside their interval
    return lambda a, b: f(a - 2, b + 2)


def _down(f: Back) -> Back:  # stride-2 3×3 conv, padding 1: output i reads inputs 2i-1 .. 2i+1
    return lambda a, b: f(2 * a - 1, 2 * b + 1)


def _up(f: Back) -> Back:  # 3×3 conv after nearest ×2: fine i reads coarse i // 2
    return lambda a, b: f((a - 1) // 2, (b + 1) // 2)


def _concat(f: Back, g: Back) -> Back:
    def both(a: int, b: int) -> Interval:
        (a1, b1), (a2, b2) = f(a, b), g(a, b)
        return min(a1, a2), max(b1, b2)  # both contain the pixel's own column: they overlap
    return both


def interval(levels: int, num_res_blocks: int, pixel: int) -> Interval:
    """(lo, hi): the input pixels lo..hi (on an unbounded line) that output pixel ``pixel`` of a
    U-Net with ``levels`` = len(channel_mult) resolution levels depends on through its convolutions."""
    if levels < 1 or num_res_blocks < 1:
        raise ValueError(f"need levels >= 1 and num_res_blocks >= 1, got {levels}, {num_res_blocks}")
    f: Back = lambda a, b: (a, b)  # noqa: E731 - the input itself
    f = _conv(f)  # conv_in
    skips = [f]
    for level in range(levels):
        for _ in range(num_res_blocks):
            f = _res(f)
            skips.append(f)
        if level < levels - 1:
            f = _down(f)
            skips.append(f)
    f = _res(_res(f))  # middle blocks
    for level in reversed(range(levels)):
        for _ in range(num_res_blocks + 1):
            f = _concat(_res(f), _res(skips.pop()))
        if level > 0:
            f = _up(f)
    return _conv(f)(pixel, pixel)  # output conv


def receptive_field(levels: int, num_res_blocks: int, side: int) -> int:
    """Width in input pixels of the convolutional receptive field of the centre pixel (side // 2)
    of a ``side``-pixel input, on an unbounded line (so it may exceed ``side``)."""
    lo, hi = interval(levels, num_res_blocks, side // 2)
    return hi - lo + 1


def attention_resolutions(channel_mult: Sequence[int], attn_resolutions: Sequence[int], side: int) -> list[int]:
    """The resolutions of a ``side``-pixel input at which the U-Net really applies attention (those
    of ``attn_resolutions`` that are among its levels' sides side / 2^l)."""
    return [side >> level for level in range(len(channel_mult)) if (side >> level) in set(attn_resolutions)]


def sees_whole_input(net: dict, side: int) -> bool:
    """Whether every output pixel of the centre can depend on every input pixel: global attention
    at some resolution, or a convolutional receptive field of the centre pixel covering 0..side-1."""
    if attention_resolutions(net["channel_mult"], net.get("attn_resolutions", ()), side):
        return True
    lo, hi = interval(len(net["channel_mult"]), net["num_res_blocks"], side // 2)
    return lo <= 0 and hi >= side - 1


def describe(net: dict, side: int) -> dict:
    """What the report and the train record say about one model's view of its ``side``² input."""
    attn = attention_resolutions(net["channel_mult"], net.get("attn_resolutions", ()), side)
    return {"side": side, "receptive_field": receptive_field(len(net["channel_mult"]), net["num_res_blocks"], side),
            "attention": attn, "sees_whole_input": sees_whole_input(net, side),
            "padding": net.get("padding", "zeros")}


def model_side(size: int, J: int, j: int) -> int:
    """Side of model j's input for ``size``² images and J scales (as :func:`wsgm.nets.load.build_net`)."""
    return size // 2 ** (J if j == J else j + 1)
