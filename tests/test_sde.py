import dataclasses
import math

import pytest
import torch

from wsgm import sde as sde_lib

PROCESSES = {
    "vp": sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3),
    "subvp": sde_lib.SubVP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3),
    "ve": sde_lib.VE(sigma_min=0.01, sigma_max=50.0, T=1.0, eps=1e-3),
    "ou": sde_lib.OU(beta=2.0, T=5.0, eps=1e-3),
    "vp_exp": sde_lib.VPExp(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3),
    "vp_power": sde_lib.VPPower(beta_a=4.4, beta_b=0.3, rho=2.0, T=1.0, eps=1e-3),
    "ve_linear": sde_lib.VELinear(sigma_max=50.0, T=1.0, eps=1e-3),
    "ve_quadratic": sde_lib.VEQuadratic(sigma_max=50.0, T=1.0, eps=1e-3),
    "ve_power": sde_lib.VEPower(sigma_min=0.01, sigma_max=50.0, rho=7.0, T=1.0, eps=1e-3),
}


# every process again with another T (the schedules are functions of t/T; ou's T is its horizon)
ALL = {**PROCESSES, **{f"{name}, T={T}": dataclasses.replace(sde, T=T)
                       for T in (2.0, 0.5) for name, sde in PROCESSES.items()}}


def test_registry_is_covered():
    assert set(PROCESSES) == set(sde_lib.REGISTRY)


@pytest.mark.parametrize("name", PROCESSES)
def test_the_schema_is_the_one_source_of_process_defaults(name):
    """Processes have no defaults of their own: build() needs every key, and the schema's
    defaults (what the config fills in, and what the paper bench uses) provide them."""
    from wsgm.config import defaults

    cls, keys = sde_lib.REGISTRY[name]
    with pytest.raises(TypeError):
        cls()
    sde = sde_lib.build({**defaults("sde"), "name": name})
    assert all(getattr(sde, k) == defaults("sde")[k] for k in ("T", "eps", *keys))
    for name, sde in PROCESSES.items():
        assert isinstance(sde, sde_lib.REGISTRY[name][0])


@pytest.mark.parametrize("name", ALL)
def test_marginal_variance_is_the_integral_of_the_coefficients(name):
    """s(t)² = ∫_0^t exp(2(log m(t) - log m(u))) g(u)² du, evaluated by quadrature."""
    sde = ALL[name]
    u = torch.linspace(0, sde.T, 200001, dtype=torch.float64)
    integrand = torch.exp(-2 * sde.log_mean(u)) * sde.g2(u)
    assert torch.isfinite(integrand).all()
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64),
                            torch.cumsum((integrand[1:] + integrand[:-1]) / 2 * (u[1] - u[0]), 0)])
    for idx in (2000, 50000, 200000):
        t = u[idx]
        expected = torch.exp(2 * sde.log_mean(t)) * cumulative[idx]
        assert torch.allclose(sde.var(t), expected, rtol=1e-5, atol=1e-9), (name, float(t))


@pytest.mark.parametrize("name", ALL)
def test_marginal_variance_solves_the_moment_ode(name):
    """d var/dt = 2 f(t) var + g(t)², var(0) = 0, solved by RK45 from the SDE's own f and g."""
    from scipy.integrate import solve_ivp

    sde = ALL[name]

    def rhs(t, v):
        tt = torch.tensor(t, dtype=torch.float64)
        return [float(2 * sde.drift_coef(tt) * v[0] + sde.sde(torch.ones(1, dtype=torch.float64), tt)[1] ** 2)]

    ts = [0.01 * sde.T, 0.3 * sde.T, sde.T]
    sol = solve_ivp(rhs, (0.0, sde.T), [0.0], t_eval=ts, rtol=1e-10, atol=1e-12)
    for t, v in zip(ts, sol.y[0]):
        assert float(sde.var(torch.tensor(t, dtype=torch.float64))) == pytest.approx(v, rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("ve")])
def test_ve_g_matches_sigma(name):
    """g² = d sigma²/dt for every VE variant (the public-code bug: g of sigma², not of sigma)."""
    sde = ALL[name]
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64) * sde.T
    h = 1e-6
    assert torch.allclose(sde.g2(t), (sde.var(t + h) - sde.var(t - h)) / (2 * h), rtol=1e-5)


def test_power_vp_with_rho_one_is_the_linear_vp():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    a = sde_lib.VPPower(beta_a=19.9, beta_b=0.1, rho=1.0, T=1.0, eps=1e-3)
    b = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    assert torch.allclose(a.var(t), b.var(t)) and torch.allclose(a.g2(t), b.g2(t))


def test_quadratic_time_law():
    sde = sde_lib.build({"name": "ou", "T": 5.0, "eps": 1e-3, "beta": 2.0, "time_law": "quadratic"})
    u = torch.rand(100000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = sde.sample_time(u)
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 5.0
    assert float((t < 5.0 / 4).double().mean()) == pytest.approx(0.5, abs=0.01)  # P(u² < 1/4) = 1/2
    assert sde_lib.relevant({"name": "ou", "T": 5.0, "eps": 1e-3, "beta": 2.0, "time_law": "uniform"}) == \
        {"name": "ou", "T": 5.0, "eps": 1e-3, "beta": 2.0}


@pytest.mark.parametrize("name", ALL)
def test_drift_matches_mean_decay(name):
    sde = ALL[name]
    t = torch.linspace(0.01, sde.T - 0.01, 50, dtype=torch.float64)
    h = 1e-6
    grad = (sde.log_mean(t + h) - sde.log_mean(t - h)) / (2 * h)
    assert torch.allclose(sde.drift_coef(t), grad, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", PROCESSES)
def test_forward_simulation_matches_marginal(name):
    sde = PROCESSES[name]
    gen = torch.Generator().manual_seed(0)
    x0 = 1.5 * torch.ones(20000, dtype=torch.float64)
    x = x0.clone()
    steps = 2000
    t_end = 0.5 * sde.T
    dt = t_end / steps
    for i in range(steps):
        t = torch.tensor(i * dt, dtype=torch.float64)
        drift, g = sde.sde(x, t.expand(1))
        x = x + drift * dt + g * dt**0.5 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    m, s = sde.marginal(torch.tensor(t_end, dtype=torch.float64))
    assert abs(float(x.mean() - m * 1.5)) < 4 * float(s) / 20000**0.5 + 1e-3 * float(m)
    assert abs(float(x.std() / s) - 1) < 0.03


def test_ve_variance_is_not_sigma_squared():
    sde = PROCESSES["ve"]
    t = torch.tensor(0.0, dtype=torch.float64)
    assert float(sde.var(t)) == 0.0  # sigma(0)^2 = sigma_min^2 would be wrong


def test_relevant_params_only():
    cfg = {"name": "ve", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20, "beta": 2,
           "sigma_min": 0.01, "sigma_max": 50}
    assert set(sde_lib.relevant(cfg)) == {"name", "T", "eps", "sigma_min", "sigma_max"}
    assert isinstance(sde_lib.build(cfg), sde_lib.VE)


def test_config_rejects_inverted_noise_range():
    from wsgm import config as config_lib

    base = {"datasets": {"d": {"kind": "gaussian", "size": 8}},
            "experiments": {"e": {"dataset": "d", "net": {"channel_mult": [1]}}}}
    config_lib.check(base)
    bad = {**base, "experiments": {"e": {**base["experiments"]["e"],
                                         "sde": {"name": "ve_power", "sigma_min": 5.0, "sigma_max": 1.0}}}}
    with pytest.raises(config_lib.ConfigError, match="sigma_max > sigma_min"):
        config_lib.check(bad)
    bad = {**base, "experiments": {"e": {**base["experiments"]["e"], "sde": {"eps": 2.0}}}}
    with pytest.raises(config_lib.ConfigError, match="eps=2.0 must be below T"):
        config_lib.check(bad)


def _at(sde, t):
    return torch.tensor(t, dtype=torch.float64)


@pytest.mark.parametrize("T", [1.0, 2.0, 0.25])
def test_every_schedule_reaches_its_end_value_at_T(T):
    """One convention: beta_max, sigma_max, (b + a)^rho at t = T whatever T (ou: T is the horizon)."""
    t0, tT = torch.tensor(0.0, dtype=torch.float64), torch.tensor(T, dtype=torch.float64)
    b = {n: dataclasses.replace(sde, T=T) for n, sde in PROCESSES.items()}
    for name in ("vp", "subvp", "vp_exp"):
        assert float(b[name].beta(t0)) == pytest.approx(0.1) and float(b[name].beta(tT)) == pytest.approx(20.0)
    assert float(b["vp"].log_mean(tT)) == pytest.approx(-0.5 * T * (0.1 + 20.0) / 2)  # ∫beta = T mean(beta)
    assert float(b["subvp"].log_mean(tT)) == pytest.approx(-0.5 * T * (0.1 + 20.0) / 2)
    assert float(b["vp_power"].beta(t0)) == pytest.approx(0.3**2)
    assert float(b["vp_power"].beta(tT)) == pytest.approx((0.3 + 4.4) ** 2)
    assert float(b["vp_power"].log_mean(tT)) == pytest.approx(-0.5 * T * (4.7**3 - 0.3**3) / (3 * 4.4))
    for name in ("ve", "ve_power"):  # sigma_max at T: VE with T = 2 is 50, not 2.5e5 (old t-absolute sigma)
        assert float(b[name].sigma(tT)) == pytest.approx(50.0) and float(b[name].sigma(t0)) == pytest.approx(0.01)
        assert float(b[name].var(tT)) == pytest.approx(50.0**2 - 0.01**2)
    for name in ("ve_linear", "ve_quadratic"):
        assert float(b[name].var(tT)) == pytest.approx(50.0**2)
    assert float(b["ou"].log_mean(tT)) == pytest.approx(-0.5 * 2.0 * T)  # constant beta: absolute time
    assert b["ve"].prior_std() == pytest.approx(math.sqrt(1 + 50.0**2 - 0.01**2))


def test_T_one_is_numerically_the_old_definition():
    """At T = 1 (every default config) each process is exactly what it was before the t/T convention."""
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    vp, subvp, ve, vpp = (PROCESSES[n] for n in ("vp", "subvp", "ve", "vp_power"))
    old_log_mean = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    old_beta = 0.1 + t * (20.0 - 0.1)
    assert torch.equal(vp.log_mean(t), old_log_mean) and torch.equal(vp.beta(t), old_beta)
    assert torch.equal(subvp.g2(t), old_beta * -torch.expm1(4 * old_log_mean))
    old_sigma = 0.01 * (50.0 / 0.01) ** t
    assert torch.equal(ve.sigma(t), old_sigma)
    assert torch.equal(ve.g2(t), old_sigma**2 * 2 * math.log(50.0 / 0.01))
    assert torch.equal(vpp.beta(t), (0.3 + 4.4 * t) ** 2)
    assert torch.allclose(vpp.log_mean(t), -0.5 * ((0.3 + 4.4 * t) ** 3 - 0.3**3) / (4.4 * 3), rtol=1e-15, atol=0)
