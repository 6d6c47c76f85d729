import os
import threading
import time

import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.train import Interrupted, TrainingError, load_model, train


def _spec(cfg, exp="wsgm", scale=2, **train_overrides):
    spec = specs.train(cfg, exp, scale)
    spec["train"] = {**spec["train"], **train_overrides}
    return spec


def test_loss_decreases(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    spec = _spec(tiny_config, scale=1, steps=150, log_every=50)
    summary = train(spec, store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    # zero-initialized output: the epsilon loss starts at E[z^2] = 1
    assert 0.8 < summary["loss_start"] < 1.2
    assert summary["loss_end"] < 0.75 * summary["loss_start"]
    assert not (tmp_path / "ck.pt").exists()  # the checkpoint is removed once the weights exist
    model, weights = load_model(tmp_path / "w.pt", torch.device("cpu"))
    assert weights["spec"] == spec and len(weights["losses"]) == 150


def test_interrupted_run_resumes_to_identical_weights(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    spec = _spec(tiny_config, steps=400, checkpoint_every=40)
    device = torch.device("cpu")
    train(spec, store, tmp_path / "straight.pt", tmp_path / "a.ckpt", device)

    ckpt = tmp_path / "b.ckpt"

    def send_sigterm_after_first_checkpoint():
        while not ckpt.exists():
            time.sleep(0.001)
        os.kill(os.getpid(), 15)

    killer = threading.Thread(target=send_sigterm_after_first_checkpoint)
    killer.start()
    with pytest.raises(Interrupted, match="checkpoint saved"):
        train(spec, store, tmp_path / "resumed.pt", ckpt, device)
    killer.join()
    assert ckpt.exists() and not (tmp_path / "resumed.pt").exists()
    summary = train(spec, store, tmp_path / "resumed.pt", ckpt, device)
    assert 0 < summary["resumed_from"] < 400
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["losses"] == b["losses"]
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key


def test_checkpoint_of_another_spec_is_ignored(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    spec = _spec(tiny_config, steps=20, checkpoint_every=5)
    torch.save({"spec_hash": "something else"}, tmp_path / "ck.pt")
    summary = train(spec, store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    assert summary["resumed_from"] == 0


def test_nan_loss_names_the_step(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    group = zarr.open_group(str(store), mode="r+")
    group["low2"][:] = np.nan
    with pytest.raises(TrainingError, match="at step 0"):
        train(_spec(tiny_config, steps=5), store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    assert not (tmp_path / "w.pt").exists()
