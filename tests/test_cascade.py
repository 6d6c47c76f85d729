import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.cascade import run, steps_per_scale
from wsgm.cli import run_stage
from wsgm.train import train


@pytest.fixture
def tiny_models(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    paths = []
    for j in range(3):
        spec = specs.train(tiny_config, "wsgm", j)
        spec["train"] = {**spec["train"], "steps": 5}
        out = tmp_path / f"scale{j}.pt"
        run_stage("train", spec, {"store": store}, {"weights": (out, False)},
                  lambda t, spec=spec, j=j: train(spec, store, t["weights"], tmp_path / f"{j}.ckpt",
                                                  torch.device("cpu")))
        paths.append(out)
    return store, paths


def test_cascade_writes_every_resolution_deterministically(tmp_path, tiny_config, tiny_models):
    store, models = tiny_models
    spec = specs.sample(tiny_config, "wsgm", 3)
    spec["sampling"] = {**spec["sampling"], "n_samples": 10, "batch_size": 4}  # 3 batches
    outs = []
    for name in ("a.zarr", "b.zarr"):
        summary = run(spec, store, models, tmp_path / name, torch.device("cpu"))
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
        run(specs.sample(tiny_config, "wsgm", 2), store, models[:2], tmp_path / "x.zarr", torch.device("cpu"))


def test_steps_per_scale():
    assert steps_per_scale(4, 2) == [4, 4, 4]
    assert steps_per_scale([1, 2, 3], 2) == [1, 2, 3]
    with pytest.raises(ValueError):
        steps_per_scale([1, 2], 2)
