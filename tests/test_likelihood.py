"""Bits/dim of whole images, SGM and WSGM, against the closed-form Gaussian log-density."""

import json
import math

import numpy as np
import zarr
import pytest
import torch

from wsgm import sde as sde_lib
from wsgm import wavelets
from wsgm.data.gaussian import power_spectrum, sample as gaussian_sample
from wsgm.likelihood import BIN_8BIT, LikelihoodError, bits_per_dim, check_orthonormal
from wsgm.metrics.gaussian import log_density
from wsgm.nets.exact import exact_models

SIZE = 8
AMPLITUDE = 2.0  # pixel std: makes the normalization Jacobians large, even at J = 0
SDE = {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}


def _field(n, seed, channels=1):
    p = AMPLITUDE**2 * power_spectrum(SIZE, 8.0, 2.0)
    return p, torch.from_numpy(gaussian_sample(p, n, channels, np.random.default_rng(seed))).double()


def _stats(J, channels=1):
    """Per-band, per-channel mean/std as decompose computes them (from another draw of the field)."""
    _, big = _field(4000, 1, channels)
    lows, stats = [big], {"low0": {"mean": big.mean((0, 2, 3)).tolist(), "std": big.std((0, 2, 3)).tolist()}}
    for k in range(1, J + 1):
        low, d = wavelets.dwt2(lows[-1], "haar")
        lows.append(low)
        stats[f"low{k}"] = {"mean": low.mean((0, 2, 3)).tolist(), "std": low.std((0, 2, 3)).tolist()}
        stats[f"detail{k}"] = {"mean": d.mean((0, 2, 3)).tolist(), "std": d.std((0, 2, 3)).tolist()}
    return stats


def _closed_form_bits(p, x):
    """-log2 p(x) / D for independent channels, each the circulant Gaussian with symbol p."""
    xh, P, c = torch.fft.fft2(x), torch.from_numpy(p), x.shape[1]
    logp = -0.5 * ((xh.abs() ** 2 / P).sum((1, 2, 3)) / SIZE**2 + c * torch.log(P).sum()
                   + c * SIZE**2 * math.log(2 * math.pi))
    return -logp / (c * SIZE**2 * math.log(2))


def _bits(J, x, p, **kw):
    sde = sde_lib.build(SDE)
    stats = _stats(J, x.shape[1])
    return bits_per_dim(exact_models(p, stats, J, "haar", sde, x.shape[1]), stats, J, "haar", sde, x,
                        generator=torch.Generator().manual_seed(2), **kw)


@pytest.mark.parametrize("J,channels", [(0, 1), (1, 1), (2, 1), pytest.param(1, 3, marks=pytest.mark.slow)])
def test_bits_per_dim_equal_the_closed_form_for_sgm_and_wsgm(J, channels):
    """Exact scores and exact divergence: SGM and WSGM give the field's own log-density per image.
    Every scale's term and every normalization Jacobian is > 2% of the total, so dropping any one
    of them breaks the 1% bound."""
    p, x = _field(16, 0, channels)
    exact = _closed_form_bits(p, x)
    assert np.allclose(-log_density(p, x.numpy()) / (x[0].numel() * math.log(2)), exact.numpy())
    bits, terms = _bits(J, x, p, estimator="exact")
    assert [t["scale"] for t in terms] == list(range(J, -1, -1))
    assert float((bits.mean() - exact.mean()).abs() / exact.mean()) < 0.01
    assert torch.allclose(bits, exact, atol=0.005)
    assert torch.allclose(sum(t["bits_per_dim"] for t in terms), bits)
    total = float(exact.mean())
    for t in terms:
        jac_bits = -t["log_jacobian"] / (x[0].numel() * math.log(2))
        scale_bits = float(t["bits_per_dim"].mean())
        for part in (jac_bits, scale_bits - jac_bits, scale_bits if J > 0 else total):
            assert abs(part) > 0.02 * total, (t["band"], jac_bits, scale_bits)


def test_hutchinson_bits_per_dim_match_the_closed_form_on_average():
    p, x = _field(128, 0)
    exact = _closed_form_bits(p, x)
    bits, terms = _bits(2, x, p, estimator="rademacher", probes=2)
    print("relative error", float((bits.mean() - exact.mean()) / exact.mean()), "nfe", [t["nfe"] for t in terms])
    assert float((bits.mean() - exact.mean()).abs() / exact.mean()) < 0.03
    assert float((bits - exact).abs().mean()) > 1e-4  # the probes are random, not the exact trace


@pytest.mark.slow
def test_dequantization_adds_the_bin_term():
    """Bins of 2/255 (8-bit data in [-1, 1]): the bound is the continuous bits/dim plus log2(127.5)."""
    p, x = _field(16, 0)
    plain, _ = _bits(1, x, p, estimator="exact")
    deq, _ = _bits(1, x, p, estimator="exact", bin_width=BIN_8BIT)
    assert float(deq.mean() - plain.mean()) == pytest.approx(math.log2(127.5), abs=0.01)


def test_a_non_orthonormal_wavelet_is_refused():
    with pytest.raises(LikelihoodError, match="not orthonormal"):
        check_orthonormal("bior2.2", (1, 1, 8, 8), 1)
    check_orthonormal("db2", (1, 3, 8, 8), 2)  # orthonormal: accepted


def test_cli_writes_bits_per_dim_with_provenance(tmp_path, tiny_config, tiny_store, capsys):
    from .helpers import REPO, train_tiny_models
    from wsgm.cli import main

    data, store = tiny_store
    models = [str(m) for m in train_tiny_models(tiny_config, store, tmp_path, steps=2)]
    out = tmp_path / "lik.json"
    args = ["likelihood", "--config", str(REPO / "config" / "test.yaml"), "--experiment", "wsgm",
            "--data", str(data), "--store", str(store), "--models", *models, "--n", "3", "--bin-width", "0.01"]
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    f0 = zarr.open_group(str(data), mode="r").attrs["split"]["floor"][0]
    assert result["images"] == {"source": str(data), "part": "floor", "offset": 0, "n": 3,
                                "rows": [f0, f0 + 3]}  # the first 3 held-out floor images
    assert [s["scale"] for s in result["per_scale"]] == [2, 1, 0]
    deq = result["dequantization"]["bits_per_dim"]
    assert deq == pytest.approx(-math.log2(0.01))
    assert sum(s["bits_per_dim"] for s in result["per_scale"]) + deq == pytest.approx(result["bits_per_dim"])
    assert np.mean(result["per_image_bits_per_dim"]) == pytest.approx(result["bits_per_dim"])
    assert all(math.isfinite(v) for v in result["per_image_bits_per_dim"])
    assert 0 < result["exact_bits_per_dim"] < 3  # the true law of these (tiny Gaussian) images
    assert result["nfe"] == sum(s["nfe"] for s in result["per_scale"]) > 0
    record = json.loads((tmp_path / "lik.json.prov.json").read_text())
    assert record["stage"] == "likelihood"
    # a user error: one line, exit 2, no output
    bad = tmp_path / "bad.json"
    capsys.readouterr()
    assert main([*args, "--offset", "127", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "lower --n or --offset" in err and len(err.splitlines()) == 1 and not bad.exists()
