"""Tests for the periodized orthonormal 2-D DWT against PyWavelets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch

from wsgm.wavelets import check_levels, dwt2, idwt2, wavedec2, waverec2

WAVELETS = ["haar", "db2", "db4"]
SHAPES = [(2, 3, 16, 16), (1, 2, 8, 32)]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _random(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _pywt_wavedec2(x: np.ndarray, wavelet: str, levels: int) -> list:
    with warnings.catch_warnings():  # pywt warns when levels exceed its "useful" maximum
        warnings.simplefilter("ignore")
        return pywt.wavedec2(x, wavelet, mode="periodization", level=levels, axes=(-2, -1))


def _maxdiff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.double().numpy() - b).max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt2_matches_pywt(wavelet: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = _random(shape)
    c = shape[1]
    low, details = dwt2(torch.from_numpy(x).to(dtype), wavelet)
    ref_low, (c_h, c_v, c_d) = pywt.dwt2(x, wavelet, mode="periodization", axes=(-2, -1))
    assert low.dtype == dtype and details.dtype == dtype
    assert low.shape == (shape[0], c, shape[2] // 2, shape[3] // 2)
    assert details.shape == (shape[0], 3 * c, shape[2] // 2, shape[3] // 2)
    assert _maxdiff(low, ref_low) < TOL[dtype]
    assert _maxdiff(details[:, :c], c_h) < TOL[dtype]
    assert _maxdiff(details[:, c : 2 * c], c_v) < TOL[dtype]
    assert _maxdiff(details[:, 2 * c :], c_d) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_idwt2_matches_pywt(wavelet: str, dtype: torch.dtype) -> None:
    low_np, det_np = _random((2, 3, 4, 8), seed=1), _random((2, 9, 4, 8), seed=2)
    ref = pywt.idwt2(
        (low_np, (det_np[:, :3], det_np[:, 3:6], det_np[:, 6:])), wavelet, mode="periodization", axes=(-2, -1)
    )
    out = idwt2(torch.from_numpy(low_np).to(dtype), torch.from_numpy(det_np).to(dtype), wavelet)
    assert out.dtype == dtype and out.shape == (2, 3, 8, 16)
    assert _maxdiff(out, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec2_matches_pywt(wavelet: str, shape: tuple[int, ...], levels: int, dtype: torch.dtype) -> None:
    x = _random(shape, seed=3)
    c = shape[1]
    low, details = wavedec2(torch.from_numpy(x).to(dtype), wavelet, levels)
    ref = _pywt_wavedec2(x, wavelet, levels)  # [cA_J, (cH_J, cV_J, cD_J), ..., (cH_1, cV_1, cD_1)]
    assert len(details) == levels
    assert _maxdiff(low, ref[0]) < TOL[dtype]
    for k, d in enumerate(details, start=1):  # details[0] is the finest level
        assert d.shape[-2:] == (shape[2] // 2**k, shape[3] // 2**k)
        assert _maxdiff(d, np.concatenate(ref[levels - k + 1], axis=1)) < TOL[dtype]
    assert details[0].shape[1] == 3 * c


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_filter_longer_than_signal_matches_pywt(wavelet: str) -> None:
    """Coarse levels where the filter wraps around the period more than once."""
    x = _random((1, 2, 8, 16), seed=4)
    low, details = wavedec2(torch.from_numpy(x), wavelet, levels=3)  # coarsest 1 x 2
    ref = _pywt_wavedec2(x, wavelet, 3)
    assert _maxdiff(low, ref[0]) < 1e-10
    assert _maxdiff(details[-1], np.concatenate(ref[1], axis=1)) < 1e-10
    assert _maxdiff(waverec2(low, details, wavelet), x) < 1e-10


@pytest.mark.parametrize("levels", [0, 1, 3])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_perfect_reconstruction(wavelet: str, levels: int) -> None:
    x = torch.randn(2, 3, 16, 32, generator=torch.Generator().manual_seed(5))
    low, details = wavedec2(x, wavelet, levels)
    rec = waverec2(low, details, wavelet)
    assert rec.dtype == torch.float32 and rec.shape == x.shape
    assert (rec - x).abs().max().item() < 1e-5


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_energy_preserved(wavelet: str) -> None:
    x = torch.randn(2, 3, 32, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    low, details = wavedec2(x, wavelet, levels=3)
    energy = low.square().sum() + sum(d.square().sum() for d in details)
    assert abs(energy.item() / x.square().sum().item() - 1.0) < 1e-12


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_constant_image_low_pass_gain(wavelet: str) -> None:
    value = 0.7
    x = torch.full((1, 2, 16, 16), value, dtype=torch.float64)
    for k in range(1, 4):
        low, details = wavedec2(x, wavelet, levels=k)
        assert (low - value * 2**k).abs().max().item() < 1e-12
        for d in details:
            assert d.abs().max().item() < 1e-12


def test_errors() -> None:
    with pytest.raises(ValueError, match="even"):
        dwt2(torch.zeros(1, 1, 7, 8))
    with pytest.raises(ValueError, match="even"):
        dwt2(torch.zeros(1, 1, 8, 5))
    with pytest.raises(ValueError, match="divisible"):
        wavedec2(torch.zeros(1, 1, 12, 16), levels=3)
    with pytest.raises(ValueError, match="divisible"):
        wavedec2(torch.zeros(1, 1, 16, 20), levels=3)
    with pytest.raises(ValueError):
        dwt2(torch.zeros(8, 8))
    with pytest.raises(ValueError):
        idwt2(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError):
        check_levels(8, 4)
    with pytest.raises(ValueError):
        check_levels(8, -1)
    check_levels(8, 3)
    x = torch.randn(1, 1, 6, 10)
    low, details = wavedec2(x, levels=0)
    assert low is x and details == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_cuda_matches_cpu(wavelet: str) -> None:
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    low, details = wavedec2(x.cuda(), wavelet, levels=2)
    assert low.is_cuda and all(d.is_cuda for d in details)
    ref_low, ref_details = wavedec2(x, wavelet, levels=2)
    torch.testing.assert_close(low.cpu(), ref_low)
    for d, r in zip(details, ref_details):
        torch.testing.assert_close(d.cpu(), r)
    torch.testing.assert_close(waverec2(low, details, wavelet).cpu(), x)


def test_haar_fast_path_equals_the_filter_bank():
    """'haar' takes a sums-and-differences path; 'db1' (the same wavelet) the generic filter bank."""
    x = torch.randn(3, 2, 8, 16, dtype=torch.float64)
    low_h, det_h = dwt2(x, "haar")
    low_d, det_d = dwt2(x, "db1")
    assert torch.allclose(low_h, low_d, atol=1e-12) and torch.allclose(det_h, det_d, atol=1e-12)
    assert torch.allclose(idwt2(low_h, det_h, "haar"), idwt2(low_h, det_h, "db1"), atol=1e-12)
