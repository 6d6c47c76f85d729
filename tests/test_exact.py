"""Exact Gaussian ε-models against dense closed forms built without Fourier algebra."""

import numpy as np
import pytest
import torch

from wsgm import sde as sde_lib
from wsgm import wavelets
from wsgm.data.gaussian import power_spectrum
from wsgm.nets.exact import exact_models

L, J, C = 8, 2, 2
STATS = {  # arbitrary affine normalizations: the models must follow whatever decompose measured
    "low1": {"mean": [0.1, -0.2], "std": [0.9, 1.3]},
    "low2": {"mean": [0.3, 0.05], "std": [1.7, 0.6]},
    "detail1": {"mean": [0.01 * i for i in range(6)], "std": [0.5 + 0.1 * i for i in range(6)]},
    "detail2": {"mean": [-0.02 * i for i in range(6)], "std": [0.4 + 0.2 * i for i in range(6)]},
}


def _dense(fn, n_in: int) -> torch.Tensor:
    """Matrix of a linear map on flattened vectors, column by column."""
    return torch.stack([fn(e) for e in torch.eye(n_in, dtype=torch.float64)], dim=1)


def _dwt_matrix(size: int) -> torch.Tensor:
    """(4 size²/4, size²) matrix of one DWT level: rows = low pixels then cH, cV, cD pixels."""
    def fn(v):
        low, det = wavelets.dwt2(v.view(1, 1, size, size), "haar")
        return torch.cat([low.flatten(), det.flatten()])
    return _dense(fn, size * size)


def _dense_laws():
    """Per model j: (mean matrix K or None, covariance) of the un-normalized target per channel."""
    p = torch.tensor(power_spectrum(L, 8.0, 2.0))
    cov = _dense(lambda v: torch.fft.ifft2(torch.fft.fft2(v.view(L, L)) * p).real.flatten(), L * L)
    laws = []
    size = L
    for _ in range(J):
        w = _dwt_matrix(size)
        joint = w @ cov @ w.T
        k = (size // 2) ** 2
        s_ll, s_dl, s_dd = joint[:k, :k], joint[k:, :k], joint[k:, k:]
        gain = s_dl @ torch.linalg.inv(s_ll)
        laws.append((gain, s_dd - gain @ s_dl.T))
        cov, size = s_ll, size // 2
    laws.append((None, cov))
    return p, laws


@pytest.mark.parametrize("name", ["vp", "ve", "ou"])
def test_exact_eps_is_minus_s_times_the_autograd_score(name):
    sde = sde_lib.build({"name": name, "T": 5.0 if name == "ou" else 1.0, "eps": 1e-3, "beta_min": 0.1,
                         "beta_max": 20.0, "sigma_min": 0.01, "sigma_max": 50.0, "beta": 2.0})
    p, laws = _dense_laws()
    models = exact_models(p.numpy(), STATS, J, "haar", sde, C)
    gen = torch.Generator().manual_seed(0)
    for j, (gain, cov) in enumerate(laws):
        size = L // 2 ** (j + 1) if j < J else L // 2**J
        bands = 3 if j < J else 1
        tname, cname = (f"detail{j + 1}", f"low{j + 1}") if j < J else (f"low{J}", None)
        tm = torch.tensor(STATS[tname]["mean"], dtype=torch.float64).view(bands, C)
        ts = torch.tensor(STATS[tname]["std"], dtype=torch.float64).view(bands, C)
        x = torch.randn(3, bands * C, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
        cond = torch.randn(3, C, size, size, generator=gen, dtype=torch.float64) if cname else None
        for t in (0.01, 0.3, 0.9):
            tt = torch.tensor([t * sde.T], dtype=torch.float64)
            m, s = (float(v) for v in sde.marginal(tt))
            logp = 0.0
            for c in range(C):
                xc = x.view(3, bands, C, size * size)[:, :, c].reshape(3, -1)  # band-major
                if cname:
                    lm, ls = STATS[cname]["mean"][c], STATS[cname]["std"][c]
                    mean = (cond[:, c].reshape(3, -1) * ls + lm) @ gain.T
                else:
                    mean = torch.zeros(3, size * size, dtype=torch.float64)
                scale = ts[:, c].repeat_interleave(size * size)
                shift = tm[:, c].repeat_interleave(size * size)
                mean_n = (mean - shift) / scale
                cov_n = cov / scale[:, None] / scale[None, :]
                law = torch.distributions.MultivariateNormal(
                    m * mean_n, m**2 * cov_n + s**2 * torch.eye(len(scale), dtype=torch.float64))
                logp = logp + law.log_prob(xc)
            score = torch.autograd.grad(logp.sum(), x)[0]
            eps = models[j](x.detach(), tt.expand(3), cond)
            assert torch.allclose(eps, -s * score, rtol=1e-6, atol=1e-8), (j, t)
            closed = models[j].log_prob(x.detach(), tt, cond)
            assert torch.allclose(closed, logp.detach(), rtol=1e-8), (j, t)


@pytest.mark.slow
def test_exact_wsgm_cascade_reproduces_the_spectrum():
    """Coarse-to-fine sampling with the exact models gives the field's power spectrum."""
    from wsgm.cascade import cascade

    size, J2 = 16, 2
    p = power_spectrum(size, 16.0, 2.0)
    sde = sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3)
    # exact stats of the bands (zero mean; std from the symbols) so normalization is the real one
    from wsgm.symbols import scale_symbols
    symbols, p_coarse = scale_symbols(torch.tensor(p), J2)
    stats = {f"low{J2}": {"mean": [0.0], "std": [float(p_coarse.mean().sqrt())]}}
    for k, s in enumerate(symbols, start=1):
        var = torch.diagonal(s, dim1=-2, dim2=-1).real.mean(dim=(0, 1))
        stats[f"detail{k}"] = {"mean": [0.0] * 3, "std": var[1:].sqrt().tolist()}
        stats[f"low{k}"] = {"mean": [0.0], "std": [float(var[0].sqrt())]}
    models = exact_models(p, stats, J2, "haar", sde, 1)
    spec = {"J": J2, "wavelet": "haar", "sde": {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1,
                                                "beta_max": 20.0},
            "sampling": {"sampler": "em", "time_grid": "uniform"}, "steps": 200, "shape": [0, 1, size, size]}
    out = cascade(models, stats, spec, 2000, torch.Generator().manual_seed(0), torch.device("cpu"))
    x = out[0].double()
    empirical = (torch.fft.fft2(x).abs() ** 2).mean(dim=(0, 1)) / size**2
    ratio = empirical / torch.tensor(p)
    # 2000 samples: each frequency's estimate has ~3% noise (|fft|² ~ exponential / 2 channels avg)
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.03)
    assert float((ratio - 1).abs().max()) < 0.2
    assert np.isfinite(x.numpy()).all()


def test_from_stores_matches_the_dataset(tiny_store):
    from wsgm.nets.exact import from_stores

    data, store = tiny_store
    models = from_stores(data, store, sde_lib.VP(beta_min=0.1, beta_max=20.0, T=1.0, eps=1e-3))
    assert len(models) == 3 and models[2].gain is None and models[0].gain is not None
    assert models[0].cov.shape == (1, 8, 8, 3, 3) and models[2].cov.shape == (1, 4, 4, 1, 1)
