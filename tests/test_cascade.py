import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.cascade import sample_to_store

from .helpers import train_tiny_models


@pytest.fixture
def tiny_models(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    paths = train_tiny_models(tiny_config, store, tmp_path, steps=5)
    return store, paths


def test_cascade_writes_every_resolution_deterministically(tmp_path, tiny_config, tiny_models):
    store, models = tiny_models
    spec = specs.sample(tiny_config, "wsgm", 3)
    spec["sampling"] = {**spec["sampling"], "n_samples": 10, "batch_size": 4}  # 3 batches
    outs = []
    for name in ("a.zarr", "b.zarr"):
        summary = sample_to_store(spec, store, models, tmp_path / name, torch.device("cpu"))
        outs.append(zarr.open_group(str(tmp_path / name), mode="r"))
    a, b = outs
    assert a["x0"].shape == (10, 1, 16, 16) and a["x1"].shape == (10, 1, 8, 8) and a["x2"].shape == (10, 1, 4, 4)
    for k in ("x0", "x1", "x2"):
        assert np.array_equal(a[k][:], b[k][:])
    assert np.isfinite(a["x0"][:]).all()
    assert summary["nfe_per_sample"] == 9 and summary["steps_per_scale"] == [3, 3, 3]
    # the finest image is consistent with the coarser one: its Haar low-pass equals x1
    from wsgm import wavelets

    low, _ = wavelets.dwt2(torch.from_numpy(a["x0"][:]), "haar")
    assert np.allclose(low.numpy(), a["x1"][:], atol=1e-4)


def test_wrong_number_of_models_is_an_error(tmp_path, tiny_config, tiny_models):
    store, models = tiny_models
    with pytest.raises(ValueError, match="J\\+1 = 3 model files"):
        sample_to_store(specs.sample(tiny_config, "wsgm", 2), store, models[:2], tmp_path / "x.zarr",
                        torch.device("cpu"))


def _white_eps(sde_spec):
    """Exact ε-predictor when the normalized target is N(0, I): E[z | x_t] = s x_t / (m² + s²)."""
    from wsgm import sde as sde_lib

    sde = sde_lib.build(sde_spec)

    def model(x, t, cond):
        m, s = (v.to(x.dtype).view(-1, 1, 1, 1) for v in sde.marginal(t.double()))
        return s * x / (m**2 + s**2)
    return model


def test_cascade_bookkeeping_reproduces_the_spectrum_at_every_scale(tiny_config):
    """Exact scores of white bands with std 2 (mean 3 on the coarsest low-pass): every x_k must be
    white with variance 4 (orthonormal Haar) and mean 3/2^(J-k); a missed (de)normalization, a
    wrong band order or a wrong scale shows as a wrong level or a coloured spectrum."""
    from wsgm.cascade import cascade
    from wsgm.metrics.spectrum import power_spectrum

    J, n = 2, 2000
    spec = specs.sample(tiny_config, "wsgm", [6, 5, 4])
    spec["sampling"] = {**spec["sampling"], "sampler": "pf_ode", "time_grid": "quadratic"}
    spec["sde"] = {"name": "vp", "beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "eps": 1e-3}
    stats = {"low2": {"mean": [3.0], "std": [2.0]}, "detail2": {"mean": [0.0] * 3, "std": [2.0] * 3},
             "detail1": {"mean": [0.0] * 3, "std": [2.0] * 3}, "low1": {"mean": [1.5], "std": [2.0]}}
    models = [_white_eps(spec["sde"])] * (J + 1)
    nfe = {}
    gen = torch.Generator().manual_seed(0)
    xs = cascade(models, stats, spec, n, gen, torch.device("cpu"), nfe=nfe)
    assert nfe == {2: 4, 1: 5, 0: 6}
    for k in range(J + 1):
        x = xs[k].numpy()
        assert x.shape == (n, 1, 16 >> k, 16 >> k)
        assert abs(x.mean() - 3.0 / 2 ** (J - k)) < 0.1
        p = power_spectrum(x - x.mean(axis=(0, 2, 3), keepdims=True))[1:]
        assert np.allclose(p, 4.0, rtol=0.15), (k, p)


def test_super_resolution_task_keeps_the_real_lowpass(tmp_path, tiny_config, tiny_models):
    store, models = tiny_models
    data = store.parent / "data.zarr"
    spec = specs.inverse(tiny_config, "wsgm", "superres", 2)
    spec["sampling"] = {**spec["sampling"], "n_samples": 6, "batch_size": 4}
    sample_to_store(spec, store, models, tmp_path / "sr.zarr", torch.device("cpu"), truth=data, offset=5)
    g = zarr.open_group(str(tmp_path / "sr.zarr"), mode="r")
    from wsgm.wavelets import lowpass

    src = zarr.open_group(str(data), mode="r")
    f0 = src.attrs["split"]["floor"][0]  # held-out floor rows, from the offset on
    real = torch.from_numpy(src["x"][f0 + 5:f0 + 11])
    assert np.allclose(g["x2"][:], lowpass(real, 2, "haar").numpy(), atol=1e-5)
    assert np.allclose(lowpass(torch.from_numpy(g["x0"][:]), 2, "haar").numpy(), g["x2"][:], atol=1e-4)
    assert g.attrs["mode"] == "inverse" and g.attrs["inverse"]["task"]["kind"] == "superres"
    assert g.attrs["cost"]["nfe_per_scale"] == [2, 2, 0]  # the known low-pass is not drawn


def test_per_scale_step_lists_are_checked_and_labelled(tiny_config):
    from wsgm import config as config_lib

    raw = {"datasets": {"d": {"kind": "gaussian", "size": 16}},
           "experiments": {"w": {"dataset": "d", "J": 2, "sampling": {"steps": [4, [8, 4, 2]]}}}}
    cfg = config_lib.check(raw)
    assert [specs.samples_path("w", s) for s in cfg["experiments"]["w"]["sampling"]["steps"]] == [
        "results/samples/w/steps4.zarr", "results/samples/w/steps8-4-2.zarr"]
    assert specs.sample(cfg, "w", "8-4-2")["steps"] == [8, 4, 2]
    raw["experiments"]["w"]["sampling"]["steps"] = [[8, 4]]
    with pytest.raises(config_lib.ConfigError, match="needs J\\+1 = 3"):
        config_lib.check(raw)


def test_sgm_path_with_the_exact_score_reproduces_a_coloured_spectrum(tiny_config):
    """J = 0 through the same cascade: the exact ε of a stationary Gaussian field (Fourier-diagonal,
    ε̂ = s x̂_t / (m² P/σ² + s²) in the normalized space) must give back the field's spectrum."""
    from wsgm import sde as sde_lib
    from wsgm.cascade import cascade
    from wsgm.data import gaussian
    from wsgm.metrics.spectrum import power_spectrum, radial_average

    p = torch.from_numpy(gaussian.power_spectrum(16, xi=4.0, eta=2.0))
    spec = specs.sample(tiny_config, "sgm", 200)
    spec["sde"] = {"name": "vp", "beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "eps": 1e-3}
    sde = sde_lib.build(spec["sde"])
    sigma = 2.0

    def model(x, t, cond):
        m, s = (float(v[0]) for v in sde.marginal(t.double()))
        gain = s / (m**2 * p / sigma**2 + s**2)
        return torch.fft.ifft2(gain * torch.fft.fft2(x.double())).real.to(x.dtype)

    stats = {"low0": {"mean": [0.0], "std": [sigma]}}
    xs = cascade([model], stats, spec, 3000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(xs) == {0}
    emp, exact = power_spectrum(xs[0].numpy())[1:], radial_average(p.numpy())[1:]
    assert exact[0] / exact[-1] > 20  # coloured: a wrong scale or normalization would show
    assert np.allclose(emp, exact, rtol=0.1), emp / exact


def _haar_split(size: int) -> torch.Tensor:
    """The orthonormal one-level Haar analysis as a matrix: rows = (low, cH, cV, cD) coefficients."""
    from wsgm import wavelets

    eye = torch.eye(size * size, dtype=torch.float64).reshape(-1, 1, size, size)
    low, details = wavelets.dwt2(eye, "haar")
    return torch.cat([low.reshape(len(eye), -1), details.reshape(len(eye), -1)], dim=1).T


def _gaussian_eps(mean: torch.Tensor, cov: torch.Tensor, sde, shape):
    """Exact ε-predictor of x_t = m x0 + s z for x0 ~ N(mean, cov) (mean may depend on the batch)."""
    def eps(x, t, mean=mean):
        m, s = (float(v[0]) for v in sde.marginal(t.double()))
        k = s * torch.linalg.inv(m**2 * cov + s**2 * torch.eye(len(cov), dtype=cov.dtype))
        flat = x.double().reshape(len(x), -1) - m * mean
        return (flat @ k.T).reshape(shape(len(x))).to(x.dtype)
    return eps


def test_wsgm_with_exact_conditional_scores_reproduces_the_spectrum_at_every_scale(tiny_config):
    """A coloured stationary Gaussian field, J = 2 Haar cascade, exact Gaussian conditional scores
    p(x̄_{j+1} | x_{j+1}) from the field's covariance: every x_k must have the exact spectrum of
    the field's level-k low-pass (the closed form of wsgm.metrics.gaussian)."""
    from wsgm import sde as sde_lib
    from wsgm.cascade import cascade
    from wsgm.data import gaussian
    from wsgm.metrics.gaussian import lowpass_spectrum
    from wsgm.metrics.spectrum import power_spectrum, radial_average

    size, J, n = 16, 2, 3000
    p = gaussian.power_spectrum(size, xi=8.0, eta=2.0)
    f = np.fft.fft(np.eye(size), axis=0)
    F = np.kron(f, f)  # 2-D DFT of a row-major flattened image
    cov = torch.from_numpy(np.real(np.linalg.inv(F) @ np.diag(p.ravel()) @ F))
    spec = specs.sample(tiny_config, "wsgm", 60)
    spec["sde"] = {"name": "vp", "beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "eps": 1e-3}
    sde = sde_lib.build(spec["sde"])
    # band covariances and normalization stats (exact), level by level
    stats, models, cov_low = {}, [None] * (J + 1), cov
    for level in range(1, J + 1):
        side = size >> (level - 1)
        w = _haar_split(side)
        joint = w @ cov_low @ w.T
        q = (side // 2) ** 2
        s_ll, s_dl, s_dd = joint[:q, :q], joint[q:, :q], joint[q:, q:]
        std_l = float(torch.sqrt(torch.diag(s_ll).mean()))
        std_d = torch.sqrt(torch.diag(s_dd).reshape(3, q).mean(1))
        stats[f"low{level}"] = {"mean": [0.0], "std": [std_l]}
        stats[f"detail{level}"] = {"mean": [0.0] * 3, "std": std_d.tolist()}
        d_scale = std_d.repeat_interleave(q)
        gain = s_dl @ torch.linalg.inv(s_ll) * std_l  # E[d | low_n]
        cond_cov = (s_dd - s_dl @ torch.linalg.solve(s_ll, s_dl.T)) / torch.outer(d_scale, d_scale)
        half = side // 2

        def model(x, t, c, gain=gain, cond_cov=cond_cov, d_scale=d_scale, half=half):
            mean = (c.double().reshape(len(c), -1) @ gain.T) / d_scale
            return _gaussian_eps(mean, cond_cov, sde, lambda b: (b, 3, half, half))(x, t)
        models[level - 1] = model
        cov_low = s_ll
    coarse = size >> J
    models[J] = lambda x, t, c: _gaussian_eps(torch.zeros(coarse**2, dtype=torch.float64),
                                              cov_low / stats[f"low{J}"]["std"][0] ** 2, sde,
                                              lambda b: (b, 1, coarse, coarse))(x, t)
    xs = cascade(models, stats, spec, n, torch.Generator().manual_seed(0), torch.device("cpu"))
    for k in range(J + 1):
        emp = power_spectrum(xs[k].numpy())
        exact = radial_average(lowpass_spectrum(p, k, "haar"))
        assert np.allclose(emp[1:], exact[1:], rtol=0.12), (k, emp / exact)
