"""Network parameterizations (what the net outputs) and their conversion to ε.

x_t = m x_0 + s ε. ``eps``: the net predicts ε; ``score``: it predicts ∇ log p_t = -ε / s;
``x0``: it predicts x_0, so ε = (x_t - m x̂_0) / s. Every sampler consumes ε (``EpsModel``).
"""

from __future__ import annotations

import torch
from torch import nn

from wsgm.sde import SDE

PARAMETERIZATIONS = ("eps", "score", "x0")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def to_eps(kind: str, out: torch.Tensor, x: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """ε implied by the raw network output ``out`` at x_t = ``x`` (m, s: per-sample marginal)."""
    if kind == "eps":
        return out
    if kind == "score":
        return -_bcast(s, out) * out
    if kind == "x0":
        return (x - _bcast(m, x) * out) / _bcast(s, x)
    raise ValueError(f"unknown parameterization {kind!r}; use one of {PARAMETERIZATIONS}")


def native_loss(kind: str, out: torch.Tensor, x0: torch.Tensor, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error in the parameterization's own space.

    eps: |out - z|²; score: s² |out + z/s|² (Song et al.'s λ = s², equal to the ε loss in value);
    x0: |out - x_0|².
    """
    if kind == "eps":
        err = out - z
    elif kind == "score":
        err = _bcast(s, out) * out + z
    elif kind == "x0":
        err = out - x0
    else:
        raise ValueError(f"unknown parameterization {kind!r}; use one of {PARAMETERIZATIONS}")
    return err.pow(2).flatten(1).mean(1)


class EpsModel(nn.Module):
    """Wraps a network of any parameterization so that ``model(x, t, cond)`` returns ε."""

    def __init__(self, net: nn.Module, sde: SDE, kind: str) -> None:
        super().__init__()
        if kind not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {kind!r}; use one of {PARAMETERIZATIONS}")
        self.net, self.sde, self.kind = net, sde, kind

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(x, t, cond)
        if self.kind == "eps":
            return out
        m, s = self.sde.marginal(t.reshape(-1).double().expand(x.shape[0]))
        return to_eps(self.kind, out, x, m.to(x.device), s.to(x.device))
