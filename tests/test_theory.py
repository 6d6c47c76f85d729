"""Exact sampler-law propagation (wsgm.theory) against Monte Carlo through the real cascade."""

import math

import numpy as np
import pytest
import torch

from wsgm import sde as sde_lib
from wsgm import theory
from wsgm.cascade import cascade
from wsgm.data.gaussian import power_spectrum
from wsgm.symbols import level_symbol

VP = {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_fine_spectrum_of_the_true_joint_symbol_is_the_field_spectrum(wavelet):
    p = torch.tensor(power_spectrum(16, 16.0, 2.0))
    assert torch.allclose(theory.fine_spectrum(level_symbol(p, wavelet), wavelet), p, atol=1e-12)


def test_exact_stats_match_the_decomposition_of_samples():
    from wsgm import wavelets
    from wsgm.data.gaussian import sample

    spectrum = power_spectrum(16, 16.0, 2.0)
    stats = theory.exact_stats(spectrum, 2)
    x = torch.from_numpy(sample(spectrum, 4000, 1, np.random.default_rng(0))).double()
    low, details = wavelets.wavedec2(x, "haar", 2)
    assert np.allclose(stats["low2"]["std"], low.std(dim=(0, 2, 3)).numpy(), rtol=0.05)
    for j, d in enumerate(details, start=1):
        assert np.allclose(stats[f"detail{j}"]["std"], d.std(dim=(0, 2, 3)).numpy(), rtol=0.05)


@pytest.mark.parametrize("J,sampler", [(0, "em"), (1, "em"), (2, "ancestral"), (1, "heun")])
def test_propagated_spectrum_matches_monte_carlo_of_the_real_cascade(J, sampler):
    size, steps, n = 8, 3, 6000  # few steps: the sampled law is far from the truth
    sde = sde_lib.build(VP)
    models, stats = theory.field_models(size, 8.0, 2.0, J, sde)
    spec = {"J": J, "wavelet": "haar", "sde": VP, "steps": steps, "shape": [n, 1, size, size],
            "sampling": {"sampler": sampler, "time_grid": "uniform"}}
    gen = torch.Generator().manual_seed(1)
    x = cascade(models, stats, spec, n, gen, torch.device("cpu"))[0].double()
    empirical = (torch.fft.fft2(x[:, 0]).abs() ** 2).mean(0).numpy() / size**2
    predicted = theory.sampled_law(models, stats, sde, steps, sampler)["spectrum"]
    reference = theory.sampled_law(models, stats, sde, steps, sampler, reference=True)["spectrum"]
    tol = 5 * math.sqrt(2 / n)  # 5 sigma of a chi-square power estimate
    assert np.max(np.abs(empirical / predicted - 1)) < tol
    assert np.max(np.abs(reference / predicted - 1)) > 3 * tol  # and the test can tell them apart


@pytest.mark.parametrize("J", [0, 2])
def test_errors_decrease_with_steps_towards_zero(J):
    sde = sde_lib.build(VP)
    models, stats = theory.field_models(16, 16.0, 2.0, J, sde)
    errs = [theory.errors(models, stats, sde, n) for n in (4, 16, 64, 256)]
    for key in ("kl", "spectrum"):
        vals = [e[key] for e in errs]
        assert all(b < a for a, b in zip(vals, vals[1:])), (key, vals)
    assert errs[-1]["kl"] < 1e-4 and errs[-1]["spectrum"] < 0.05


@pytest.mark.parametrize("sampler", ["em", "pf_ode"])
def test_continuous_reference_is_the_limit_of_the_sampler_from_the_prior(sampler):
    """The closed-form reference law is where the sampler converges with many steps, which is not
    the forward marginal at eps for large modes (the prior floor), but is for small ones."""
    sde = sde_lib.build(VP)
    lam = np.array([1e-3, 0.1, 1.0, 30.0, 1e5])
    k, c = theory.propagate(lam, sde, 8192, sampler)
    rk, rc = theory._reference(lam, sde, sampler, "prior")
    assert np.allclose(c, rc, rtol=1e-2) and np.allclose(k, rk, atol=1e-2)
    fk, fc = theory._reference(lam, sde, sampler, "forward")
    assert abs(rc[-1] / fc[-1] - 1) > 0.2  # λ m_T² ≫ 1: the prior misses the mode's variance
    assert abs(rc[0] / fc[0] - 1) < 1e-3  # λ m_T² ≪ 1: the prior is right
    sde_dict, ode_dict = (theory._reference(lam, sde, s) for s in ("em", "pf_ode"))
    assert not np.allclose(sde_dict[1], ode_dict[1])  # SDE and ODE leave different limits


def test_sgm_steps_count_discretization_not_the_prior_floor():
    """At L = 64 (critical, VP, T = 1, em) SGM reaches the target against the continuous law from
    the prior in fewer steps than against the forward marginal, whose floor it approaches slowly."""
    sde = sde_lib.build(VP)
    models, stats = theory.field_models(64, 64.0, 2.0, 0, sde)
    steps = [64, 128, 256]
    prior = [theory.errors(models, stats, sde, n)["spectrum"] for n in steps]
    forward = [theory.errors(models, stats, sde, n, against="forward")["spectrum"] for n in steps]
    assert theory.steps_to_target(steps, prior, 0.1) == pytest.approx(139, rel=0.02)
    assert theory.steps_to_target(steps, forward, 0.1) == pytest.approx(154, rel=0.02)
    with pytest.raises(ValueError, match="reference law"):
        theory.errors(models, stats, sde, 4, against="data")


def test_wsgm_needs_fewer_steps_than_sgm_on_a_critical_field():
    sde = sde_lib.build(VP)
    kl = {J: [theory.errors(*theory.field_models(32, 32.0, 2.0, J, sde), sde, n)["spectrum"] for n in (8, 32)]
          for J in (0, 3)}
    assert kl[3][0] < kl[0][0] and kl[3][1] < kl[0][1]


def test_steps_to_target_interpolates_log_log():
    steps = [4, 8, 16, 32, 64]
    errs = [3.0 * n**-1.5 for n in steps]  # a power law: log-log interpolation is exact
    target = 3.0 * 20**-1.5
    assert theory.steps_to_target(steps, errs, target) == pytest.approx(20.0, rel=1e-12)
    assert theory.steps_to_target(steps, errs, 10.0) == 4.0
    assert theory.steps_to_target(steps, errs, 1e-9) is None



SIZE = 8


def _moment(x: torch.Tensor) -> np.ndarray:
    x = x.double().reshape(x.shape[0], -1)
    return (x.T @ x / x.shape[0]).numpy()  # both laws have mean zero exactly


def _reference_draw(models, stats, sde, n, seed):
    """The reference law built without any sampler: x_1 = m x_1' + s z at t = eps (normalized), then
    details = m (E[d | x_1] + r) + s z with r = d' - E[d' | l'] the residual of an independent true field."""
    from wsgm import wavelets
    from wsgm.data.gaussian import sample

    rng = np.random.default_rng(seed)
    spectrum = power_spectrum(SIZE, SIZE, 2.0)
    m, s = (float(v) for v in sde.marginal(torch.tensor(sde.eps, dtype=torch.float64)))
    low_std, d_std = stats["low1"]["std"][0], torch.tensor(stats["detail1"]["std"]).view(1, 3, 1, 1)
    fields = [torch.from_numpy(sample(spectrum, n, 1, rng)).double() for _ in range(2)]
    low_a, _ = wavelets.dwt2(fields[0], "haar")
    low_b, det_b = wavelets.dwt2(fields[1], "haar")
    x1 = m * low_a / low_std + s * torch.from_numpy(rng.standard_normal(low_a.shape))
    resid = det_b / d_std - models[0].mean(n, low_b / low_std)
    det = m * (models[0].mean(n, x1) + resid) + s * torch.from_numpy(rng.standard_normal(det_b.shape))
    return wavelets.idwt2(x1 * low_std, det * d_std, "haar")


VE = {"name": "ve", "T": 1.0, "eps": 1e-3, "sigma_min": 0.01, "sigma_max": 50.0}


# VP/em: the conditional-covariance terms dominate; VE/pf_ode at 2 steps: about half of the KL is
# the conditional-mean term (sampled gain of the details on the low-pass far from the reference's).
@pytest.mark.slow
@pytest.mark.parametrize("cfg,sampler,steps", [(VP, "em", 6), (VE, "pf_ode", 2)])
def test_chain_rule_kl_matches_the_dense_kl_of_monte_carlo_covariances(cfg, sampler, steps):
    sde = sde_lib.build(cfg)
    models, stats = theory.field_models(SIZE, SIZE, 2.0, 1, sde)
    assert float(models[0].gain.abs().max()) > 0.1  # the conditional-mean term is exercised
    n = 8000
    spec = {"J": 1, "wavelet": "haar", "sde": cfg, "steps": steps, "shape": [n, 1, SIZE, SIZE],
            "sampling": {"sampler": sampler, "time_grid": "uniform"}}
    p = _moment(cascade(models, stats, spec, n, torch.Generator().manual_seed(0), torch.device("cpu"))[0])
    q = _moment(_reference_draw(models, stats, sde, 100000, 1))
    d = p.shape[0]
    dense = 0.5 * (np.trace(np.linalg.solve(q, p)) - d + np.linalg.slogdet(q)[1] - np.linalg.slogdet(p)[1]) / d
    exact = theory.sampled_law(models, stats, sde, steps, sampler)["kl"]
    assert exact > 0.1  # far from the reference: the test can see a wrong term
    assert exact == pytest.approx(dense, rel=0.05)


@pytest.mark.parametrize("J,sampler,grid,opts", [
    (1, "ddim", "uniform", {}), (1, "ddim", "logsnr", {"eta": 0.5}), (2, "dpmpp_2m", "logsnr", {}),
    (0, "edm", "karras", {}), (1, "edm", "karras", {"churn": 10.0})])
def test_propagated_spectrum_of_the_lambda_solvers_matches_monte_carlo(J, sampler, grid, opts):
    """As for em above, through the real cascade and the sampling config's solver options."""
    size, steps, n = 8, 3, 6000
    sde = sde_lib.build(VP)
    models, stats = theory.field_models(size, 8.0, 2.0, J, sde)
    spec = {"J": J, "wavelet": "haar", "sde": VP, "steps": steps, "shape": [n, 1, size, size],
            "sampling": {"sampler": sampler, "time_grid": grid, **opts}}
    x = cascade(models, stats, spec, n, torch.Generator().manual_seed(1), torch.device("cpu"))[0].double()
    empirical = (torch.fft.fft2(x[:, 0]).abs() ** 2).mean(0).numpy() / size**2
    predicted = theory.sampled_law(models, stats, sde, steps, sampler, grid, options=opts)["spectrum"]
    reference = theory.sampled_law(models, stats, sde, steps, sampler, grid, reference=True, options=opts)["spectrum"]
    tol = 5 * math.sqrt(2 / n)
    assert np.max(np.abs(empirical / predicted - 1)) < tol
    assert np.max(np.abs(reference / predicted - 1)) > 3 * tol


@pytest.mark.parametrize("J", [0, 2])
@pytest.mark.parametrize("sampler,grid,opts,order", [
    ("ddim", "logsnr", {}, 1.0), ("ddim", "uniform", {}, 1.0), ("ddim", "logsnr", {"eta": 0.5}, 1.0),
    ("dpmpp_2m", "logsnr", {}, 2.0), ("edm", "karras", {}, 2.0), ("edm", "uniform", {}, 2.0)])
def test_exact_spectral_error_falls_at_the_solvers_order(J, sampler, grid, opts, order):
    """Exact error against the continuous law from the same prior: log-log slope over 32..128 steps."""
    sde = sde_lib.build(VP)
    models, stats = theory.field_models(16, 16.0, 2.0, J, sde)
    steps = [32, 64, 128]
    errs = [theory.errors(models, stats, sde, n, sampler, grid, options=opts)["spectrum"] for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    print(sampler, grid, opts, errs, slope)
    assert abs(slope - order) < 0.3


@pytest.mark.parametrize("sampler,opts", [("ddim", {}), ("ddim", {"eta": 0.5}), ("dpmpp_2m", {}), ("edm", {})])
def test_lambda_solvers_converge_to_their_continuous_reference(sampler, opts):
    """ddim (η = 0), dpmpp_2m and edm to the probability-flow law from the prior, ddim with η to
    the η-family's: the closed-form reference is the many-step limit."""
    sde = sde_lib.build(VP)
    lam = np.array([1e-3, 0.1, 1.0, 30.0, 1e5])
    k, c = theory.propagate(lam, sde, 4096, sampler, "logsnr", opts)
    rk, rc = theory._reference(lam, sde, sampler, "prior", opts)
    assert np.allclose(c, rc, rtol=2e-3) and np.allclose(k, rk, atol=2e-3)
    if sampler == "ddim" and not opts:  # the PF ODE's law: heun's
        hk, hc = theory.propagate(lam, sde, 1024, "heun")
        assert np.allclose(c, hc, rtol=5e-3) and np.allclose(k, hk, atol=5e-3)
