"""Exact per-mode propagation of the λ-solvers (ddim, dpmpp_2m, edm) for ``wsgm.theory``.

With the exact ε-model a mode of variance λ (mean g l) has ε̂(x, t) = E x - E m (g l),
E = s/(m² λ + s²), and x̂_0 = P x + Q (g l) with P = (1 - s E)/m, Q = s E. Each function mirrors
its solver in ``wsgm.solvers`` step for step and returns (k, c): the sampled law k (g l) + N(0, c)
from the prior N(0, p2). ``ms`` holds (m, s) at every grid time (float64, the solvers' values).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wsgm.sde import SDE
from wsgm.solvers.edm import churned
from wsgm.solvers.exponential import ddim_variance


def _denoiser(lam: np.ndarray, m: float, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E, P, Q): ε̂ = E x - E m gl, x̂_0 = P x + Q gl."""
    E = s / (m**2 * lam + s**2)
    return E, (1 - s * E) / m, s * E


def ddim(lam, ms, p2, opts):
    eta = float(opts.get("eta", 0.0))
    k, c = np.zeros_like(lam), np.full_like(lam, p2)
    n = len(ms) - 1
    for i in range(n):
        (m, s), (m2, s2) = ms[i], ms[i + 1]
        E, P, Q = _denoiser(lam, m, s)
        var = ddim_variance(m, s, m2, s2, eta)
        c1 = math.sqrt(s2**2 - var)
        A, B = m2 * P + c1 * E, m2 * Q - c1 * E * m
        k, c = A * k + B, A**2 * c + (var if i < n - 1 else 0.0)
    return k, c


def dpmpp_2m(lam, ms, p2, opts):
    """Deterministic: x = a x_T + k gl, so c = a² p2; the previous x̂_0 is tracked the same way."""
    a, k = np.ones_like(lam), np.zeros_like(lam)
    prev = h_prev = None
    for i in range(len(ms) - 1):
        (m, s), (m2, s2) = ms[i], ms[i + 1]
        h = (math.log(m2) - math.log(s2)) - (math.log(m) - math.log(s))
        _, P, Q = _denoiser(lam, m, s)
        x0 = (P * a, P * k + Q)
        if prev is None:
            d = x0
        else:
            w = 0.5 * h / h_prev
            d = tuple((1 + w) * u - w * v for u, v in zip(x0, prev))
        e = m2 * math.expm1(-h)
        a, k = (s2 / s) * a - e * d[0], (s2 / s) * k - e * d[1]
        prev, h_prev = x0, h
    return k, a**2 * p2


def edm(lam, ms, p2, opts, sde: SDE, ts: list[float]):
    """In y = x/m: y' = A ŷ + (1 - A) gl after the churn ŷ = y + δ z."""
    sig = [s / m for m, s in ms]
    s_noise = float(opts.get("churn_noise", 1.0))
    n = len(ms) - 1
    k, c = np.zeros_like(lam), np.full_like(lam, p2 / ms[0][0] ** 2)
    for i in range(n):
        t_hat, m_hat, s_hat = churned(sde, ts[i], sig[i], sig[0], n, opts)
        sig_hat = s_hat / m_hat
        if t_hat != ts[i]:
            c = c + max(sig_hat**2 - sig[i] ** 2, 0.0) * s_noise**2
        m2, s2 = ms[i + 1]
        step = sig[i + 1] - sig_hat
        a1 = _denoiser(lam, m_hat, s_hat)[0] * m_hat  # d = a1 (y - gl)
        a2 = _denoiser(lam, m2, s2)[0] * m2
        A = 1 + 0.5 * step * (a1 + a2 * (1 + step * a1))
        k, c = A * k + (1 - A), A**2 * c
    m_end = ms[-1][0]
    return m_end * k, m_end**2 * c


def propagate(lam: np.ndarray, sde: SDE, grid_t: torch.Tensor, sampler: str, opts: dict):
    ms = list(zip(*(v.tolist() for v in sde.marginal(grid_t.to(torch.float64)))))
    p2 = sde.prior_std() ** 2
    if sampler == "edm":
        return edm(lam, ms, p2, opts, sde, grid_t.tolist())
    return {"ddim": ddim, "dpmpp_2m": dpmpp_2m}[sampler](lam, ms, p2, opts)
