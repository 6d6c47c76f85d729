"""Damaged inputs (weights, training checkpoints, reference statistics, .npz datasets) give one
line naming the file and the fix, leave no output behind, and the documented recovery (delete,
rerun the stage) gives bit-identical results; a damaged checkpoint is set aside, not fatal."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest
import torch
import yaml
import zarr

from wsgm import provenance
from wsgm import reference as ref_lib
from wsgm.cli import main
from wsgm.nets.load import ModelError, load_model

from .helpers import REPO

STEPS = 4  # training steps per scale: enough for distinct weights, seconds in all


def _one_error(capsys, cmd: str, *needles: str) -> str:
    """The single `wsgm CMD: error: ...` line of stderr (no traceback), holding ``needles``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"wsgm {cmd}:")]
    assert len(lines) == 1 and lines[0].startswith(f"wsgm {cmd}: error: "), err
    for needle in (*needles, "Fix"):
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err and "weights_only=False" not in err and "allow_pickle=True" not in err
    return lines[0]


def _no_output(out: pathlib.Path) -> None:
    assert not out.exists() and not provenance.record_path(out).exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """A stage output and its provenance record."""
    shutil.copy(src, dst)
    shutil.copy(provenance.record_path(src), provenance.record_path(dst))
    return dst


def _equal_weights(a: pathlib.Path, b: pathlib.Path) -> bool:
    wa, wb = (torch.load(p, weights_only=True) for p in (a, b))
    return wa["losses"] == wb["losses"] and all(torch.equal(wa["ema"][k], wb["ema"][k]) for k in wa["ema"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Config (wsgm: J=2, STEPS steps), dataset, store, the three models, samples and reference,
    all written by the real stages through the CLI."""
    root = tmp_path_factory.mktemp("integrity")
    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["experiments"]["wsgm"]["train"] |= {"steps": STEPS, "checkpoint_every": 2}
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    p = {"root": root, "cfg": str(cfg), "data": root / "data.zarr", "store": root / "store.zarr",
         "models": [root / f"scale{j}.pt" for j in range(3)], "samples": root / "samples.zarr",
         "reference": root / "reference.npz", "metrics": root / "metrics.json"}
    assert main(["dataset", "--config", p["cfg"], "--dataset", "tiny", "--out", str(p["data"])]) == 0
    assert main(["decompose", "--config", p["cfg"], "--experiment", "wsgm", "--data", str(p["data"]),
                 "--out", str(p["store"])]) == 0
    for j, m in enumerate(p["models"]):
        assert main(_train_args(p, j, m, root / f"{j}.ckpt")) == 0
    assert main(_sample_args(p, p["models"], p["samples"])) == 0
    assert main(_reference_args(p, p["reference"])) == 0
    assert main(_evaluate_args(p, p["reference"], p["metrics"])) == 0
    return p


def _train_args(p, j, out, ckpt):
    return ["train", "--config", p["cfg"], "--experiment", "wsgm", "--scale", str(j), "--store",
            str(p["store"]), "--out", str(out), "--checkpoint", str(ckpt)]


def _sample_args(p, models, out):
    return ["sample", "--config", p["cfg"], "--experiment", "wsgm", "--steps", "2", "--store", str(p["store"]),
            "--models", *map(str, models), "--out", str(out)]


def _reference_args(p, out):
    return ["reference", "--config", p["cfg"], "--experiment", "wsgm", "--data", str(p["data"]), "--out", str(out)]


def _evaluate_args(p, reference, out):
    return ["evaluate", "--config", p["cfg"], "--experiment", "wsgm", "--steps", "2", "--samples",
            str(p["samples"]), "--data", str(p["data"]), "--reference", str(reference), "--out", str(out)]


# --- weights ----------------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _damage_weights(path: pathlib.Path, how: str, tmp_path: pathlib.Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == "text":
        path.write_text("this is not a weights file\n")
    elif how == "empty":
        path.write_bytes(b"")
    else:
        weights = torch.load(path, weights_only=True)
        if how == "no ema":
            del weights["ema"]
        elif how == "wrong shapes":
            key = next(iter(weights["ema"]))
            weights["ema"][key] = torch.zeros(3, 5)
        elif how == "pickle":
            weights["ema"] = _Evil(tmp_path / "PWNED")
        torch.save(weights, path)


@pytest.mark.parametrize("how, reason", [
    ("truncated", "truncated or corrupt"), ("random bytes", "truncated or corrupt"),
    ("text", "truncated or corrupt"), ("empty", "truncated or corrupt"), ("no ema", "no 'ema'"),
    ("wrong shapes", "do not fit its network"), ("pickle", "unsafe content refused"),
])
def test_damaged_weights_are_one_model_error_naming_file_and_fix(project, tmp_path, how, reason):
    path = _copy(project["models"][0], tmp_path / "scale0.pt")
    _damage_weights(path, how, tmp_path)
    with pytest.raises(ModelError) as info:
        load_model(path, torch.device("cpu"))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path} is not a readable weights file")
    assert reason in message and f"Fix: delete it (rm {path} {path}.prov.json)" in message
    assert "retrains that scale" in message and "weights_only=False" not in message
    assert not (tmp_path / "PWNED").exists()  # the malicious pickle never ran


def test_sampling_with_a_truncated_model_names_it_and_delete_rerun_recovers(project, tmp_path, capsys):
    models = [_copy(m, tmp_path / m.name) for m in project["models"]]
    _damage_weights(models[0], "truncated", tmp_path)
    out = tmp_path / "samples.zarr"
    capsys.readouterr()
    assert main(_sample_args(project, models, out)) == 2
    # the stage's input check finds it first (its content is not what `wsgm train` wrote); the loader's
    # own message (a file without a record, or read outside a stage) is tested above
    _one_error(capsys, "sample", str(models[0]), "is corrupt", "not what the train stage wrote", "rm ")
    _no_output(out)
    # the recovery the message names: delete the file and its record, retrain that scale, sample again
    models[0].unlink()
    provenance.record_path(models[0]).unlink()
    assert main(_train_args(project, 0, models[0], tmp_path / "0.ckpt")) == 0
    assert _equal_weights(models[0], project["models"][0])
    assert main(_sample_args(project, models, out)) == 0
    assert np.array_equal(zarr.open_group(str(out), mode="r")["x0"][:],
                          zarr.open_group(str(project["samples"]), mode="r")["x0"][:])


# --- training checkpoints ---------------------------------------------------------------------

def _valid_checkpoint(project, ckpt: pathlib.Path, monkeypatch) -> None:
    """The checkpoint a run of scale 2 leaves at its last step (kept by disabling the removal)."""
    from wsgm.train import Checkpoint

    with monkeypatch.context() as m:
        m.setattr(Checkpoint, "remove", lambda self: None)
        assert main(_train_args(project, 2, ckpt.parent / "kept.pt", ckpt)) == 0
    assert ckpt.is_file()


@pytest.mark.parametrize("how", ["random bytes", "truncated", "wrong shapes"])
def test_damaged_checkpoint_is_set_aside_and_training_restarts_to_fresh_weights(
        project, tmp_path, monkeypatch, caplog, how):
    ckpt = tmp_path / "2.ckpt"
    if how == "random bytes":
        ckpt.write_bytes(np.random.default_rng(1).bytes(4096))
    else:
        _valid_checkpoint(project, ckpt, monkeypatch)
        if how == "truncated":
            ckpt.write_bytes(ckpt.read_bytes()[:-1000])
        else:  # the spec matches, the tensors do not (e.g. the net's code changed)
            state = torch.load(ckpt, weights_only=True)
            state["model"][next(iter(state["model"]))] = torch.zeros(3, 5)
            torch.save(state, ckpt)
    damaged = ckpt.read_bytes()
    out = tmp_path / "scale2.pt"
    with caplog.at_level(logging.WARNING, logger="wsgm.train"):
        assert main(_train_args(project, 2, out, ckpt)) == 0
    aside = tmp_path / "2.ckpt.corrupt"
    assert aside.read_bytes() == damaged and not ckpt.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(ckpt) in w and str(aside) in w and "step 0" in w for w in warnings), warnings
    assert _equal_weights(out, project["models"][2])  # the same weights as a fresh run


# --- reference statistics ---------------------------------------------------------------------

@pytest.mark.parametrize("how, reason", [
    ("truncated", "truncated or corrupt"), ("random bytes", "truncated or corrupt"),
    ("no mu1", "incomplete: no mu1"), ("npy", "bare .npy"),
])
def test_damaged_reference_is_one_error_naming_file_and_fix(project, tmp_path, how, reason):
    path = _copy(project["reference"], tmp_path / "reference.npz")
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    elif how == "random bytes":
        path.write_bytes(np.random.default_rng(2).bytes(4096))
    elif how == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    else:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "mu1"}
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    with pytest.raises(ref_lib.ReferenceFileError) as info:
        ref_lib.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path} is not a readable reference statistics file")
    assert reason in message and f"Fix: delete it (rm {path} {path}.prov.json)" in message


def test_evaluate_with_a_truncated_reference_names_it_and_delete_rerun_recovers(project, tmp_path, capsys):
    reference = _copy(project["reference"], tmp_path / "reference.npz")
    reference.write_bytes(reference.read_bytes()[:1000])
    out = tmp_path / "metrics.json"
    capsys.readouterr()
    assert main(_evaluate_args(project, reference, out)) == 2
    _one_error(capsys, "evaluate", str(reference), "is corrupt", "not what the reference stage wrote", "rm ")
    _no_output(out)
    reference.unlink()
    provenance.record_path(reference).unlink()
    assert main(_reference_args(project, reference)) == 0
    assert reference.read_bytes() == project["reference"].read_bytes()
    assert main(_evaluate_args(project, reference, out)) == 0
    new, old = (json.loads(f.read_text()) for f in (out, project["metrics"]))
    del new["evaluate_wall_s"], old["evaluate_wall_s"]
    assert new == old


# --- .npz datasets ----------------------------------------------------------------------------

def _npz_config(tmp_path, source):
    cfg = {"datasets": {"mine": {"kind": "npz", "size": 8, "channels": 1, "chunk": 4, "path": str(source),
                                 "key": "images", "n_test": 2, "n_floor": 2}},
           "experiments": {"e": {"dataset": "mine", "J": 1, "net": {"channel_mult": [1]}, "sampling": {"n_samples": 2}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _write(source: pathlib.Path, how: str) -> None:
    rng = np.random.default_rng(0)
    if how == "complex":
        np.savez(source, images=rng.normal(size=(4, 8, 8)) + 1j * rng.normal(size=(4, 8, 8)))
    elif how == "object":
        np.savez(source, images=np.array([None] * 4, dtype=object))
    elif how == "string":
        np.savez(source, images=np.array(["a", "b"]))
    elif how == "empty":
        np.savez(source, images=np.zeros((0, 8, 8), np.float32))
    elif how == "npy":
        with open(source, "wb") as fh:
            np.save(fh, np.zeros((4, 8, 8)))
    elif how == "text":
        source.write_text("these are not images\n")
    elif how == "truncated":
        np.savez(source, images=rng.normal(size=(4, 8, 8)))
        source.write_bytes(source.read_bytes()[:300])


@pytest.mark.parametrize("how, needles", [
    ("complex", ["images", "complex array", "complex128", "(4, 8, 8)", ".real"]),
    ("object", ["images", "object array"]),
    ("string", ["images", "string array", "<U1"]),
    ("empty", ["images", "empty", "(0, 8, 8)"]),
    ("npy", ["is a .npy file, not .npz", "np.savez("]),
    ("text", ["is not a .npz archive"]),
    ("truncated", ["not a readable .npz archive", "truncated or corrupt"]),
])
def test_bad_npz_input_is_one_line_and_leaves_no_output(tmp_path, capsys, how, needles):
    source = tmp_path / "imgs.npz"
    _write(source, how)
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(_npz_config(tmp_path, source)), "--dataset", "mine",
                 "--out", str(out)]) == 2
    line = _one_error(capsys, "dataset", str(source), *needles)
    assert "pickle" not in line
    _no_output(out)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.bool_, np.float16, np.float64])
def test_real_npz_dtypes_are_converted(tmp_path, dtype):
    imgs = np.random.default_rng(0).integers(0, 2, size=(6, 8, 8)).astype(dtype)  # 2 train + 2 + 2 held out
    source = tmp_path / "imgs.npz"
    np.savez(source, images=imgs)
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(_npz_config(tmp_path, source)), "--dataset", "mine",
                 "--out", str(out)]) == 0
    assert np.array_equal(zarr.open_group(str(out), mode="r")["x"][:, 0], imgs.astype(np.float32))
