"""Orthonormal 2-D discrete wavelet transform in PyTorch with periodic boundaries.

Batched over ``(N, C, H, W)`` tensors on any device, these functions reproduce
PyWavelets' ``mode="periodization"`` transforms (``pywt.dwt2``/``idwt2``/``wavedec2``/
``waverec2`` with ``axes=(-2, -1)``) for orthogonal wavelets such as ``haar`` and ``dbN``.
One level is a single grouped strided ``conv2d`` with the four outer-product filters on
a circularly extended input; the inverse is its adjoint (``conv_transpose2d`` followed by
folding the periodic extension back), which equals the inverse because the filter bank
is orthonormal. Detail bands are stacked orientation-major as ``(cH, cV, cD)``.
"""

from __future__ import annotations

import functools

import pywt
import torch
import torch.nn.functional as F

__all__ = ["check_levels", "dwt2", "idwt2", "wavedec2", "waverec2"]


@functools.lru_cache(maxsize=None)
def _coefficients(wavelet: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Decomposition low/high-pass filters of an orthogonal wavelet, from PyWavelets."""
    w = pywt.Wavelet(wavelet)
    if not w.orthogonal:
        raise ValueError(f"wavelet {wavelet!r} is not orthogonal; only orthogonal wavelets are supported")
    return tuple(float(c) for c in w.dec_lo), tuple(float(c) for c in w.dec_hi)


@functools.lru_cache(maxsize=None)
def _filter_bank(wavelet: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The four 2-D analysis filters (LL, HL, LH, HH) as a ``(4, 1, L, L)`` conv2d weight.

    Band order follows pywt: cA (low/low), cH (detail along H, low along W),
    cV (low along H, detail along W), cD (detail/detail). Filters are reversed because
    ``conv2d`` computes a cross-correlation while pywt convolves.
    """
    lo, hi = (torch.tensor(f, dtype=torch.float64).flip(0) for f in _coefficients(wavelet))
    bands = [torch.outer(a, b) for a, b in ((lo, lo), (hi, lo), (lo, hi), (hi, hi))]
    return torch.stack(bands).unsqueeze(1).to(dtype=dtype, device=device)


def check_levels(size: int, levels: int) -> None:
    """Raise ValueError unless ``size`` can be halved ``levels`` times into a size >= 1."""
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if size < 1 or size % (2**levels) != 0:
        raise ValueError(f"size {size} is not divisible by 2**levels = {2**levels} (levels={levels})")


def _extend(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Circularly extend ``x`` by ``pad`` samples on both sides of ``dim`` (any pad size)."""
    n = x.shape[dim]
    idx = torch.arange(-pad, n + pad, device=x.device) % n
    return x.index_select(dim, idx)


def _fold(y: torch.Tensor, pad: int, n: int, dim: int) -> torch.Tensor:
    """Adjoint of :func:`_extend`: sum a length ``n + 2*pad`` periodic extension back to length ``n``."""
    total = y.shape[dim]
    reps = -(-total // n)
    y = y.movedim(dim, -1)
    y = F.pad(y, (0, reps * n - total)).unflatten(-1, (reps, n)).sum(-2)
    return y.roll(-pad, dims=-1).movedim(-1, dim)


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}")


def _haar_dwt2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Haar by sums and differences of the 2×2 blocks (same result as the filter bank, ~4× faster)."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    a, b = blocks[:, :, :, 0, :, 0], blocks[:, :, :, 0, :, 1]  # even row: even, odd column
    p, q = blocks[:, :, :, 1, :, 0], blocks[:, :, :, 1, :, 1]  # odd row
    top, bottom, left, right = a + b, p + q, a - b, p - q
    low = (top + bottom) * 0.5
    details = torch.cat([(top - bottom) * 0.5, (left + right) * 0.5, (left - right) * 0.5], dim=1)
    return low, details


def _haar_idwt2(low: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
    n, c, h, w = low.shape
    ch, cv, cd = details[:, :c], details[:, c:2 * c], details[:, 2 * c:]
    top, bottom = (low + ch) * 0.5, (low - ch) * 0.5  # (a+b)/2 and (p+q)/2
    left, right = (cv + cd) * 0.5, (cv - cd) * 0.5  # (a-b)/2 and (p-q)/2
    out = torch.empty(n, c, h, 2, w, 2, dtype=low.dtype, device=low.device)
    out[:, :, :, 0, :, 0] = top + left
    out[:, :, :, 0, :, 1] = top - left
    out[:, :, :, 1, :, 0] = bottom + right
    out[:, :, :, 1, :, 1] = bottom - right
    return out.reshape(n, c, 2 * h, 2 * w)


def dwt2(x: torch.Tensor, wavelet: str = "haar") -> tuple[torch.Tensor, torch.Tensor]:
    """One-level 2-D DWT of ``x`` (N, C, H, W) with periodization.

    Returns ``(low, details)``: ``low`` is (N, C, H/2, W/2) and ``details`` is
    (N, 3C, H/2, W/2) holding pywt's ``cH``, ``cV``, ``cD`` in channel blocks of size C.
    """
    _check_input(x)
    n, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"dwt2 needs even H and W, got H={h}, W={w}")
    if wavelet == "haar":
        return _haar_dwt2(x)
    weight = _filter_bank(wavelet, x.dtype, x.device)
    pad = weight.shape[-1] // 2 - 1
    if pad:
        x = _extend(_extend(x, pad, -2), pad, -1)
    y = F.conv2d(x, weight.repeat(c, 1, 1, 1), stride=2, groups=c)
    y = y.reshape(n, c, 4, h // 2, w // 2)
    low = y[:, :, 0]
    details = y[:, :, 1:].transpose(1, 2).reshape(n, 3 * c, h // 2, w // 2)
    return low, details


def idwt2(low: torch.Tensor, details: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """Inverse of :func:`dwt2`: rebuild the (N, C, 2h, 2w) signal from ``low`` and ``details``."""
    _check_input(low)
    n, c, h, w = low.shape
    if details.shape != (n, 3 * c, h, w):
        raise ValueError(f"details must have shape {(n, 3 * c, h, w)}, got {tuple(details.shape)}")
    if wavelet == "haar":
        return _haar_idwt2(low, details)
    weight = _filter_bank(wavelet, low.dtype, low.device)
    pad = weight.shape[-1] // 2 - 1
    coeffs = torch.cat([low.unsqueeze(1), details.reshape(n, 3, c, h, w)], dim=1)
    coeffs = coeffs.transpose(1, 2).reshape(n, 4 * c, h, w)
    y = F.conv_transpose2d(coeffs, weight.repeat(c, 1, 1, 1), stride=2, groups=c)
    if pad:
        y = _fold(_fold(y, pad, 2 * h, -2), pad, 2 * w, -1)
    return y


def wavedec2(
    x: torch.Tensor, wavelet: str = "haar", levels: int = 1
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Multi-level 2-D DWT: ``(low_J, [details_1, ..., details_J])``, details_1 the finest."""
    _check_input(x)
    check_levels(x.shape[-2], levels)
    check_levels(x.shape[-1], levels)
    details: list[torch.Tensor] = []
    low = x
    for _ in range(levels):
        low, d = dwt2(low, wavelet)
        details.append(d)
    return low, details


def lowpass(x: torch.Tensor, levels: int, wavelet: str = "haar") -> torch.Tensor:
    """The level-``levels`` low-pass x_levels of ``x`` (orthonormal: the cascade's convention)."""
    return wavedec2(x, wavelet, levels)[0]


def waverec2(low: torch.Tensor, details_list: list[torch.Tensor], wavelet: str = "haar") -> torch.Tensor:
    """Inverse of :func:`wavedec2` (``details_list`` ordered finest first)."""
    x = low
    for d in reversed(details_list):
        x = idwt2(x, d, wavelet)
    return x
