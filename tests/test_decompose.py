import numpy as np
import pytest
import torch
import zarr

from wsgm import wavelets
from wsgm.data import split
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
    src = zarr.open_group(str(data))
    n_train = src.attrs["split"]["train"][1]
    x = torch.from_numpy(src["x"][:n_train])  # only the train rows are decomposed (never the held-out ones)
    assert n_train < src["x"].shape[0]
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
    group.attrs["split"] = split.layout(len(x), 1, 1)


def test_nan_in_data_is_a_clear_error(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    x[3, 0, 2, 2] = np.nan  # a train row (the last 2 are held out)
    _dataset(tmp_path / "d.zarr", x)
    with pytest.raises(StoreError, match="NaN"):
        decompose({"wavelet": "haar", "J": 1}, tmp_path / "d.zarr", tmp_path / "o.zarr")


def test_size_not_divisible_is_a_clear_error(tmp_path):
    _dataset(tmp_path / "d.zarr", np.zeros((4, 1, 12, 12), np.float32))
    with pytest.raises(StoreError, match="not divisible by 2\\^J = 8"):
        decompose({"wavelet": "haar", "J": 3}, tmp_path / "d.zarr", tmp_path / "o.zarr")


@pytest.mark.parametrize("scheduler", ["synchronous", pytest.param("processes", marks=pytest.mark.slow),
                                       pytest.param("local", marks=pytest.mark.slow)])
def test_every_scheduler_writes_the_same_store(tmp_path, tiny_store, scheduler):
    data, store = tiny_store
    out = tmp_path / f"{scheduler}.zarr"
    attrs = decompose({"wavelet": "haar", "J": 2}, data, out, threads=2, scheduler=scheduler)
    ref, new = zarr.open_group(str(store), mode="r"), zarr.open_group(str(out), mode="r")
    for name in ("low1", "low2", "detail1", "detail2"):
        assert np.array_equal(ref[name][:], new[name][:]), name
    assert np.allclose(attrs["stats"]["detail2"]["std"], read_stats(store)["detail2"]["std"], rtol=1e-12)


def test_unknown_scheduler_is_a_clear_error(tmp_path, tiny_store):
    data, _ = tiny_store
    with pytest.raises(StoreError, match="unknown Dask scheduler 'gpu'"):
        decompose({"wavelet": "haar", "J": 1}, data, tmp_path / "o.zarr", scheduler="gpu")


def _count_dwt_calls(monkeypatch, fail_at: int | None = None) -> dict:
    """Wrap the per-chunk DWT to count its calls (and raise OSError on call ``fail_at``)."""
    from wsgm import decompose as dec

    calls = {"n": 0}
    real = dec._dwt_block

    def wrapped(block, wavelet):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError("disk full")
        return real(block, wavelet)

    monkeypatch.setattr(dec, "_dwt_block", wrapped)
    return calls


def test_an_interrupted_decomposition_leaves_no_store(tmp_path, tiny_store, monkeypatch):
    """A failure mid-write (here: a chunk that cannot be transformed) leaves nothing behind."""
    from wsgm import decompose as dec
    from wsgm.provenance import run_stage

    data, _ = tiny_store
    _count_dwt_calls(monkeypatch, fail_at=2)
    out = tmp_path / "store.zarr"
    spec = {"stage": "decompose", "wavelet": "haar", "J": 1, "code": "x"}
    with pytest.raises(OSError, match="disk full"):
        run_stage("decompose", spec, {"data": data}, {"store": (out, True)},
                  lambda t: dec.decompose(spec, data, t["store"], scheduler="synchronous"))
    assert not out.exists() and not list(tmp_path.glob(".store.zarr.tmp-*"))
    assert not (tmp_path / "store.zarr.prov.json").exists()


def test_a_store_without_stats_is_rejected(tmp_path):
    zarr.open_group(str(tmp_path / "s.zarr"), mode="w").create_array("low1", shape=(2, 1, 2, 2), dtype="f4")
    with pytest.raises(StoreError, match="no normalization stats"):
        read_stats(tmp_path / "s.zarr")


def test_each_chunk_is_transformed_once_per_level(tmp_path, tiny_store, monkeypatch):
    """Writing the bands and computing their stats share one DWT per chunk and level."""
    from wsgm import decompose as dec

    data, _ = tiny_store
    calls = _count_dwt_calls(monkeypatch)
    dec.decompose({"wavelet": "haar", "J": 2}, data, tmp_path / "o.zarr", scheduler="synchronous")
    assert calls["n"] == 2 * 2  # 128 images in chunks of 64, two levels
