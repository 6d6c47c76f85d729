"""Per-sample randomness and sharded sampling: the samples do not depend on the batch size nor on
the rows a job draws, and gathered shards are the single job's store bit for bit (on CPU)."""

import json

import numpy as np
import pytest
import torch
import yaml
import zarr

from wsgm import specs
from wsgm.cascade import KERNEL_ROWS, sample_to_store
from wsgm.noise import PerSample
from wsgm.provenance import read_record, rule_for

from .helpers import REPO, train_tiny_models

CPU = torch.device("cpu")


@pytest.fixture
def tiny_models(tmp_path, tiny_config, tiny_store):
    data, store = tiny_store
    return data, store, train_tiny_models(tiny_config, store, tmp_path, steps=3)


def test_per_sample_noise_is_batch_invariant():
    whole = PerSample(7, 0, 7)
    a = [whole.randn((7, 2, 5)), whole.randn((7, 3))]
    split = PerSample(7, 0, 7)
    parts = [split.rows(0, 3), split.rows(3, 7)]  # views share the generators
    b = [torch.cat([p.randn((len(p), 2, 5)) for p in parts]), torch.cat([p.randn((len(p), 3)) for p in parts])]
    late = PerSample(7, 4, 7)  # another job drawing rows 4..6 only
    c = [late.randn((3, 2, 5)), late.randn((3, 3))]
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x[4:], z)
    assert not torch.equal(a[0][0], a[0][1])  # distinct streams per sample
    with pytest.raises(ValueError, match="draw of 4 rows"):
        late.randn((4, 3))


def _store(path):
    g = zarr.open_group(str(path), mode="r")
    return {k: g[k][:] for k in sorted(g.array_keys())}


def _equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k  # bitwise (float32 arrays, no NaN)


@pytest.mark.parametrize("exp,sampler,task", [("sgm", "em", None), ("wsgm", "em", None),
                                              ("wsgm", "pc", None), ("wsgm", "em", "inpaint_blocks")])
def test_samples_do_not_depend_on_batch_size_or_rows(tmp_path, tiny_config, tiny_models, exp, sampler, task):
    data, store, models = tiny_models
    spec = specs.inverse(tiny_config, "wsgm", task, 3) if task else specs.sample(tiny_config, "wsgm", 3)
    if exp == "sgm":
        return _sgm_cascade(spec, store, models)
    spec["sampling"] = {**spec["sampling"], "sampler": sampler, "n_samples": 30}
    assert "batch_size" not in spec["sampling"]  # not a result parameter
    kw = {"truth": data, "offset": 2} if task else {}
    # batch 1 (oneDNN's own path), 16+ (NNPACK's): all the same bits (the SGM case: batches > KERNEL_ROWS)
    sample_to_store(spec, store, models, tmp_path / "b3.zarr", CPU, batch=37, **kw)
    sample_to_store(spec, store, models, tmp_path / "b5.zarr", CPU, batch=5, **kw)
    for i, rows in enumerate([(0, 1), (1, 17), (17, 30)]):
        sample_to_store(spec, store, models, tmp_path / f"r{i}.zarr", CPU, batch=16, rows=rows, **kw)
    a, b = _store(tmp_path / "b3.zarr"), _store(tmp_path / "b5.zarr")
    _equal(a, b)
    parts = [_store(tmp_path / f"r{i}.zarr") for i in range(3)]
    _equal(a, {k: np.concatenate([p[k] for p in parts]) for k in a})
    g = zarr.open_group(str(tmp_path / "r1.zarr"), mode="r")
    assert g.attrs["rows"] == [1, 17] and g.attrs["cost"]["batch_size"] == 16


def _sgm_cascade(spec, store, models):
    """Plain SGM (J = 0) through ``cascade``: the unconditional coarsest model run on 16×16 images."""
    from wsgm.cascade import cascade
    from wsgm.decompose import read_stats
    from wsgm.nets.load import load_model

    spec = {**spec, "J": 0}
    stats = {"low0": read_stats(store)["low2"]}
    model = [load_model(models[2], CPU)[0]]
    noise = PerSample(11, 0, 40)

    def run(cuts):
        return torch.cat([cascade(model, stats, spec, b - a, noise.rows(a, b), CPU, kernel_rows=KERNEL_ROWS)[0]
                          for a, b in zip(cuts[:-1], cuts[1:])])

    whole = run([0, 40])
    for cuts in ([0, 1, 17, 40], [0, 5, 10, 15, 40], [0, 16, 33, 40]):
        noise = PerSample(11, 0, 40)  # fresh generators: the same stream per sample
        assert torch.equal(run(cuts), whole)


def test_rk45_keeps_its_batch_size_in_the_spec(tiny_config):
    cfg = json.loads(json.dumps(tiny_config))
    cfg["experiments"]["wsgm"]["sampling"]["sampler"] = "rk45"
    assert specs.sample(cfg, "wsgm", 3)["sampling"]["batch_size"] == 16
    assert "batch_size" not in specs.sample(tiny_config, "wsgm", 3)["sampling"]


def _config(tmp_path, **sampling):
    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["experiments"]["wsgm"]["sampling"].update(n_samples=7, **sampling)
    raw["inverse"] = {"block": 4, "fraction": 0.5}
    path = tmp_path / f"config{len(list(tmp_path.glob('config*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("task", [None, "superres"])
def test_gathered_shards_are_the_single_job_store(tmp_path, tiny_models, task):
    """`wsgm sample --shard i/3` ×3 then `wsgm gather` == `wsgm sample` (every array, bitwise); the
    gathered record has the single job's spec and inputs and embeds the shard records."""
    from wsgm.cli import main

    data, store, models = tiny_models
    config = _config(tmp_path, batch_size=2)
    common = ["--config", str(config), "--experiment", "wsgm", "--steps", "2"]
    io = ["--store", str(store), "--models", *map(str, models)]
    if task:
        common += ["--inverse", task]
        io += ["--truth", str(data)]
    one, shards = tmp_path / "one.zarr", [tmp_path / f"{i}of3.zarr" for i in range(3)]
    assert main(["sample", *common, *io, "--out", str(one), "--batch-size", "4"]) == 0
    for i, path in enumerate(shards):
        assert main(["sample", *common, *io, "--shard", f"{i}/3", "--out", str(path)]) == 0
    assert [zarr.open_group(str(p), mode="r").attrs["rows"] for p in shards] == [[0, 3], [3, 5], [5, 7]]
    out = tmp_path / "gathered.zarr"
    assert main(["gather", *common, "--shards", *map(str, shards[::-1]), "--out", str(out)]) == 0
    a, b = _store(one), _store(out)
    assert {"x0", "x1", "x2"} <= set(a) and (not task or {"truth", "y"} <= set(a))
    _equal(a, b)
    r1, rg = read_record(one), read_record(out)
    assert rg["spec"] == r1["spec"] and rg["stage"] == "sample"
    assert {k: v["hash"] for k, v in rg["inputs"].items()} == {k: v["hash"] for k, v in r1["inputs"].items()}
    assert [s["rows"] for s in rg["extra"]["shards"]] == [[0, 3], [3, 5], [5, 7]]
    prefix = "inverse" if task else "sample"
    assert rule_for(out, rg) == ("gather_inverse" if task else "gather_samples")
    assert rule_for(shards[0], read_record(shards[0])) == f"{prefix}_shard"
    g = zarr.open_group(str(out), mode="r")
    assert g.attrs["cost"]["shards"] == 3 and g.attrs["cost"]["batch_size"] == 2
    assert g.attrs["cost"]["nfe_per_scale"] == zarr.open_group(str(one), mode="r").attrs["cost"]["nfe_per_scale"]


def test_gather_errors_name_the_cause_and_leave_no_output(tmp_path, tiny_models, capsys):
    from wsgm.cli import main

    data, store, models = tiny_models
    config = _config(tmp_path)
    common = ["--config", str(config), "--experiment", "wsgm", "--steps", "2"]
    io = ["--store", str(store), "--models", *map(str, models)]
    paths = {name: tmp_path / f"{name}.zarr" for name in ("0of2", "1of2", "0of3", "other")}
    for name in ("0of2", "1of2", "0of3"):
        i, k = name.split("of")
        assert main(["sample", *common, *io, "--shard", f"{i}/{k}", "--out", str(paths[name])]) == 0
    other = ["--config", str(_config(tmp_path, sampler="ancestral")), "--experiment", "wsgm", "--steps", "2"]
    assert main(["sample", *other, *io, "--shard", "1/2", "--out", str(paths["other"])]) == 0
    out = tmp_path / "gathered.zarr"
    capsys.readouterr()
    cases = [([paths["0of2"], tmp_path / "missing.zarr"], "missing.zarr is missing"),
             ([paths["0of2"]], "the last shard"),
             ([paths["0of3"], paths["1of2"]], "in no shard"),
             ([paths["0of2"], paths["other"]], "another spec")]
    for shards, message in cases:
        assert main(["gather", *common, "--shards", *map(str, shards), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Fix:" in err, err
        assert not out.exists() and not (tmp_path / "gathered.zarr.prov.json").exists()
    assert not list(tmp_path.glob(".gathered.zarr.tmp-*"))
    assert main(["sample", *common, *io, "--shard", "0/8", "--out", str(tmp_path / "x.zarr")]) == 2
    assert "between 1 and n_samples = 7" in capsys.readouterr().err


@pytest.mark.parametrize("sampling,message", [
    ({"shards": 17}, "17 shards of n_samples = 16"),
    ({"shards": 2, "sampler": "rk45"}, "sampler 'rk45' controls its step size")])
def test_config_refuses_shards_it_cannot_honour(sampling, message):
    from wsgm import config as config_lib

    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["experiments"]["wsgm"]["sampling"].update(sampling)
    with pytest.raises(config_lib.ConfigError, match=message) as err:
        config_lib.check(raw, warn=None)
    assert "experiments.wsgm.sampling.shards" in str(err.value) and "Fix:" in str(err.value)
