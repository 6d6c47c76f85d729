"""Probability-flow ODE likelihood against closed-form Gaussian log-densities."""

import math

import numpy as np
import pytest
import torch

from wsgm import sde as sde_lib
from wsgm.data.gaussian import power_spectrum, sample as gaussian_sample
from wsgm.ode_likelihood import bits_per_dim, log_likelihood
from wsgm.nets.exact import exact_models


def _field_model(sde, size=8):
    p = power_spectrum(size, 8.0, 2.0)
    stats = {"low0": {"mean": [0.0], "std": [1.0]}}
    return p, exact_models(p, stats, 0, "haar", sde, 1)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name,estimator", [("vp", "rademacher"), ("ve", "rademacher"), ("subvp", "exact")])
def test_ode_log_likelihood_matches_the_closed_form(name, estimator):
    sde = sde_lib.build({"name": name, "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0,
                         "sigma_min": 0.01, "sigma_max": 50.0})
    p, model = _field_model(sde)
    n = 16 if estimator == "exact" else 256  # Hutchinson: ~4 nats of noise per sample and probe
    x0 = torch.from_numpy(gaussian_sample(p, n, 1, np.random.default_rng(0))).double()
    m, s = (float(v) for v in sde.marginal(torch.tensor(sde.eps, dtype=torch.float64)))
    x = m * x0 + s * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    info = {}
    ode = log_likelihood(model, sde, x, estimator=estimator, probes=8,
                         generator=torch.Generator().manual_seed(2), info=info)
    exact = model.log_prob(x, torch.tensor([sde.eps], dtype=torch.float64))
    rel = float((ode.mean() - exact.mean()).abs() / exact.mean().abs())
    print(name, estimator, "relative error of the mean log-likelihood", rel, "nfe", info["nfe"])
    assert rel < 0.01
    if estimator == "exact":
        assert torch.allclose(ode, exact, rtol=1e-3)


def test_dequantized_bits_per_dim_bound_the_discrete_probability():
    """Scalar N(0, 0.3²) data on 8-bit bins: the bound is above the exact -log2 P(bin) and close to it."""
    from scipy.stats import norm

    sde = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    sigma, width = 0.3, 2 / 256

    def eps(x, t):
        mm, ss = sde.marginal(t.double())
        return ss.view(-1, 1) * x / (mm.view(-1, 1) ** 2 * sigma**2 + ss.view(-1, 1) ** 2)

    var = float(sum(v**2 * w for v, w in zip(sde.marginal(torch.tensor(sde.eps, dtype=torch.float64)),
                                              (sigma**2, 1.0))))
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(400, 1, generator=gen, dtype=torch.float64) * var**0.5 / width).floor() * width + width / 2
    bpd = bits_per_dim(eps, sde, x, bin_width=width, generator=gen, estimator="exact")
    lo, hi = (x - width / 2) / var**0.5, (x + width / 2) / var**0.5
    exact_bits = -np.log2(norm.cdf(hi.numpy()) - norm.cdf(lo.numpy())).ravel()
    assert float(bpd.mean()) >= exact_bits.mean() - 0.01
    assert float(bpd.mean()) == pytest.approx(exact_bits.mean(), abs=0.02)
    assert math.isfinite(float(bpd.mean()))
