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


@pytest.mark.parametrize("sampler", ["em", "pf_ode"])
def test_exact_score_recovers_the_variance_and_error_falls_with_steps(sampler):
    sde = sde_lib.VP()
    sigma = 0.3
    errors = []
    for steps in (10, 100, 1000):
        gen = torch.Generator().manual_seed(0)
        x = sample(exact_eps(sde, sigma), sde, (20000, 1), steps, sampler, generator=gen)
        errors.append(abs(float(x.double().std()) / sigma - 1))
    assert errors[2] < 0.03
    assert errors[0] > errors[2]


def test_grids():
    sde = sde_lib.VP()
    for kind in ("uniform", "quadratic"):
        g = time_grid(sde, 10, kind)
        assert len(g) == 11 and float(g[0]) == pytest.approx(1.0) and float(g[-1]) == pytest.approx(1e-3)
        assert torch.all(g[1:] < g[:-1])
    q = time_grid(sde, 10, "quadratic")
    assert q[-2] - q[-1] < time_grid(sde, 10, "uniform")[-2] - 1e-3


def test_sampling_is_deterministic():
    sde = sde_lib.VP()
    eps = exact_eps(sde, 1.0)
    a = sample(eps, sde, (8, 1, 4, 4), 5, generator=torch.Generator().manual_seed(3))
    b = sample(eps, sde, (8, 1, 4, 4), 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
