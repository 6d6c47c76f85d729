"""Exact ε-predictors for stationary Gaussian fields, plain and across wavelet scales (no training).

A field with power spectrum P (``wsgm.data.gaussian``; covariance = circulant with symbol P) stays
Gaussian under every forward process, so its noised score is linear and diagonal in Fourier. One
orthonormal periodized DWT level is a polyphase transform: (low, cH, cV, cD) are jointly stationary
on the coarse grid with a 4×4 symbol S(κ) per coarse frequency (computed here numerically from the
torch DWT, so any orthonormal wavelet works). Model j of WSGM sees the normalized detail bands
given the normalized low-pass; that law is Gaussian with mean K(κ) l̂(κ) (K = S_dl / S_ll) and the
3×3 Schur complement S_dd - S_dl S_ld / S_ll as covariance symbol, and normalization is an affine
map per channel. ``GaussianEps`` has the U-Net's signature ``(x, t, cond)`` and returns ε, so the
samplers and the cascade use it unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsgm.sde import SDE
from wsgm.symbols import scale_symbols


class GaussianEps(nn.Module):
    """ε of x_t = m x + s z where x | cond ~ N(mean(cond), Σ), Σ block-circulant with symbol ``cov``.

    ``cov``: (C, M, M, k, k) complex symbol of the normalized target (k bands per channel, target
    channel index = band * C + channel, the DWT's orientation-major layout); ``offset`` (k*C,) the
    constant part of the mean; ``gain``: (C, M, M, k) complex symbol of the cond → mean map, or None.
    """

    def __init__(self, sde: SDE, cov: torch.Tensor, offset: torch.Tensor, gain: torch.Tensor | None = None,
                 cond_scale: torch.Tensor | None = None, cond_shift: torch.Tensor | None = None) -> None:
        super().__init__()
        self.sde = sde
        self.register_buffer("cov", cov)
        self.register_buffer("offset", offset.to(torch.float64))
        self.register_buffer("gain", gain)
        self.register_buffer("cond_scale", cond_scale)  # un-normalize cond: l = l' * scale + shift
        self.register_buffer("cond_shift", cond_shift)
        self.channels, self.bands = cov.shape[0], cov.shape[-1]

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (N, k*C, M, M) → (N, C, M, M, k)
        n, _, h, w = x.shape
        return x.reshape(n, self.bands, self.channels, h, w).permute(0, 2, 3, 4, 1)

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        n, c, h, w, k = y.shape
        return y.permute(0, 4, 1, 2, 3).reshape(n, k * c, h, w)

    def mean(self, n: int, cond: torch.Tensor | None) -> torch.Tensor:
        """E[x_0 | cond] (N, k*C, M, M), float64."""
        size = self.cov.shape[1]
        out = self.offset.view(1, -1, 1, 1).expand(n, -1, size, size)
        if self.gain is None:
            return out
        low = cond.double() * self.cond_scale.view(1, -1, 1, 1) + self.cond_shift.view(1, -1, 1, 1)
        lh = torch.fft.fft2(low)[..., None]  # (N, C, M, M, 1)
        return out + self._merge(torch.fft.ifft2((self.gain * lh).movedim(-1, 1)).real.movedim(1, -1))

    def _noised(self, t: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        m, s = (float(v) for v in self.sde.marginal(t.double().reshape(-1)[:1]))
        eye = torch.eye(self.bands, dtype=self.cov.dtype, device=self.cov.device)
        return m**2 * self.cov + s**2 * eye, m, s

    def _whiten(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None):
        cov_t, m, s = self._noised(t)
        r = self._split(x.double() - m * self.mean(x.shape[0], cond))
        rh = torch.fft.fft2(r.movedim(-1, 1)).movedim(1, -1)  # (N, C, M, M, k)
        return cov_t, rh, s

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if t.numel() > 1 and not torch.all(t == t.reshape(-1)[0]):  # one time per sample: loop
            return torch.cat([self(x[i:i + 1], t.reshape(-1)[i:i + 1],
                                   None if cond is None else cond[i:i + 1]) for i in range(x.shape[0])])
        cov_t, rh, s = self._whiten(x, t, cond)
        y = torch.linalg.solve(cov_t, rh.unsqueeze(-1)).squeeze(-1)
        out = torch.fft.ifft2(y.movedim(-1, 1)).real.movedim(1, -1)
        return (s * self._merge(out)).to(x.dtype)

    def log_prob(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Closed-form log density of x_t given cond, per sample (all samples at the same t)."""
        cov_t, rh, _ = self._whiten(x, t, cond)
        size = x.shape[-1]
        y = torch.linalg.solve(cov_t, rh.unsqueeze(-1)).squeeze(-1)
        quad = (rh.conj() * y).real.sum(dim=(1, 2, 3, 4)) / size**2
        logdet = torch.linalg.slogdet(cov_t)[1].sum()
        dim = x[0].numel()
        return -0.5 * (quad + logdet + dim * math.log(2 * math.pi))


def _per_channel(symbol: torch.Tensor, channels: int) -> torch.Tensor:
    return symbol.unsqueeze(0).expand(channels, *symbol.shape).clone()


def exact_models(spectrum: np.ndarray | torch.Tensor, stats: dict, J: int, wavelet: str, sde: SDE,
                 channels: int) -> list[GaussianEps]:
    """The exact ε-models 0..J of WSGM (J = 0: plain SGM on the normalized field).

    ``stats`` are decompose's per-band {'mean', 'std'} (``low{k}``, ``detail{k}``); model J is
    unconditional on the normalized ``low{J}``, model j < J sees the normalized ``detail{j+1}``
    given the normalized ``low{j+1}`` (``wsgm.train.band_pair``).
    """
    spectrum = torch.as_tensor(np.asarray(spectrum), dtype=torch.float64)
    symbols, p_coarse = scale_symbols(spectrum, J, wavelet)

    def vec(band: str, key: str) -> torch.Tensor:
        return torch.tensor(stats[band][key], dtype=torch.float64)

    models = []
    for j in range(J + 1):
        if j == J:
            mean, std = vec(f"low{J}", "mean"), vec(f"low{J}", "std")
            cov = p_coarse.to(torch.complex128)[None, :, :, None, None] / (std**2).view(-1, 1, 1, 1, 1)
            models.append(GaussianEps(sde, cov, -mean / std))
            continue
        s = symbols[j]
        s_ll, s_dl, s_dd = s[..., 0, 0], s[..., 1:, 0], s[..., 1:, 1:]
        gain = s_dl / s_ll[..., None]  # (M, M, 3)
        schur = s_dd - gain[..., :, None] * s[..., 0, 1:][..., None, :]
        d_mean, d_std = vec(f"detail{j + 1}", "mean"), vec(f"detail{j + 1}", "std")
        l_mean, l_std = vec(f"low{j + 1}", "mean"), vec(f"low{j + 1}", "std")
        d_std_c = d_std.view(3, channels).T  # (C, 3)
        cov = _per_channel(schur, channels) / (d_std_c[:, None, None, :, None] * d_std_c[:, None, None, None, :])
        gain_c = _per_channel(gain, channels) / d_std_c[:, None, None, :]
        models.append(GaussianEps(sde, cov, -d_mean / d_std, gain_c, l_std, l_mean))
    return models


def from_stores(data: Path, store: Path, sde: SDE) -> list[GaussianEps]:
    """Exact models 0..J for a simulated Gaussian dataset store and its decomposed store."""
    from wsgm.data.store import open_group
    from wsgm.decompose import read_stats

    d = open_group(data)
    if "spectrum" not in d:
        raise ValueError(f"{data} holds no 'spectrum' array: exact scores exist only for gaussian datasets")
    attrs = dict(open_group(store).attrs)
    return exact_models(np.asarray(d["spectrum"][:]), read_stats(store), int(attrs["J"]), attrs["wavelet"],
                        sde, int(d.attrs["channels"]))
