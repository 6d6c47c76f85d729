import math

import pytest
import torch

from wsgm import sde as sde_lib
from wsgm.samplers import sample, time_grid


def exact_eps(sde, sigma):
    """Epsilon-predictor of N(0, sigma²) data: eps = s(t) x / (m² sigma² + s²)."""
    def fn(x, t):
        m, s = sde.marginal(t.double())
        shape = (-1,) + (1,) * (x.dim() - 1)
        m, s = m.view(shape), s.view(shape)
        return (s * x / (m**2 * sigma**2 + s**2)).to(x.dtype)
    return fn


SIGMA = 0.3  # data std: a non-stationary (for VP/VE) Gaussian, so no sampler is exact by accident


def _process(name):
    return sde_lib.build({"name": name, "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0,
                          "sigma_min": 0.01, "sigma_max": 50.0})


def _var_at(sde, t):
    m, s = sde.marginal(torch.tensor(t, dtype=torch.float64))
    return float(m**2 * SIGMA**2 + s**2)


def deterministic_error(sde, sampler, steps, **kw):
    """Exact relative variance error of a linear (ODE) sampler: push x_T = 1 through it.

    The exact flow maps a N(0, v) prior to N(0, v var_eps / var_T); the sampler maps it to
    N(0, v A²), A = its output for x_T = 1.
    """
    info = {}
    a = sample(exact_eps(sde, SIGMA), sde, (1,), steps, sampler, x_init=torch.ones(1, dtype=torch.float64),
               info=info, **kw)
    return abs(float(a[0]) ** 2 * _var_at(sde, sde.T) / _var_at(sde, sde.eps) - 1), info["nfe"]


def stochastic_error(sde, sampler, steps, n=200000, **kw):
    gen = torch.Generator().manual_seed(0)
    x = sample(exact_eps(sde, SIGMA), sde, (n,), steps, sampler, generator=gen, **kw)
    return abs(float(x.double().var()) / _var_at(sde, sde.eps) - 1)




@pytest.mark.parametrize("sampler,process,order,tol", [
    ("pf_ode", "vp", 1.0, 0.15), ("pf_ode", "ve", 1.0, 0.3), ("heun", "vp", 2.0, 0.2), ("heun", "ve", 2.0, 0.3)])
def test_ode_samplers_converge_at_their_order(sampler, process, order, tol):
    sde = _process(process)
    errors = [deterministic_error(sde, sampler, n)[0] for n in (64, 128, 256)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    print(sampler, process, errors, orders)
    assert abs(orders[-1] - order) < tol * order


@pytest.mark.slow
@pytest.mark.parametrize("sampler,process,kw", [
    ("em", "vp", {}), ("ancestral", "ve", {}), ("pc", "vp", {"snr": 0.05}), ("pc", "ve", {"snr": 0.05})])
def test_stochastic_samplers_converge(sampler, process, kw):
    sde = _process(process)
    errors = [stochastic_error(sde, sampler, n, **kw) for n in (16, 32, 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    print(sampler, process, errors, orders)
    assert errors[-1] < 0.15
    assert min(orders) > 0.75  # at least first order (MC noise of the variance: 0.3%)


def test_rk45_error_falls_with_tolerance_and_reports_nfe():
    sde = _process("vp")
    runs = [deterministic_error(sde, "rk45", 0, rtol=tol, atol=tol) for tol in (1e-3, 1e-5, 1e-7)]
    print(runs)
    assert runs[0][0] > runs[1][0] > runs[2][0] and runs[2][0] < 1e-5
    assert runs[0][1] < runs[1][1] < runs[2][1]


def test_nfe_counts_every_evaluation():
    sde = _process("vp")
    calls = []

    def counting(x, t):
        calls.append(1)
        return exact_eps(sde, SIGMA)(x, t)

    for sampler, steps, kw, expected in [("em", 10, {}, 10), ("heun", 10, {}, 20), ("ancestral", 7, {}, 7),
                                         ("pc", 5, {"corrector_steps": 2}, 15), ("em", 4, {"denoise": True}, 5)]:
        calls.clear()
        info = {}
        sample(counting, sde, (4, 1), steps, sampler, info=info, generator=torch.Generator().manual_seed(0), **kw)
        assert info["nfe"] == len(calls) == expected, sampler


def test_denoise_returns_the_posterior_mean():
    """With x_t fixed at t = eps, the last Tweedie step gives E[x_0 | x_eps] = k x_eps."""
    sde = _process("vp")
    x = sample(exact_eps(sde, SIGMA), sde, (50000,), 200, "em", generator=torch.Generator().manual_seed(1),
               denoise=True)
    m, s = sde.marginal(torch.tensor(sde.eps, dtype=torch.float64))
    v = float(m**2 * SIGMA**2 + s**2)
    expected = (float(m) * SIGMA**2 / v) ** 2 * v  # var of k x_eps, k = m sigma² / v
    assert float(x.double().var()) == pytest.approx(expected, rel=0.03)


def test_grids():
    sde = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    for kind in ("uniform", "quadratic"):
        g = time_grid(sde, 10, kind)
        assert len(g) == 11 and float(g[0]) == pytest.approx(1.0) and float(g[-1]) == pytest.approx(1e-3)
        assert torch.all(g[1:] < g[:-1])
    q = time_grid(sde, 10, "quadratic")
    assert q[-2] - q[-1] < time_grid(sde, 10, "uniform")[-2] - 1e-3


def test_sampling_is_deterministic():
    sde = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    eps = exact_eps(sde, 1.0)
    a = sample(eps, sde, (8, 1, 4, 4), 5, generator=torch.Generator().manual_seed(3))
    b = sample(eps, sde, (8, 1, 4, 4), 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_sampling_spec_keeps_only_the_chosen_samplers_keys():
    from wsgm.samplers import options, relevant

    cfg = {"sampler": "em", "time_grid": "uniform", "snr": 0.1, "corrector_steps": 2, "rtol": 1e-4,
           "denoise": True, "n_samples": 4, "batch_size": 4}
    assert set(relevant(cfg)) == {"sampler", "time_grid", "denoise", "n_samples", "batch_size"}
    assert {"snr", "corrector_steps"} <= set(relevant({**cfg, "sampler": "pc"}))
    assert options({**cfg, "sampler": "rk45"}) == {"snr": 0.1, "corrector_steps": 2, "denoise": True,
                                                   "rtol": 1e-4, "atol": 1e-4}
