"""Karras et al. 2022's (EDM) parameterization, loss weighting and log-normal noise levels."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wsgm import config as config_lib
from wsgm import sde as sde_lib
from wsgm.losses import DSMLoss
from wsgm.nets.param import EpsModel, edm_coefficients, edm_weight, native_loss, net_input, to_eps


def _sdes(time_law: str = "edm") -> list[sde_lib.SDE]:
    """Every process with the schema's defaults (ou with the paper's T = 5)."""
    out = []
    for name in sde_lib.REGISTRY:
        cfg = {**config_lib.defaults("sde"), "name": name, "time_law": time_law}
        if name == "ou":
            cfg["T"] = 5.0
        out.append(sde_lib.build(cfg))
    return out


def test_coefficients_are_the_papers():
    """Karras et al. 2022, table 1 (σ_data = 0.5 as in the paper, and 1 as for normalized bands)."""
    sigma = torch.tensor([0.002, 0.1, 1.0, 5.0, 80.0], dtype=torch.float64)
    for sd in (0.5, 1.0):
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, sd)
        for k, s in enumerate(sigma.tolist()):
            assert c_skip[k].item() == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-14)
            assert c_out[k].item() == pytest.approx(s * sd / math.sqrt(sd**2 + s**2), rel=1e-14)
            assert c_in[k].item() == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-14)
            assert c_noise[k].item() == pytest.approx(math.log(s) / 4, rel=1e-14)
            assert edm_weight(sigma, sd)[k].item() == pytest.approx((s**2 + sd**2) / (s * sd) ** 2, rel=1e-14)
        # λ = 1/c_out²: the effective weight of the F error is 1 (EDM eq. 8)
        assert torch.allclose(edm_weight(sigma, sd) * c_out**2, torch.ones_like(sigma), rtol=1e-14)


@pytest.mark.parametrize("sde", _sdes("uniform"), ids=list(sde_lib.REGISTRY))
def test_exact_gaussian_denoiser(sde):
    """Data N(0, diag(v)): the optimal denoiser in the x/m scale is D* = x̃ v/(σ² + v). The edm net
    F* = (D* - c_skip x̃)/c_out, fed (c_in x̃, c_noise) as the U-Net is, converts to the exact ε
    E[z | x_t] = σ x̃/(σ² + v); for v = σ_d² (the normalized bands' variance) F* = 0."""
    sd = 1.0
    v = torch.tensor([0.05, 0.3, 1.0, 4.0], dtype=torch.float64).view(1, 4, 1, 1)  # per-dimension variance
    t = torch.linspace(sde.eps, sde.T, 7, dtype=torch.float64)
    m, s = sde.marginal(t)
    sigma = s / m
    x = torch.randn(7, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    xs = x / m.view(-1, 1, 1, 1)  # x̃
    sig = sigma.view(-1, 1, 1, 1)
    eps_exact = sig * xs / (sig**2 + v)

    class Optimal(torch.nn.Module):
        """F* from the net's own inputs: σ = exp(4 c_noise), x̃ = x_in / c_in."""

        def forward(self, x_in, c_noise, cond=None):
            sg = torch.exp(4 * c_noise).view(-1, 1, 1, 1)
            c_skip, c_out, c_in, _ = edm_coefficients(sg, sd)
            x_tilde = x_in / c_in
            return (x_tilde * v / (sg**2 + v) - c_skip * x_tilde) / c_out

    model = EpsModel(Optimal(), sde, "edm", sd)
    err = (model(x, t) - eps_exact).abs().max().item()
    assert err < 1e-9, err
    # white data at σ_d: the skip connection alone is optimal (EDM's design), F* = 0
    c_skip = edm_coefficients(sig, sd)[0]
    assert torch.allclose(c_skip * xs, xs * sd**2 / (sig**2 + sd**2), rtol=1e-14)
    assert torch.allclose(to_eps("edm", torch.zeros_like(x), x, m, s, sd), sig * xs / (sig**2 + sd**2), rtol=1e-12)
    # net_input: c_in x̃ and c_noise
    x_in, c_noise = net_input("edm", x, t, m, s, sd)
    assert torch.allclose(x_in, xs / torch.sqrt(sig**2 + sd**2), rtol=1e-14)
    assert torch.allclose(c_noise, 0.25 * torch.log(sigma), rtol=1e-14)


def test_edm_loss_is_lambda_weighted_denoiser_error():
    """native edm loss |F - F*|² = λ(σ)|D - x_0|², and weighting edm gives the same number for any
    parameterization predicting the same denoiser."""
    sd, gen = 0.7, torch.Generator().manual_seed(1)
    sde = _sdes()[0]
    t = torch.linspace(0.05, 1.0, 5, dtype=torch.float64)
    m, s = sde.marginal(t)
    sigma = (s / m).view(-1, 1, 1, 1)
    x0, z, out = (torch.randn(5, 2, 4, 4, dtype=torch.float64, generator=gen) for _ in range(3))
    xt = m.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * z
    c_skip, c_out, _, _ = edm_coefficients(sigma, sd)
    D = c_skip * xt / m.view(-1, 1, 1, 1) + c_out * out
    want = edm_weight(sigma.flatten(), sd) * (D - x0).pow(2).flatten(1).mean(1)
    assert torch.allclose(native_loss("edm", out, x0, z, s, m, sd), want, rtol=1e-10)
    # the same denoiser as an ε-prediction, under weighting edm
    eps_hat = to_eps("edm", out, xt, m, s, sd)
    assert torch.allclose((xt - s.view(-1, 1, 1, 1) * eps_hat) / m.view(-1, 1, 1, 1), D, rtol=1e-9, atol=1e-12)
    w = 1 + (s / m) ** 2 / sd**2
    assert torch.allclose(w * (eps_hat - z).pow(2).flatten(1).mean(1), want, rtol=1e-9)


def test_edm_weighting_in_the_loss_object():
    """DSMLoss(weighting=edm) on an ε net equals λ(σ)|D - x_0|² with D its implied denoiser."""
    sde = _sdes("uniform")[0]
    x0 = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(2))

    class Half(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return 0.5 * x

    got = DSMLoss(sde, "eps", "edm", 1.0)(Half(), x0, None, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    t = DSMLoss(sde, "eps").sample_time(6, gen)
    z = torch.randn(x0.shape, generator=gen)
    m, s = (v.float().view(-1, 1, 1, 1) for v in sde.marginal(t))
    xt = m * x0 + s * z
    D = (xt - s * 0.5 * xt) / m
    want = edm_weight((s / m).flatten(), 1.0) * (D - x0).pow(2).flatten(1).mean(1)
    assert torch.allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("sde", _sdes(), ids=list(sde_lib.REGISTRY))
def test_log_normal_noise_levels_map_to_valid_times(sde):
    """time_law edm: ln σ ~ N(P_mean, P_std²) truncated to [σ(eps), σ(T)], each σ mapped to the t in
    [eps, T] with σ(t) = σ (inverse of the increasing σ(t) = s/m of the process)."""
    u = torch.linspace(0, 1, 2001, dtype=torch.float64)[:-1] + 0.5 / 2000
    t = sde.sample_time(u)
    assert t.dtype == torch.float64 and bool(((t >= sde.eps) & (t <= sde.T)).all())
    lo, hi = sde.noise_level(torch.tensor([sde.eps, sde.T], dtype=torch.float64)).tolist()
    a, b = ((math.log(lo) - sde.p_mean) / sde.p_std, (math.log(hi) - sde.p_mean) / sde.p_std)
    phi = lambda q: 0.5 * math.erfc(-q / math.sqrt(2))  # noqa: E731
    # the inverse CDF of the truncated normal, in closed form, against the σ of the returned times
    want = torch.tensor([sde.p_mean + sde.p_std * float(torch.special.ndtri(torch.tensor(
        phi(a) + q * (phi(b) - phi(a)), dtype=torch.float64))) for q in u.tolist()[::97]], dtype=torch.float64)
    got = torch.log(sde.noise_level(t))[::97]  # (ve_linear: a > 0, drawn through Φ(-x) = 1 - Φ(x))
    err = (got - want).abs().max().item()
    assert err < 1e-6, err
    # σ(t) monotone, and the round trip σ -> t -> σ exact
    sig = torch.exp(torch.linspace(math.log(lo), math.log(hi), 50, dtype=torch.float64))
    assert torch.allclose(sde.noise_level(sde.time_of_noise_level(sig)), sig, rtol=1e-9)
    assert bool((sde.noise_level(torch.linspace(sde.eps, sde.T, 200, dtype=torch.float64)).diff() > 0).all())


def test_log_normal_law_statistics():
    """On VE with a wide range the truncation is negligible: ln σ has mean P_mean, std P_std."""
    sde = sde_lib.VE(T=1.0, eps=1e-5, sigma_min=1e-4, sigma_max=500.0, time_law="edm", p_mean=-1.2, p_std=1.2)
    t = sde.sample_time(torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    ls = torch.log(sde.noise_level(t))
    assert abs(float(ls.mean()) + 1.2) < 0.03 and abs(float(ls.std()) - 1.2) < 0.03


def test_config_keys():
    """The schema takes the edm values; the sde spec carries p_mean/p_std only under time_law edm, the
    training spec carries sigma_data only where edm uses it."""
    from wsgm import specs

    cfg = config_lib.load(Path(__file__).resolve().parents[1] / "config" / "test.yaml")
    plain = specs.train(cfg, "sgm", 0)
    assert "sigma_data" not in plain["net"] and "p_mean" not in plain["sde"]
    raw = {"seed": 0, "datasets": {"d": {"kind": "gaussian", "size": 16, "n": 64, "chunk": 32}},
           "experiments": {"e": {"dataset": "d", "J": 0, "sde": {"time_law": "edm"},
                                 "net": {"parameterization": "edm", "channel_mult": [1, 2], "attn_resolutions": [8]},
                                 "train": {"weighting": "edm"}}}}
    full = config_lib.check(raw, warn=None)
    spec = specs.train(full, "e", 0)
    assert spec["net"]["parameterization"] == "edm" and spec["net"]["sigma_data"] == 1.0
    assert spec["sde"]["time_law"] == "edm" and (spec["sde"]["p_mean"], spec["sde"]["p_std"]) == (-1.2, 1.2)
    assert sde_lib.build(spec["sde"]).p_std == 1.2
    with pytest.raises(ValueError, match="p_mean"):
        sde_lib.VP(T=1.0, eps=1e-3, beta_min=0.1, beta_max=20.0, time_law="edm")
