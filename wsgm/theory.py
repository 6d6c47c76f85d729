"""Exact sampling error of SGM and WSGM on stationary Gaussian fields, without Monte Carlo.

With the exact ε-models of ``wsgm.nets.exact`` every sampler step of ``wsgm.samplers`` (em,
ancestral, pf_ode, heun; ddim, dpmpp_2m, edm in ``wsgm.theory_solvers``) is affine in the state,
x ← A x + B (gain · cond) + γ z, with A and B
functions of the model's covariance symbol only. In the eigenbasis of each model's normalized
covariance symbol (one scalar per frequency for SGM and for the coarsest WSGM model, a 3×3
Hermitian block per coarse frequency for the detail models) all of it is diagonal and the prior is
isotropic, so the sampled law of each eigen-mode is ``k · (g l) + N(0, c)`` with two real scalars
(k, c) per eigenvalue λ, propagated step by step (``propagate``). This is the law the real sampler
draws (tests/test_theory.py checks it against Monte Carlo through ``wsgm.cascade.cascade``).

Reference law (``against``), per mode:
- ``"prior"`` (the default, what "steps needed" measures): the law the *continuous-time* process
  of the same sampler reaches at t = eps when started, like the sampler, from the isotropic prior
  N(0, prior_std²) at t = T. em and ancestral discretize the reverse SDE, pf_ode, heun, ddim
  (η = 0), dpmpp_2m and edm the probability-flow ODE, ddim with η the family
  dx = [f x − (1 + η²)/2 g² ∇log p] dt + η g dW̄ (the solver's ``noise`` level η²); all are linear
  for Gaussian data, so from the prior they map a mode to N(k g l, c) in closed form
  (``_continuous``): with v(t) = m² λ + s² the true marginal variance, the reverse flow multiplies
  deviations by Φ = (v_eps/v_T)(m_T/m_eps) (SDE) or Φ₀ = sqrt(v_eps/v_T) (ODE), Φ₀^(1−η²) Φ^(η²) in
  between, so k = m_eps − Φ m_T and c = v_eps + Φ² (prior_std² − v_T). edm's churn is ignored there
  (its limit depends on the grid): the reference is edm's ODE. The error is then the time
  discretization alone. Why this and not a longer T: the prior's mismatch at T (the "prior floor",
  m_T² λ for the largest λ) does not go away with more steps, so against the forward marginal the
  steps-to-target of SGM on large critical fields measure the approach to that floor (at L = 128,
  VP with T = 1: 1125 steps, where the discretization needs ~190), which is a property of T, not
  of the sampler; a longer T would move the floor but change the process being compared. Both SGM
  and WSGM start from the same prior, so both are measured the same way.
- ``"forward"`` (the old measure, kept for comparison): the forward marginal at t = eps of every
  model's (normalized) target, N(m g l, m² λ + s²) per mode, i.e. the exact law of x_eps; the
  error then includes the prior floor.
Both SGM and WSGM share the same tiny O(s(eps)²) offset to the clean data, which is not counted.

Errors (both exact):
- ``kl``: KL(sampled ‖ reference) per pixel, by the chain rule over scales
  KL(p̂(x_J) ‖ p(x_J)) + Σ_j E_{p̂(x_{j+1})} KL(p̂(x̄_{j+1} | x_{j+1}) ‖ p(x̄_{j+1} | x_{j+1})); the
  conditional mean term needs only the translation-averaged spectrum of the sampled low-pass.
- ``spectrum``: worst relative error over radial frequency shells of the translation-averaged
  power spectrum of the sampled x_0 (the sampled WSGM field is only cyclo-stationary), against the
  reference's. It weighs the few ill-conditioned low frequencies as much as the bulk, where the
  per-pixel KL averages them away.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from wsgm import solvers, theory_solvers, wavelets
from wsgm.metrics.spectrum import radial_average
from wsgm.nets.exact import GaussianEps, exact_models
from wsgm.samplers import time_grid
from wsgm.sde import SDE
from wsgm.symbols import scale_symbols

# the affine samplers (not pc: its step size depends on x; not rk45: adaptive)
SAMPLERS = ("em", "ancestral", "pf_ode", "heun", "ddim", "dpmpp_2m", "edm")


def exact_stats(spectrum: np.ndarray | torch.Tensor, J: int, wavelet: str = "haar") -> dict:
    """Per-band {'mean', 'std'} of one channel, exactly: band variance = mean of its symbol diagonal.

    These are what ``decompose`` estimates from data (mean 0 by symmetry), without sampling noise.
    """
    symbols, p_coarse = scale_symbols(torch.as_tensor(np.asarray(spectrum)), J, wavelet)
    stats = {f"low{J}": {"mean": [0.0], "std": [math.sqrt(float(p_coarse.mean()))]}}
    for j, s in enumerate(symbols, start=1):
        var = torch.diagonal(s, dim1=-2, dim2=-1).real.mean(dim=(0, 1))  # (4,): low, cH, cV, cD
        stats[f"low{j}"] = {"mean": [0.0], "std": [math.sqrt(float(var[0]))]}
        stats[f"detail{j}"] = {"mean": [0.0] * 3, "std": [math.sqrt(float(v)) for v in var[1:]]}
    return stats


def _scalars(sde: SDE, t: float) -> tuple[float, float, float, float]:
    tt = torch.tensor(t, dtype=torch.float64)
    m, s = (float(v) for v in sde.marginal(tt))
    return m, s, float(sde.drift_coef(tt)), float(sde.g2(tt))


def _grid_scalars(sde: SDE, ts: torch.Tensor) -> list[tuple[float, float, float, float]]:
    """``_scalars`` at every time of a grid in one vectorized call (same float64 formulas)."""
    ts = ts.to(torch.float64)
    m, s = sde.marginal(ts)
    f, g2 = sde.drift_coef(ts), sde.g2(ts)
    return list(zip(m.tolist(), s.tolist(), f.expand_as(ts).tolist(), g2.expand_as(ts).tolist()))


def propagate(lam: np.ndarray, sde: SDE, steps: int, sampler: str = "em",
              grid: str = "uniform", options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(k, c) per eigenvalue λ: the sampler draws a mode of variance λ (mean g l) as k g l + N(0, c).

    Mirrors ``wsgm.samplers.sample`` step for step (prior N(0, prior_std²), no final denoising);
    ``options``: the keyword options of ``sample`` (rho, eta, churn, ...), defaults if absent.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"exact propagation supports the affine samplers {SAMPLERS}, not {sampler!r}")
    options = options or {}
    lam, inverse = np.unique(np.asarray(lam, dtype=np.float64), return_inverse=True)  # symmetries
    grid_t = time_grid(sde, steps, grid, options.get("rho", 7.0))
    if sampler in ("ddim", "dpmpp_2m", "edm"):
        k, c = theory_solvers.propagate(lam, sde, grid_t, sampler, options)
        return k[inverse], c[inverse]
    ts = [float(t) for t in grid_t]
    scal = _grid_scalars(sde, grid_t)  # (m, s, f, g2) at every grid time, computed once
    k = np.zeros_like(lam)
    c = np.full_like(lam, sde.prior_std() ** 2)

    def eps_coef(i):  # ε̂ = E x - E m (g l): E per mode, at grid time i
        m, s, f, g2 = scal[i]
        return s / (m**2 * lam + s**2), m, s, f, g2

    for i in range(steps):
        t, t2 = ts[i], ts[i + 1]
        dt, last = t - t2, i == steps - 1
        E, m, s, f, g2 = eps_coef(i)
        if sampler in ("em", "ancestral", "pf_ode"):
            if sampler == "em":
                alpha, beta, gamma2 = 1 - f * dt, -g2 * dt / s, g2 * dt
            elif sampler == "pf_ode":
                alpha, beta, gamma2 = 1 - f * dt, -0.5 * g2 * dt / s, 0.0
            else:
                m2, s2 = scal[i + 1][:2]
                a = m / m2
                b2 = max(s**2 - a**2 * s2**2, 0.0)
                alpha = a * s2**2 / s**2 + m2 * b2 / (s**2 * m)
                beta, gamma2 = -m2 * b2 / (s * m), b2 * s2**2 / s**2
            A, B = alpha + beta * E, -beta * E * m
            gamma2 = 0.0 if last else gamma2
        else:  # heun on the PF ODE: drift d(x, t) = a_t x + b_t (g l)
            E2, m2, s2, f2, g22 = eps_coef(i + 1)
            a1, b1 = f + 0.5 * g2 / s * E, -0.5 * g2 / s * E * m
            a2, b2 = f2 + 0.5 * g22 / s2 * E2, -0.5 * g22 / s2 * E2 * m2
            A = 1 - 0.5 * dt * a1 - 0.5 * dt * a2 * (1 - dt * a1)
            B = -0.5 * dt * b1 + 0.5 * dt**2 * a2 * b1 - 0.5 * dt * b2
            gamma2 = 0.0
        k = A * k + B
        c = A**2 * c + gamma2
    return k[inverse], c[inverse]


AGAINST = ("prior", "forward")  # reference laws (module docstring)
ODE_SAMPLERS = tuple(n for n in SAMPLERS if solvers.REGISTRY[n].noise({}) == 0)  # by default: the PF ODE


def _forward(lam: np.ndarray, sde: SDE) -> tuple[np.ndarray, np.ndarray]:
    """(k, c) of the forward marginal at t = eps (the exact law of x_eps)."""
    m, s, _, _ = _scalars(sde, sde.eps)
    return np.full_like(lam, m), m**2 * lam + s**2


def _continuous(lam: np.ndarray, sde: SDE, sampler: str,
                options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(k, c) at t = eps of the exact reverse SDE (em, ancestral), PF ODE (pf_ode, heun, ...) or
    η-family between them (ddim) started from the sampler's prior N(0, prior_std²) at t = T
    (closed form, module docstring)."""
    lam = np.asarray(lam, dtype=np.float64)
    m0, s0, _, _ = _scalars(sde, sde.eps)
    m1, s1, _, _ = _scalars(sde, sde.T)
    v0, v1 = m0**2 * lam + s0**2, m1**2 * lam + s1**2
    level = solvers.get(sampler).noise(options or {})
    if level == 0:
        phi = np.sqrt(v0 / v1)
    elif level == 1:
        phi = (v0 / v1) * (m1 / m0)
    else:
        phi = np.sqrt(v0 / v1) ** (1 - level) * ((v0 / v1) * (m1 / m0)) ** level
    return m0 - phi * m1, v0 + phi**2 * (sde.prior_std() ** 2 - v1)


def _reference(lam: np.ndarray, sde: SDE, sampler: str = "em", against: str = "prior",
               options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(k, c) of the reference law (``against``: see the module docstring)."""
    if against not in AGAINST:
        raise ValueError(f"reference law must be one of {AGAINST}, not {against!r}")
    return _continuous(lam, sde, sampler, options) if against == "prior" else _forward(lam, sde)


def _kl_modes(k, c, ref_k, ref_c, mean_weight=None) -> float:
    """Σ KL(N(k g l, c) ‖ N(ref_k g l, ref_c)) over modes, E over l folded into ``mean_weight`` = E|g l|²."""
    r = c / ref_c
    kl = 0.5 * (r - 1 - np.log(r))
    if mean_weight is not None:
        kl = kl + 0.5 * mean_weight * (k - ref_k) ** 2 / ref_c
    return float(kl.sum())


@functools.lru_cache(maxsize=32)
def _analysis_filters(size: int, wavelet: str) -> torch.Tensor:
    """(L, L, 4) A_b(ω) = conj(FFT(a_b)) with a_b the fine-grid row of the DWT for band b at coarse 0
    (memoized: a constant per size and wavelet; callers do not modify it)."""
    half = size // 2
    deltas = torch.zeros(4, 4, half, half, dtype=torch.float64)
    deltas[range(4), range(4), 0, 0] = 1.0
    rows = wavelets.idwt2(deltas[:, :1], deltas[:, 1:], wavelet)[:, 0]  # (4, L, L)
    return torch.fft.fft2(rows).conj().permute(1, 2, 0)


def fine_spectrum(s4: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """Translation-averaged spectrum (L, L) of IDWT(low, details) from their (M, M, 4, 4) joint symbol.

    D(ω) = ¼ A(ω)ᴴ S(ω mod M) A(ω); equals P exactly when S is ``level_symbol(P)`` (tested).
    """
    size = 2 * s4.shape[0]
    A = _analysis_filters(size, wavelet)
    S = s4.repeat(2, 2, 1, 1)  # S(ω mod M) on the fine grid
    return 0.25 * torch.einsum("xya,xyab,xyb->xy", A.conj(), S, A).real


def _top_modes(model: GaussianEps) -> np.ndarray:
    if model.channels != 1 or model.bands != 1:
        raise ValueError("exact error analysis is for one-channel fields")
    return model.cov[0, :, :, 0, 0].real.numpy()


def sampled_law(models: list[GaussianEps], stats: dict, sde: SDE, steps, sampler: str = "em",
                grid: str = "uniform", wavelet: str = "haar", reference: bool = False,
                against: str = "prior", options: dict | None = None, cache: dict | None = None) -> dict:
    """Exact KL per pixel (vs the reference law) and the translation-averaged spectrum of the sampled x_0.

    ``models`` from ``exact_models`` (J = len - 1); ``steps``: one count for every scale or a
    per-scale setting (a list for models 0..J, a label "8-8-32" or a ``wsgm.steps.Steps``);
    ``reference`` returns the reference law's own spectrum (KL 0) through the same algebra;
    ``against`` names the reference law (module docstring); ``options``: the sampler's keyword
    options (``propagate``). ``cache`` (a dict the caller keeps for these models, sampler, grid and
    options) memoizes each scale's (k, c) by (scale, steps), its reference law and eigenbasis:
    searches over per-scale steps (``wsgm.allocation``) then propagate each (scale, count) once.
    """
    from wsgm.steps import Steps

    J = len(models) - 1
    per_scale = Steps(steps).per_scale(J)

    def law(j, lam):
        if reference:
            return _reference(lam, sde, sampler, against, options)
        if cache is None:
            return propagate(lam, sde, per_scale[j], sampler, grid, options)
        key = (j, per_scale[j])
        if key not in cache:
            cache[key] = propagate(lam, sde, per_scale[j], sampler, grid, options)
        return cache[key]

    def ref(j, lam):
        if cache is None:
            return _reference(lam, sde, sampler, against, options)
        if ("reference", j) not in cache:
            cache[("reference", j)] = _reference(lam, sde, sampler, against, options)
        return cache[("reference", j)]

    lam = _top_modes(models[J])
    k, c = law(J, lam)
    rk, rc = ref(J, lam)
    kl = _kl_modes(k, c, rk, rc)
    std = stats[f"low{J}"]["std"][0]
    spec = torch.from_numpy(c * std**2)  # un-normalized spectrum of the sampled x_J
    for j in range(J - 1, -1, -1):
        model = models[j]
        if model.channels != 1:
            raise ValueError("exact error analysis is for one-channel fields")
        if cache is not None and ("eigh", j) in cache:
            lam, U = cache[("eigh", j)]
        else:
            lam, U = torch.linalg.eigh(model.cov[0])  # (M, M, 3), (M, M, 3, 3)
            if cache is not None:
                cache[("eigh", j)] = lam, U
        l_std = float(model.cond_scale[0])
        g = torch.einsum("xyba,xyb->xya", U.conj(), model.gain[0] * l_std)  # g̃ = Uᴴ G (normalized cond)
        s_ll = spec / l_std**2  # translation-averaged spectrum of the normalized cond
        k, c = law(j, lam.numpy())
        rk, rc = ref(j, lam.numpy())
        weight = (s_ll[..., None] * g.abs() ** 2).numpy()
        kl += _kl_modes(k, c, rk, rc, weight)
        # joint symbol of (low, details), un-normalized, then the next finer spectrum
        d_std = torch.tensor(stats[f"detail{j + 1}"]["std"], dtype=torch.float64)
        kt, ct = torch.from_numpy(k), torch.from_numpy(c)
        U_un = d_std[:, None] * U  # diag(d_std) U
        gain = torch.einsum("xyab,xyb->xya", U_un, (kt * g)) / l_std  # un-normalized l → d
        cond_cov = torch.einsum("xyab,xyb,xycb->xyac", U_un, ct.to(U.dtype), U_un.conj())
        s_l = spec.to(U.dtype)
        s4 = torch.empty(*spec.shape, 4, 4, dtype=U.dtype)
        s4[..., 0, 0] = s_l
        s4[..., 1:, 0] = gain * s_l[..., None]
        s4[..., 0, 1:] = gain.conj() * s_l[..., None]
        s4[..., 1:, 1:] = s_l[..., None, None] * gain[..., :, None] * gain.conj()[..., None, :] + cond_cov
        spec = fine_spectrum(s4, wavelet)
    return {"kl": kl / spec.numel(), "spectrum": spec.numpy()}


def spectrum_error(spectrum: np.ndarray, reference: np.ndarray) -> float:
    """Worst relative error over radial shells of a spectrum against the reference's."""
    ratio = radial_average(spectrum) / radial_average(reference)
    return float(np.max(np.abs(ratio - 1)))


def errors(models: list[GaussianEps], stats: dict, sde: SDE, steps, sampler: str = "em",
           grid: str = "uniform", wavelet: str = "haar", against: str = "prior",
           options: dict | None = None) -> dict[str, float]:
    """{'kl': per-pixel KL, 'spectrum': worst relative shell error} of the sampled law vs the
    reference law ``against`` (module docstring); ``steps``: one count or per-scale steps
    (``sampled_law``); ``options``: the sampler's (``propagate``)."""
    got = sampled_law(models, stats, sde, steps, sampler, grid, wavelet, against=against, options=options)
    ref = sampled_law(models, stats, sde, steps, sampler, grid, wavelet, reference=True, against=against,
                      options=options)
    return {"kl": got["kl"], "spectrum": spectrum_error(got["spectrum"], ref["spectrum"])}


def field_models(size: int, xi: float, eta: float, J: int, sde: SDE, wavelet: str = "haar"):
    """(models 0..J, exact stats) for the normalized power-law field of ``wsgm.data.gaussian``."""
    from wsgm.data.gaussian import power_spectrum

    spectrum = power_spectrum(size, xi, eta)
    stats = exact_stats(spectrum, J, wavelet)
    return exact_models(spectrum, stats, J, wavelet, sde, 1), stats


def steps_to_target(steps: list[int], errs: list[float], target: float) -> float | None:
    """Steps at which the error first reaches ``target``, interpolated linearly on log–log axes.

    ``steps[0]`` if already below at the first count, None if never reached within ``steps``.
    """
    for i, (n, e) in enumerate(zip(steps, errs)):
        if e <= target:
            if i == 0:
                return float(n)
            n0, e0 = steps[i - 1], errs[i - 1]
            if e == e0:
                return float(n)
            frac = (math.log(target) - math.log(e0)) / (math.log(e) - math.log(e0))
            return float(math.exp(math.log(n0) + frac * (math.log(n) - math.log(n0))))
    return None
