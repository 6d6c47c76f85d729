"""The held-out split: train, reference and floor rows are disjoint, cover the store, and each stage
reads only its part (decompose the train rows, reference the reference rows, the floors the floor rows)."""

import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.data import split
from wsgm.data.store import StoreError
from wsgm.reference import compute


def test_layout_is_disjoint_and_covers_the_store():
    parts = split.layout(100, 20, 10)
    rows = [set(range(*parts[p])) for p in split.PARTS]
    assert sum(map(len, rows)) == 100 and set.union(*rows) == set(range(100))
    assert all(not (a & b) for i, a in enumerate(rows) for b in rows[i + 1:])
    assert parts == {"train": [0, 70], "reference": [70, 90], "floor": [90, 100]}
    with pytest.raises(StoreError, match="too few to hold out"):
        split.layout(31, 20, 10)


def test_each_stage_reads_only_its_part(tmp_path, tiny_config, tiny_store):
    data, store = tiny_store
    src = zarr.open_group(str(data), mode="r")
    parts = src.attrs["split"]
    ds = tiny_config["datasets"]["tiny"]
    assert parts["train"] == [0, ds["n"]]
    assert parts["floor"][1] - parts["floor"][0] == ds["n_floor"]
    # decompose: the train rows only (its shape, and its statistics are those of these rows)
    dec = zarr.open_group(str(store), mode="r")
    assert dec["low2"].shape[0] == ds["n"] and dec.attrs["part"] == "train"
    # reference: the reference rows only
    spec = specs.reference(tiny_config, "tiny", "haar", 2)
    meta = compute(spec, data, tmp_path / "ref.npz")
    assert meta["part"] == "reference" and meta["rows"] == parts["reference"]
    # the reference's features are those of exactly these rows: a reference of a store whose other
    # rows are scrambled is unchanged
    x = np.asarray(src["x"][:])
    scrambled = tmp_path / "scrambled.zarr"
    g = zarr.open_group(str(scrambled), mode="w")
    arr = g.create_array("x", shape=x.shape, chunks=src["x"].chunks, dtype="float32")
    y = x.copy()
    outside = np.r_[0:parts["reference"][0], parts["reference"][1]:len(x)]
    y[outside] = np.random.default_rng(0).normal(size=y[outside].shape)
    arr[:] = y
    g.attrs["split"] = parts
    compute(spec, scrambled, tmp_path / "s.npz")
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "s.npz")
    assert np.array_equal(a["features0"], b["features0"]) and np.array_equal(a["power0"], b["power0"])


def test_a_store_without_a_split_is_refused_with_the_fix(tmp_path):
    g = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    g.create_array("x", data=torch.zeros(4, 1, 4, 4).numpy())
    with pytest.raises(StoreError, match="no held-out split.*rerun its dataset stage"):
        split.rows(g, "train", tmp_path / "old.zarr")
