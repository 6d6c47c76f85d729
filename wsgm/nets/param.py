"""Network parameterizations (what the net outputs, what it is fed) and their conversion to ε.

x_t = m x_0 + s ε. ``eps``: the net predicts ε; ``score``: it predicts ∇ log p_t = -ε / s;
``x0``: it predicts x_0, so ε = (x_t - m x̂_0) / s. Every sampler consumes ε (``EpsModel``).

``edm`` is Karras et al. 2022's preconditioning (EDM, table 1), written in the scaled variable
x̃ = x_t / m = x_0 + σ z of noise level σ = s / m (every process here, VP, VE, OU and Gao's, has
this form): with σ_d the data's standard deviation,

    c_in = 1 / √(σ² + σ_d²),   c_skip = σ_d² / (σ² + σ_d²),   c_out = σ σ_d / √(σ² + σ_d²),
    c_noise = ¼ ln σ,          D(x̃) = c_skip x̃ + c_out F(c_in x̃, c_noise).

The U-Net is fed c_in x̃ = x_t / √(s² + m² σ_d²) and, in place of its time input t, c_noise(σ)
(its embedding then reads sin/cos(1000 c_noise ω_k), :func:`wsgm.nets.unet.timestep_embedding`).
Its output F is the EDM network output; D estimates x_0, so ε̂ = (x̃ - D) / σ = (x_t - m D) / s,
computed without cancellation as ε̂ = (σ x̃ - σ_d √(σ² + σ_d²) F) / (σ² + σ_d²). Its native loss is
|F - F*|² with F* = (x_0 - c_skip x̃) / c_out = (σ x_0 - σ_d² z) / (σ_d √(σ² + σ_d²)), which equals
EDM's λ(σ) |D - x_0|², λ = (σ² + σ_d²) / (σ σ_d)² = 1 / c_out². σ_d = 1 for the pipeline's bands,
which ``wsgm decompose`` normalizes to unit variance per channel (``net.sigma_data``).
"""

from __future__ import annotations

import torch
from torch import nn

from wsgm.sde import SDE

PARAMETERIZATIONS = ("eps", "score", "x0", "edm")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def _check(kind: str) -> None:
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {kind!r}; use one of {PARAMETERIZATIONS}")


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = 1.0) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) of Karras et al. 2022 at noise level(s) ``sigma``."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), 0.25 * torch.log(sigma)


def edm_weight(sigma: torch.Tensor, sigma_data: float = 1.0) -> torch.Tensor:
    """EDM's loss weighting λ(σ) = (σ² + σ_d²) / (σ σ_d)² of |D - x_0|² (= 1 / c_out²)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def net_input(kind: str, x: torch.Tensor, t: torch.Tensor, m: torch.Tensor, s: torch.Tensor,
              sigma_data: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """What the network is fed at x_t = ``x``, time ``t`` (per-sample m, s): (x, t) itself, or for
    ``edm`` (c_in x / m, c_noise(s / m))."""
    _check(kind)
    if kind != "edm":
        return x, t
    sigma = s / m
    _, _, c_in, c_noise = edm_coefficients(sigma, sigma_data)
    return x * _bcast(c_in / m, x), c_noise.to(t.dtype)


def to_eps(kind: str, out: torch.Tensor, x: torch.Tensor, m: torch.Tensor, s: torch.Tensor,
           sigma_data: float = 1.0) -> torch.Tensor:
    """ε implied by the raw network output ``out`` at x_t = ``x`` (m, s: per-sample marginal)."""
    _check(kind)
    if kind == "eps":
        return out
    if kind == "score":
        return -_bcast(s, out) * out
    if kind == "x0":
        return (x - _bcast(m, x) * out) / _bcast(s, x)
    sigma = s / m  # edm: ε = (x̃ - D)/σ = (σ x̃ - σ_d √(σ² + σ_d²) F) / (σ² + σ_d²), x̃ = x / m
    total = sigma**2 + sigma_data**2
    return (x * _bcast(sigma / m, x) - out * _bcast(sigma_data * total.sqrt(), out)) / _bcast(total, x)


def native_loss(kind: str, out: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, s: torch.Tensor,
                m: torch.Tensor | None = None, sigma_data: float = 1.0) -> torch.Tensor:
    """Per-sample mean squared error in the parameterization's own space.

    eps: |out - z|²; score: s² |out + z/s|² (Song et al.'s λ = s², equal to the ε loss in value);
    x0: |out - x_0|²; edm (needs ``m``): |out - F*|², F* = (σ x_0 - σ_d² z) / (σ_d √(σ² + σ_d²)),
    which is EDM's λ(σ) |D - x_0|².
    """
    _check(kind)
    if kind == "eps":
        err = out - z
    elif kind == "score":
        err = _bcast(s, out) * out + z
    elif kind == "x0":
        err = out - x0
    else:
        if m is None:
            raise ValueError("the edm loss needs the marginal mean m")
        sigma = s / m
        scale = sigma_data * (sigma**2 + sigma_data**2).sqrt()
        err = out - (x0 * _bcast(sigma / scale, x0) - z * _bcast(sigma_data**2 / scale, z))
    return err.pow(2).flatten(1).mean(1)


class EpsModel(nn.Module):
    """Wraps a network of any parameterization so that ``model(x, t, cond)`` returns ε."""

    def __init__(self, net: nn.Module, sde: SDE, kind: str, sigma_data: float = 1.0) -> None:
        super().__init__()
        _check(kind)
        self.net, self.sde, self.kind, self.sigma_data = net, sde, kind, float(sigma_data)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "eps":
            return self.net(x, t, cond)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        m, s = (v.to(x.device, x.dtype) for v in self.sde.marginal(t.double()))
        out = self.net(*net_input(self.kind, x, t, m, s, self.sigma_data), cond)
        return to_eps(self.kind, out, x, m, s, self.sigma_data)
