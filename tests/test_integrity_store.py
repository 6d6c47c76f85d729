"""Integrity: damaged provenance records and damaged Zarr chunks are reported, never used.

A truncated or foreign record is one error naming the file and the fix (audit: CORRUPT, exit 1);
every stage re-hashes its inputs against their records before it runs; every chunk we write
carries a zstd checksum, and a damaged chunk is one StoreError naming the store and the array.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import zarr

from wsgm import provenance, specs
from wsgm.cli import main
from wsgm.data.store import StoreError, open_group, read_array

from .helpers import REPO, make_project, snakemake

CONFIG = str(REPO / "config" / "test.yaml")


def _chunk(store, array: str):
    """The first chunk file of ``array`` in ``store``."""
    return sorted(p for p in (store / array / "c").rglob("*") if p.is_file())[0]


def _flip(path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGE = {"flipped byte": _flip, "truncated": _truncate}


def _error_line(capsys, cmd: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"wsgm {cmd}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _train_args(tmp_path, store, steps: int = 2):
    from wsgm import config as config_lib

    spec = specs.train(config_lib.load(CONFIG), "wsgm", 0)
    spec["train"] = {**spec["train"], "steps": steps}
    out, ckpt = tmp_path / "models" / "scale0.pt", tmp_path / "models" / "0.ckpt"
    return ["train", "--spec", json.dumps(spec), "--store", str(store), "--out", str(out),
            "--checkpoint", str(ckpt)], out, ckpt


# --- records ----------------------------------------------------------------------------------

def test_truncated_record_is_corrupt_in_audit(tiny_store, capsys):
    data, store = tiny_store
    rec = provenance.record_path(store)
    rec.write_bytes(rec.read_bytes()[:500])  # head -c 500 X.prov.json > t && mv t X.prov.json
    assert main(["audit", str(store)]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    line = next(line for line in out.splitlines() if line.startswith("CORRUPT"))
    assert str(rec) in line and "damaged" in line and "snakemake" in line
    assert "audit: FAILED" in out


def test_damaged_input_record_is_corrupt_in_audit_and_the_walk_goes_on(tiny_store, capsys):
    data, store = tiny_store
    rec = provenance.record_path(data)
    rec.write_text(json.dumps({"hello": "world"}))  # JSON, but not a record
    assert main(["audit", str(store), str(data)]) == 1
    out = capsys.readouterr().out
    assert "[decompose]" in out  # the store itself is still listed
    corrupt = [line for line in out.splitlines() if line.strip().startswith("CORRUPT")]
    assert len(corrupt) == 2 and all(str(rec) in line and "not a wsgm provenance record" in line
                                     for line in corrupt), out


@pytest.mark.parametrize("content", [b"", b"{\"stage\": \"decomp", b"\xff\xfe not utf-8", b"[1, 2]"])
def test_read_record_raises_one_record_error(tiny_store, content):
    _, store = tiny_store
    provenance.record_path(store).write_bytes(content)
    with pytest.raises(provenance.RecordError, match=str(provenance.record_path(store))) as info:
        provenance.read_record(store)
    assert "rm -r" in str(info.value) and "snakemake" in str(info.value)


def test_stage_with_a_damaged_input_record_stops_and_writes_nothing(tiny_store, tmp_path, capsys):
    data, _ = tiny_store
    rec = provenance.record_path(data)
    rec.write_bytes(rec.read_bytes()[:500])
    out = tmp_path / "again" / "haar_J2.zarr"
    assert main(["decompose", "--config", CONFIG, "--experiment", "wsgm", "--data", str(data),
                 "--out", str(out)]) == 2
    line = _error_line(capsys, "decompose")
    assert f"{rec} is damaged" in line
    assert f"rm -r {data} {rec}" in line and "snakemake --forcerun make_dataset" in line
    assert not out.exists() and not provenance.record_path(out).exists()
    assert not list(out.parent.glob(".*tmp-*")) if out.parent.exists() else True


# --- chunks -----------------------------------------------------------------------------------

def test_every_array_we_write_has_chunk_checksums(tiny_store):
    data, store = tiny_store
    metas = [json.loads(p.read_text()) for s in (data, store) for p in s.rglob("zarr.json")]
    arrays = [m for m in metas if m["node_type"] == "array"]
    assert {"x", "spectrum"} <= {p.parent.name for p in data.rglob("zarr.json")}
    assert len(arrays) == 2 + 4  # data: x, spectrum; store: low2, detail1, detail2, low1
    for meta in arrays:
        zstd = [c for c in meta["codecs"] if c["name"] == "zstd"]
        assert zstd and zstd[0]["configuration"]["checksum"] is True, meta


def test_checksummed_chunks_hold_the_same_values(tmp_path):
    from wsgm.data.store import create_array

    x = np.random.default_rng(0).standard_normal((10, 2, 8, 8)).astype(np.float32)
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").create_array(
        "x", shape=x.shape, chunks=(4, 2, 8, 8), dtype="float32", fill_value=0)
    plain[:] = x
    checked = create_array(zarr.open_group(str(tmp_path / "checked.zarr"), mode="w"), "x", x.shape, 4)
    checked[:] = x
    a, b = (sorted((p / "x" / "c").rglob("*")) for p in (tmp_path / "plain.zarr", tmp_path / "checked.zarr"))
    for pa, pb in zip(a, b):
        if pa.is_file():
            assert pb.stat().st_size == pa.stat().st_size + 4  # the xxhash64 content checksum (4 bytes)
    assert np.array_equal(read_array(tmp_path / "checked.zarr", "x"), x)
    assert np.array_equal(read_array(tmp_path / "plain.zarr", "x"), x)


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_chunk_is_one_store_error_on_every_read_path(tiny_store, damage):
    from wsgm.batches import ChunkBatches

    data, store = tiny_store
    DAMAGE[damage](_chunk(store, "low2"))
    with pytest.raises(StoreError, match=f"{store}: array 'low2' has a corrupt chunk") as info:
        read_array(store, "low2")
    assert "snakemake --forcerun decompose" in str(info.value) and "rm -r" in str(info.value)
    with pytest.raises(StoreError, match=f"{store}: array 'low2'"):
        next(iter(ChunkBatches(store, 2, 2, 16, seed=0)))
    with pytest.raises(StoreError, match=f"{store}: array 'low2'"):
        np.asarray(open_group(store, "low2")["low2"][:1])


@pytest.mark.parametrize("damage", DAMAGE)
def test_training_itself_refuses_a_damaged_chunk(tiny_store, tmp_path, damage):
    """Even past the input verification (a store without our record check, a torchrun rank > 0):
    the chunk checksum stops training with the StoreError, and no weights are written."""
    from wsgm.train import train

    _, store = tiny_store
    DAMAGE[damage](_chunk(store, "low2"))
    args, out, ckpt = _train_args(tmp_path, store)
    spec = json.loads(args[2])
    spec["scale"] = 2  # the coarsest model reads low2
    with pytest.raises(StoreError, match=f"{store}: array 'low2'"):
        train(spec, store, out, ckpt, torch.device("cpu"))
    assert not out.exists()


def test_a_damaged_dataset_chunk_stops_decompose(tiny_store, tmp_path, capsys):
    data, _ = tiny_store
    _flip(_chunk(data, "x"))
    provenance.record_path(data).write_text(json.dumps(  # as if the record matched the damage
        {**json.loads(provenance.record_path(data).read_text()), "output": {
            "path": str(data), "hash": provenance.content_hash(data)}}))
    out = tmp_path / "again.zarr"
    assert main(["decompose", "--config", CONFIG, "--experiment", "wsgm", "--data", str(data),
                 "--out", str(out)]) == 2
    line = _error_line(capsys, "decompose")
    assert f"{data}: array 'x' has a corrupt chunk" in line and "checksum" in line
    assert not out.exists() and not list(tmp_path.glob(".again.zarr.tmp-*"))


# --- verified inputs --------------------------------------------------------------------------

@pytest.mark.parametrize("damage", DAMAGE)
def test_training_refuses_a_damaged_store_and_the_recovery_rebuilds_it_bit_identical(
        tiny_store, tmp_path, capsys, damage):
    data, store = tiny_store
    original = provenance.content_hash(store)
    DAMAGE[damage](_chunk(store, "detail1"))
    args, out, ckpt = _train_args(tmp_path, store)
    assert main(args) == 2
    line = _error_line(capsys, "train")
    assert f"{store} is corrupt" in line
    assert f"rm -r {store} {provenance.record_path(store)}" in line
    assert "snakemake --forcerun decompose" in line
    assert not out.exists() and not provenance.record_path(out).exists() and not ckpt.exists()

    # the documented recovery: delete the store and its record, rerun the stage that makes it
    shutil.rmtree(store)
    provenance.record_path(store).unlink()
    assert main(["decompose", "--config", CONFIG, "--experiment", "wsgm", "--data", str(data),
                 "--out", str(store)]) == 0
    assert provenance.content_hash(store) == original
    assert main(args) == 0 and out.is_file()


def test_an_input_whose_output_is_gone_is_named(tiny_store, tmp_path, capsys):
    _, store = tiny_store
    shutil.rmtree(store)
    args, out, _ = _train_args(tmp_path, store)
    assert main(args) == 2
    line = _error_line(capsys, "train")
    assert f"{store} is missing (its record" in line and "snakemake --forcerun decompose" in line


@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_stops_on_a_damaged_store_and_the_documented_recovery_works(tmp_path):
    from wsgm import config as config_lib

    root = make_project(tmp_path / "proj")
    cfg = config_lib.load(root / "config" / "config.yaml")
    model = specs.model_paths(cfg, "wsgm")[0]
    store = specs.store_path(cfg, "wsgm")
    snakemake(root, model)
    original = provenance.content_hash(root / store)

    _flip(_chunk(root / store, "detail1"))
    out = snakemake(root, model, "--forcerun", "train_scale", check=False)
    assert "Error in rule train_scale" in out, out[-3000:]
    log = (root / specs.log_path("train", "wsgm", "scale0")).read_text() \
        if (root / specs.log_path("train", "wsgm", "scale0")).exists() else \
        "\n".join(p.read_text() for p in (root / "results" / "logs").rglob("*.log"))
    assert f"{store} is corrupt" in log and f"rm -r {store} {store}{provenance.SUFFIX}" in log

    shutil.rmtree(root / store)
    (root / (store + provenance.SUFFIX)).unlink()
    snakemake(root, model)
    assert provenance.content_hash(root / store) == original
    assert (root / model).is_file()
