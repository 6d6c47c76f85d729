"""Sharded sampling through Snakemake on the tiny config: sampling.shards = 3 gives the stores of
shards = 1 bit for bit (samples and an inverse problem), the shard stores are temporary, and a
batch-size edit plans no job. Under SLURM: tests/test_slurm.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
import zarr

from wsgm.provenance import audit, read_record

from .helpers import REPO, make_project, planned, rules, snakemake

pytestmark = pytest.mark.workflow

SAMPLES = "results/samples/wsgm/steps2.zarr"
INVERSE = "results/inverse/wsgm/inpaint_blocks_steps2.zarr"


def config(shards: int = 1, batch_size: int = 16) -> dict:
    """The tiny config with its WSGM experiment only (J = 2), 16 samples."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["experiments"] = {"wsgm": cfg["experiments"]["wsgm"]}
    cfg["experiments"]["wsgm"]["sampling"].update(shards=shards, batch_size=batch_size)
    return cfg


def arrays(path) -> dict:
    g = zarr.open_group(str(path), mode="r")
    return {k: g[k][:] for k in sorted(g.array_keys())}


def test_shards_give_the_single_job_stores_and_batch_size_edits_rerun_nothing(tmp_path, monkeypatch):
    root = make_project(tmp_path / "p")
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config()))
    snakemake(root, SAMPLES, INVERSE)
    one = {p: arrays(root / p) for p in (SAMPLES, INVERSE)}
    records = {p: read_record(root / p) for p in (SAMPLES, INVERSE)}
    for p in (SAMPLES, INVERSE):
        shutil.rmtree(root / p)

    path = root / "config" / "shards.yaml"
    path.write_text(yaml.safe_dump(config(shards=3, batch_size=5)))
    out = snakemake(root, SAMPLES, INVERSE, "--configfile", str(path))
    counts = {rule: out.count(f"rule {rule}:") for rule in ("sample", "sample_shard", "gather_samples",
                                                            "inverse_sample", "inverse_shard", "gather_inverse")}
    assert counts == {"sample": 0, "sample_shard": 3, "gather_samples": 1, "inverse_sample": 0,
                      "inverse_shard": 3, "gather_inverse": 1}, out[-3000:]
    for p in (SAMPLES, INVERSE):
        gathered = arrays(root / p)
        assert sorted(gathered) == sorted(one[p]) and ("truth" in gathered) == (p == INVERSE)
        for k in gathered:
            assert np.array_equal(gathered[k], one[p][k]), (p, k)  # bit for bit
        rec = read_record(root / p)
        assert rec["spec"] == records[p]["spec"]  # the same spec: no batch size, no shard count in it
        assert [s["rows"] for s in rec["extra"]["shards"]] == [[0, 6], [6, 11], [11, 16]]
        assert rec["extra"]["batch_size"] == 5 and zarr.open_group(str(root / p), mode="r").attrs["cost"]["shards"] == 3
        with monkeypatch.context() as m:  # record paths are relative to the project
            m.chdir(root)
            assert audit(p, out=lambda line: None)  # the gathered record walks back to the data
    assert not list((root / "results").rglob("*of3.zarr*"))  # shard stores are temporary

    for cfg in (config(shards=3, batch_size=7), config(shards=3, batch_size=16)):
        assert planned(root, cfg, (SAMPLES, INVERSE)) == set()  # a batch-size edit reruns nothing
    # Editing the shard count gives the same bits, but Snakemake sees another set of input files
    # (and, from or to 1, another rule) and reruns the shards and the gather (docs/cluster.md).
    jobs = planned(root, config(shards=2), (SAMPLES, INVERSE))
    assert rules(jobs) == {"sample_shard": 2, "gather_samples": 1, "inverse_shard": 2, "gather_inverse": 1}
    jobs = planned(root, config(shards=1), (SAMPLES,))
    assert rules(jobs) == {"sample": 1}
    # ... unless told to forget what it recorded for the store (docs/cluster.md)
    snakemake(root, "--cleanup-metadata", SAMPLES, INVERSE)
    assert planned(root, config(shards=2), (SAMPLES, INVERSE)) == set()


def test_a_sharded_run_can_be_planned_with_a_user_config(tmp_path):
    """`wsgm check-config --show` fills shards: 1; a config without the key plans one sample job."""
    cfg = config()
    del cfg["experiments"]["wsgm"]["sampling"]["shards"]
    root = make_project(tmp_path / "q")
    jobs = planned(root, cfg, (SAMPLES,))
    assert rules(jobs)["sample"] == 1 and "sample_shard" not in rules(jobs)
    jobs = planned(root, json.loads(json.dumps(config(shards=4))), (SAMPLES,))
    shards = sorted(wc for rule, wc in jobs if rule == "sample_shard")
    assert [dict(kv.split("=") for kv in wc)["i"] for wc in shards] == ["0", "1", "2", "3"]
