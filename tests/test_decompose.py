import numpy as np
import pytest
import torch
import zarr

from wsgm import wavelets
from wsgm.data.store import StoreError, create_array
from wsgm.decompose import decompose, merge_stats, read_stats, _block_stats


def test_merge_stats_equals_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(100, 2, 4, 4)).astype(np.float32)
    parts = [_block_stats(x[i:i + 7]) for i in range(0, 100, 7)]
    mean, std = merge_stats(parts)
    assert np.allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), atol=1e-12)
    assert np.allclose(std, x.astype(np.float64).std(axis=(0, 2, 3)), atol=1e-12)


def test_store_matches_wavedec2_and_stats(tiny_store):
    data, store = tiny_store
    x = torch.from_numpy(zarr.open_group(str(data))["x"][:])
    low, details = wavelets.wavedec2(x, "haar", levels=2)
    group = zarr.open_group(str(store), mode="r")
    assert np.allclose(group["low2"][:], low.numpy(), atol=1e-5)
    for k, d in enumerate(details, start=1):
        assert np.allclose(group[f"detail{k}"][:], d.numpy(), atol=1e-5)
    stats = read_stats(store)
    assert np.allclose(stats["detail1"]["std"], details[0].double().numpy().std(axis=(0, 2, 3)), rtol=1e-5)
    assert np.allclose(stats["low2"]["mean"], low.double().numpy().mean(axis=(0, 2, 3)), atol=1e-5)
    # perfect reconstruction from the stored bands
    rec = wavelets.waverec2(torch.from_numpy(group["low2"][:]),
                            [torch.from_numpy(group["detail1"][:]), torch.from_numpy(group["detail2"][:])])
    assert torch.allclose(rec, x, atol=1e-5)


def _dataset(path, x):
    group = zarr.open_group(str(path), mode="w")
    arr = create_array(group, "x", x.shape, 4)
    arr[:] = x


def test_nan_in_data_is_a_clear_error(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    x[3, 0, 2, 2] = np.nan
    _dataset(tmp_path / "d.zarr", x)
    with pytest.raises(StoreError, match="NaN"):
        decompose({"wavelet": "haar", "J": 1}, tmp_path / "d.zarr", tmp_path / "o.zarr")


def test_size_not_divisible_is_a_clear_error(tmp_path):
    _dataset(tmp_path / "d.zarr", np.zeros((4, 1, 12, 12), np.float32))
    with pytest.raises(StoreError, match="not divisible by 2\\^J = 8"):
        decompose({"wavelet": "haar", "J": 3}, tmp_path / "d.zarr", tmp_path / "o.zarr")
