import os
import threading
import time

import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.nets.load import load_model
from wsgm.train import Interrupted, TrainingError, train


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


@pytest.mark.slow
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


def test_checkpoint_of_another_experiment_is_refused_by_name(tmp_path, tiny_config, tiny_store, caplog):
    _, store = tiny_store
    torch.save({"spec_hash": "0123456789abcdef", "experiment": "sgm", "scale": 0}, tmp_path / "ck.pt")
    with caplog.at_level("WARNING", logger="wsgm.train"):
        summary = train(_spec(tiny_config, steps=5), store, tmp_path / "w.pt", tmp_path / "ck.pt",
                        torch.device("cpu"))
    assert summary["resumed_from"] == 0
    assert "'sgm' scale 0" in caplog.text and "'wsgm' scale 2" in caplog.text and "refusing" in caplog.text


@pytest.mark.parametrize("kind", ["score", "x0", "edm"])
def test_parameterizations_learn_and_load_as_eps(tmp_path, tiny_config, tiny_store, kind):
    """A net trained in any parameterization, loaded by load_model, predicts ε better than 0 does."""
    from wsgm import sde as sde_lib
    from wsgm.bands import band_pair, normalize
    from wsgm.decompose import read_stats

    _, store = tiny_store
    spec = _spec(tiny_config, steps=150, log_every=50, lr=5e-3)
    spec["net"] = {**spec["net"], "parameterization": kind}
    train(spec, store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    model, weights = load_model(tmp_path / "w.pt", torch.device("cpu"))
    assert weights["spec"]["net"]["parameterization"] == kind
    name, _ = band_pair(2, 2)
    x0 = normalize(torch.from_numpy(np.asarray(zarr.open_group(str(store))[name][:])), read_stats(store)[name])
    sde = sde_lib.build(spec["sde"])
    gen = torch.Generator().manual_seed(5)
    t = 0.2 + 0.8 * torch.rand(len(x0), generator=gen, dtype=torch.float64)
    m, s = (v.float().view(-1, 1, 1, 1) for v in sde.marginal(t))
    z = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        mse = float((model(m * x0 + s * z, t.float()) - z).pow(2).mean())
    assert mse < 0.9, mse


def test_edm_training_reduces_the_loss(tmp_path, tiny_config, tiny_store):
    """EDM as a whole (preconditioning, log-normal σ, λ(σ) weighting) on the tiny coarsest band: the
    zero-initialized F makes the first loss E|F*|² = 1 for unit-variance data (σ_d = 1), and a few
    steps lower it."""
    _, store = tiny_store
    spec = _spec(tiny_config, steps=60, log_every=20, lr=5e-3, weighting="edm")
    spec["net"] = {**spec["net"], "parameterization": "edm", "sigma_data": 1.0}
    spec["sde"] = {**spec["sde"], "time_law": "edm", "p_mean": -1.2, "p_std": 1.2}
    summary = train(spec, store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    assert summary["parameterization"] == "edm"
    assert 0.7 < summary["loss_start"] < 1.4, summary
    assert summary["loss_end"] < 0.8 * summary["loss_start"], summary


def test_likelihood_weighting_weighs_by_g2_over_s2(tmp_path, tiny_config, tiny_store):
    _, store = tiny_store
    spec = _spec(tiny_config, steps=3, weighting="likelihood")
    summary = train(spec, store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    # zero-initialized output: step 0's loss is the batch mean of g²/s² |z|², ≫ 1 for VP
    assert summary["loss_start"] > 3 and np.isfinite(summary["loss_end"])


def test_loss_curve_sidecar(tmp_path, tiny_config, tiny_store):
    from wsgm.train import loss_curve_path, write_loss_curve

    _, store = tiny_store
    train(_spec(tiny_config, steps=7), store, tmp_path / "w.pt", tmp_path / "ck.pt", torch.device("cpu"))
    path = write_loss_curve(tmp_path / "w.pt")
    assert path == loss_curve_path(tmp_path / "w.pt") == tmp_path / "w.loss.csv"
    rows = path.read_text().splitlines()
    assert rows[0] == "step,loss" and len(rows) == 8 and rows[-1].startswith("7,")


def test_chunk_batches_stream(tiny_store):
    """Batches are normalized store rows, read whole chunks at a time; resuming skips exactly;
    DDP ranks split every global batch; an epoch visits every row."""
    from wsgm.batches import ChunkBatches, normalize
    from wsgm.decompose import read_stats

    _, store = tiny_store
    group = zarr.open_group(str(store))
    stats = read_stats(store)
    target = normalize(torch.from_numpy(np.asarray(group["detail2"][:])), stats["detail2"])
    cond = normalize(torch.from_numpy(np.asarray(group["low2"][:])), stats["low2"])
    ds = ChunkBatches(store, 2, 1, 16, seed=7)
    assert ds.n == 128 and ds.chunk == 64 and ds.window == 2
    stream = iter(ds)
    batches = [next(stream) for _ in range(16)]  # two epochs of 8 batches
    seen = torch.cat([b[0] for b in batches[:8]])
    rows = [int(torch.nonzero((target == r).flatten(1).all(1))[0]) for r in seen]
    assert sorted(rows) == list(range(128))  # every row once per epoch
    for (x, c), r in zip([(b[0][i], b[1][i]) for b in batches[:8] for i in range(16)], rows):
        assert torch.equal(c, cond[r])  # the cond is the target's own low-pass
    resumed = iter(ChunkBatches(store, 2, 1, 16, seed=7, start=11))
    for k in range(11, 16):
        assert torch.equal(next(resumed)[0], batches[k][0])
    halves = [next(iter(ChunkBatches(store, 2, 1, 16, seed=7, rank=r, world=2)))[0] for r in (0, 1)]
    assert torch.equal(torch.stack(halves, 1).flatten(0, 1), batches[0][0])


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path, tiny_store):
    """torchrun --nproc_per_node 2 (gloo): rank 0 alone writes the weights, record and loss curve."""
    import subprocess
    import sys

    from .helpers import REPO

    _, store = tiny_store
    out = tmp_path / "w.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "wsgm", "train", "--config", str(REPO / "config" / "test.yaml"), "--experiment", "wsgm",
           "--scale", "2", "--store", str(store), "--out", str(out), "--checkpoint", str(tmp_path / "ck.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = torch.load(out, weights_only=True)
    assert len(weights["losses"]) == 30 and all(np.isfinite(weights["losses"]))
    assert (tmp_path / "w.loss.csv").exists() and (tmp_path / "w.pt.prov.json").exists()
    assert "world_size" in (tmp_path / "w.pt.prov.json").read_text()
