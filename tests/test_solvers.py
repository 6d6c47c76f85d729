"""The solver registry, the λ-solvers (ddim, dpmpp_2m, edm) and the time grids, with exact scores."""

import math

import numpy as np
import pytest
import torch

from tests.test_samplers import SIGMA, _process, _var_at, deterministic_error, exact_eps
from wsgm import sde as sde_lib
from wsgm import solvers
from wsgm.samplers import GRIDS, PROJECTABLE, SAMPLERS, options, relevant, sample, time_grid

PROCESSES = {
    "vp": {"beta_min": 0.1, "beta_max": 20.0}, "subvp": {"beta_min": 0.1, "beta_max": 20.0},
    "ve": {"sigma_min": 0.01, "sigma_max": 50.0}, "ou": {"beta": 2.0, "T": 5.0},
    "vp_exp": {"beta_min": 0.1, "beta_max": 65.0}, "vp_power": {"beta_a": 5.0, "beta_b": 0.3, "rho": 2.0},
    "ve_linear": {"sigma_max": 50.0}, "ve_quadratic": {"sigma_max": 50.0},
    "ve_power": {"sigma_min": 0.01, "sigma_max": 50.0, "rho": 7.0},
}


def _build(name):
    return sde_lib.build({"name": name, "T": 1.0, "eps": 1e-3, **PROCESSES[name]})


def test_registry_lists_every_sampler_with_its_cost_and_projection():
    assert SAMPLERS == ("em", "ancestral", "pc", "pf_ode", "heun", "rk45", "ddim", "dpmpp_2m", "edm")
    assert PROJECTABLE == ("em", "ancestral", "pc", "ddim")
    cost = {name: solvers.REGISTRY[name].nfe_per_step for name in SAMPLERS}
    assert cost == {"em": 1, "ancestral": 1, "pc": 2, "pf_ode": 1, "heun": 2, "rk45": 0, "ddim": 1,
                    "dpmpp_2m": 1, "edm": 2}
    with pytest.raises(ValueError, match="unknown sampler"):
        solvers.get("euler")


@pytest.mark.parametrize("sampler,kw", [("ddim", {}), ("ddim", {"eta": 0.5}), ("dpmpp_2m", {}),
                                        ("edm", {}), ("edm", {"churn": 20.0})])
def test_nfe_per_step_is_what_the_sampler_spends(sampler, kw):
    sde = _process("vp")
    info = {}
    sample(exact_eps(sde, SIGMA), sde, (4, 1), 6, sampler, info=info, generator=torch.Generator().manual_seed(0),
           **kw)
    assert info["nfe"] == 6 * solvers.REGISTRY[sampler].nfe_per_step


def test_projection_is_applied_by_ddim_and_refused_by_the_ode_solvers():
    sde = _process("vp")
    seen = []

    def project(x, t):
        seen.append(t)
        return x

    sample(exact_eps(sde, SIGMA), sde, (4, 1), 5, "ddim", project=project, eta=0.3,
           generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx(time_grid(sde, 5).tolist()[1:])
    for sampler in ("dpmpp_2m", "edm"):
        with pytest.raises(ValueError, match="cannot project"):
            sample(exact_eps(sde, SIGMA), sde, (4, 1), 5, sampler, project=project)


def test_classic_samplers_are_unchanged_by_the_registry():
    """Sums of the pre-registry sampler's draws (VP, 7 steps, seed 0, projection, denoise). pc's
    changed on purpose when its Langevin step size stopped depending on the batch (it was the
    batch-mean rule of Song et al.'s code, which made a sample depend on its batch and on
    sampling.shards; now 2 (snr s(t))², the rule's value for a noise predictor): before
    -0x1.4ed137c000000p-2, then -0x1.9503c0c000000p-3 (per-sample norms, which diverge in low
    dimensions)."""
    sde = _process("vp")

    def eps(x, t):
        m, s = sde.marginal(t.double())
        return (s.view(-1, 1) * x / (m.view(-1, 1) ** 2 * 0.09 + s.view(-1, 1) ** 2)).float()

    before = {("em", "uniform"): "0x1.01638e3000000p+0", ("ancestral", "quadratic"): "0x1.679e76c000000p-3",
              ("pc", "uniform"): "-0x1.dae46d6000000p-3", ("pf_ode", "quadratic"): "-0x1.503ca59000000p+0",
              ("heun", "uniform"): "-0x1.61cae98000000p+0", ("rk45", "uniform"): "-0x1.30a1823000000p+0"}
    for (sampler, grid), value in before.items():
        project = (lambda x, t: x * 0.999) if sampler in PROJECTABLE else None
        x = sample(eps, sde, (5, 3), 7, sampler, grid, torch.Generator().manual_seed(0), project=project,
                   denoise=True)
        assert float(x.double().sum()) == pytest.approx(float.fromhex(value), rel=1e-6), sampler


def test_ddim_with_eta_one_is_ancestral():
    sde = _process("ve")
    x0 = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a, b = (sample(exact_eps(sde, SIGMA), sde, (1000,), 10, name, generator=torch.Generator().manual_seed(1),
                   x_init=x0, **kw) for name, kw in (("ddim", {"eta": 1.0}), ("ancestral", {})))
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("process", list(PROCESSES))
@pytest.mark.parametrize("sampler,grid,order", [("ddim", "logsnr", 1.0), ("dpmpp_2m", "logsnr", 2.0),
                                                ("edm", "karras", 2.0)])
def test_lambda_solvers_converge_at_their_order_for_every_process(process, sampler, grid, order):
    """Against the exact probability-flow map of N(0, SIGMA²) data (``deterministic_error``)."""
    sde = _build(process)
    errors = [deterministic_error(sde, sampler, n, grid=grid)[0] for n in (64, 128, 256)]
    slope = math.log2(errors[1] / errors[2])
    print(process, sampler, errors, slope)
    assert abs(slope - order) < 0.3
    assert errors[-1] < (0.05 if order == 1 else 2e-3)


def test_dpmpp_2m_reaches_the_exact_law():
    """DPM-Solver++(2M) on a Gaussian: the sampled variance at eps is the exact marginal's."""
    sde = _process("vp")
    x = sample(exact_eps(sde, SIGMA), sde, (200000,), 64, "dpmpp_2m", "logsnr",
               torch.Generator().manual_seed(0))
    assert float(x.double().var()) == pytest.approx(_var_at(sde, sde.eps), rel=0.01)
    assert deterministic_error(sde, "dpmpp_2m", 64, grid="logsnr")[0] < 3e-3


def test_deterministic_ddim_approaches_the_probability_flow_solution():
    sde = _process("vp")
    one = torch.ones(1, dtype=torch.float64)
    ode = float(sample(exact_eps(sde, SIGMA), sde, (1,), 0, "rk45", x_init=one, rtol=1e-10, atol=1e-10)[0])
    gaps = [abs(float(sample(exact_eps(sde, SIGMA), sde, (1,), n, "ddim", x_init=one)[0]) - ode)
            for n in (32, 128, 512)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01 * abs(ode)
    assert math.log(gaps[1] / gaps[2]) / math.log(4) == pytest.approx(1.0, abs=0.2)


def test_edm_churn_keeps_the_law_close():
    sde = _process("vp")
    x = sample(exact_eps(sde, SIGMA), sde, (100000,), 64, "edm", "karras", torch.Generator().manual_seed(0),
               churn=10.0, churn_max=10.0)
    assert float(x.double().var()) == pytest.approx(_var_at(sde, sde.eps), rel=0.05)


@pytest.mark.parametrize("process", list(PROCESSES))
def test_log_snr_is_inverted_on_the_process_interval(process):
    sde = _build(process)
    t = torch.linspace(sde.eps, sde.T, 50, dtype=torch.float64)
    lam = sde.log_snr(t)
    assert torch.all(lam[1:] < lam[:-1])
    assert torch.allclose(sde.time_of_log_snr(lam), t, rtol=1e-10, atol=1e-12)
    m, s = sde.marginal(t)
    assert torch.allclose(lam, torch.log(m / s))


@pytest.mark.parametrize("process", ["vp", "ve", "ou", "ve_power"])
def test_grids(process):
    sde = _build(process)
    for kind in GRIDS:
        g = time_grid(sde, 10, kind)
        assert len(g) == 11 and float(g[0]) == sde.T and float(g[-1]) == sde.eps
        assert torch.all(g[1:] < g[:-1]), kind
    lam = sde.log_snr(time_grid(sde, 10, "logsnr"))
    assert torch.allclose(lam.diff(), lam.diff().mean().expand(10), rtol=1e-8)
    sigma = torch.exp(-sde.log_snr(time_grid(sde, 10, "karras", rho=7.0)))
    root = sigma ** (1 / 7)
    assert torch.allclose(root.diff(), root.diff().mean().expand(10), rtol=1e-8)
    with pytest.raises(ValueError, match="unknown time grid"):
        time_grid(sde, 10, "cosine")


def test_grids_need_a_finite_log_snr_at_eps():
    sde = sde_lib.build({"name": "vp", "T": 1.0, "eps": 0.0, "beta_min": 0.1, "beta_max": 20.0})
    with pytest.raises(ValueError, match="eps > 0"):
        time_grid(sde, 4, "karras")


def test_sampling_spec_keeps_only_the_chosen_solvers_and_grids_keys():
    cfg = {"sampler": "em", "time_grid": "uniform", "rho": 7.0, "eta": 0.0, "churn": 0.0, "churn_min": 0.0,
           "churn_max": None, "churn_noise": 1.0, "n_samples": 4}
    assert set(relevant(cfg)) == {"sampler", "time_grid", "n_samples"}
    assert set(relevant({**cfg, "sampler": "ddim", "time_grid": "karras"})) == {
        "sampler", "time_grid", "n_samples", "eta", "rho"}
    assert {"churn", "churn_min", "churn_max", "churn_noise"} <= set(relevant({**cfg, "sampler": "edm"}))
    assert options({**cfg, "eta": 0.5})["eta"] == 0.5
