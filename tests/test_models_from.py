"""`models_from`: an experiment that samples with another experiment's trained models.

The config checks, the specs (train specs and model paths resolve to the owner; the sample spec
keeps the owner's process and the sharer's own sampling), and the DAG: a dry run trains each
model once, a tiny real run samples both grids from one model and reports both, and editing the
sharer's sampling reruns only its new jobs.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
import zarr

from wsgm import config as config_lib
from wsgm import specs
from wsgm.config import ConfigError

from .helpers import REPO

BASE = {"datasets": {"d": {"kind": "gaussian", "size": 16}},
        "experiments": {
            "wsgm": {"dataset": "d", "J": 1, "sde": {"name": "ou", "T": 5.0},
                     "net": {"channels": 8, "channel_mult": [1]}, "train": {"steps": 7},
                     "sampling": {"time_grid": "quadratic", "steps": [4, 8]}},
            "wsgm_uniform": {"models_from": "wsgm", "sampling": {"time_grid": "uniform", "steps": [4, 16]}}}}


def checked(mutate=None) -> dict:
    cfg = copy.deepcopy(BASE)
    if mutate:
        mutate(cfg["experiments"])
    return config_lib.check(cfg)


def test_a_sharing_experiment_takes_the_owners_training_settings_and_models():
    cfg = checked()
    mine, owner = cfg["experiments"]["wsgm_uniform"], cfg["experiments"]["wsgm"]
    for key in config_lib.MODEL_KEYS:
        assert mine[key] == owner[key], key
    assert mine["sde"]["name"] == "ou" and mine["J"] == 1 and mine["train"]["steps"] == 7
    assert mine["sampling"]["time_grid"] == "uniform" and owner["sampling"]["time_grid"] == "quadratic"
    assert specs.model_paths(cfg, "wsgm_uniform") == specs.model_paths(cfg, "wsgm") == [
        "results/models/wsgm/scale0.pt", "results/models/wsgm/scale1.pt"]
    assert specs.train(cfg, "wsgm_uniform", 1) == specs.train(cfg, "wsgm", 1)
    assert specs.trained_experiments(cfg) == ["wsgm"]
    assert specs.store_path(cfg, "wsgm_uniform") == specs.store_path(cfg, "wsgm")
    assert specs.reference_path(cfg, "wsgm_uniform") == specs.reference_path(cfg, "wsgm")
    # the sample spec: the owner's process and decomposition, its own grid and name (own seed)
    a, b = specs.sample(cfg, "wsgm_uniform", 8), specs.sample(cfg, "wsgm", 8)
    assert a["sde"] == b["sde"] and a["sde"]["T"] == 5.0 and a["J"] == b["J"] == 1
    assert a["sampling"]["time_grid"] == "uniform" and b["sampling"]["time_grid"] == "quadratic"
    assert a["experiment"] == "wsgm_uniform"
    # checking twice (Snakemake's config after the CLI's) changes nothing
    assert config_lib.check(cfg) == cfg


def test_writing_the_owners_value_again_is_allowed_a_different_one_is_not():
    same = checked(lambda e: e["wsgm_uniform"].update(J=1, sde={"name": "ou", "T": 5.0, "eps": 0.001}))
    assert same["experiments"]["wsgm_uniform"]["J"] == 1
    # editing the sharer's sampling changes no train spec
    other = checked(lambda e: e["wsgm_uniform"]["sampling"].update(steps=[2], sampler="heun"))
    assert all(specs.train(other, n, j) == specs.train(same, n, j) for n in ("wsgm", "wsgm_uniform")
               for j in (0, 1))


@pytest.mark.parametrize("mutate, key, fix", [
    (lambda e: e["wsgm_uniform"].update(models_from="nope"), "experiments.wsgm_uniform.models_from",
     "'nope' is not defined"),
    (lambda e: e["wsgm_uniform"].update(models_from="wsgm_uniform"), "experiments.wsgm_uniform.models_from",
     "names itself"),
    (lambda e: e.update(third={"models_from": "wsgm_uniform"}), "experiments.third.models_from",
     "set models_from: 'wsgm'"),
    (lambda e: e["wsgm"].update(models_from="wsgm_uniform"), "experiments.wsgm.models_from",
     "chains are not followed"),  # a cycle
    (lambda e: e["wsgm_uniform"].update(net={"channels": 16}), "experiments.wsgm_uniform.net",
     "remove net from 'wsgm_uniform'"),
    (lambda e: e["wsgm_uniform"].update(J=0), "experiments.wsgm_uniform.J", "differs from the value 1"),
    (lambda e: e["wsgm_uniform"].update(sde={"name": "vp"}), "experiments.wsgm_uniform.sde", "models_from"),
    (lambda e: e["wsgm_uniform"].update(dataset="e"), "experiments.wsgm_uniform.dataset", "Fix"),
])
def test_bad_sharing_gives_one_message_naming_key_and_fix(mutate, key, fix):
    with pytest.raises(ConfigError) as err:
        checked(mutate)
    msg = str(err.value)
    assert f"'{key}'" in msg and fix in msg and "Fix" in msg, msg
    assert "\n" not in msg


# --- the DAG ----------------------------------------------------------------------------------

def _tiny_sharing_config() -> dict:
    """config/test.yaml's SGM experiment and a twin sampling its model on the quadratic grid."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    sgm = cfg["experiments"]["sgm"]
    sgm["sampling"]["steps"] = [3]
    cfg["experiments"] = {"sgm": sgm, "sgm_quadratic": {
        "models_from": "sgm", "sampling": {**sgm["sampling"], "time_grid": "quadratic"}}}
    return cfg


@pytest.mark.workflow
def test_shared_models_are_trained_once_sampled_twice_and_reported_together(tmp_path):
    from .helpers import make_project, planned, rules, snakemake

    root = make_project(tmp_path / "shared")
    cfg = _tiny_sharing_config()
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned(root)
    assert rules(jobs) == {"make_dataset": 1, "decompose": 1, "reference": 1, "train_scale": 1,
                           "sample": 2, "evaluate": 2, "report": 1}
    assert ("train_scale", ("experiment=sgm", "j=0")) in jobs
    # nothing can train a sharer's own copy
    out = snakemake(root, "--dry-run", "results/models/sgm_quadratic/scale0.pt", check=False)
    assert "MissingRuleException" in out or "No rule to produce" in out, out[-2000:]

    snakemake(root)
    assert not (root / "results/models/sgm_quadratic").exists()
    record = json.loads((root / "results/samples/sgm_quadratic/steps3.zarr.prov.json").read_text())
    assert "results/models/sgm/scale0.pt" in json.dumps(record["inputs"])
    assert record["spec"]["sampling"]["time_grid"] == "quadratic"
    a = zarr.open_group(str(root / "results/samples/sgm/steps3.zarr"), mode="r")["x0"][:]
    b = zarr.open_group(str(root / "results/samples/sgm_quadratic/steps3.zarr"), mode="r")["x0"][:]
    assert a.shape == b.shape and not (a == b).all()
    summary = json.loads((root / "results/report/summary.json").read_text())
    assert set(summary["table"]) == {"sgm", "sgm_quadratic"}

    # editing only the sharer's sampling retrains nothing and reruns only its new step count
    cfg["experiments"]["sgm_quadratic"]["sampling"]["steps"] = [3, 5]
    assert planned(root, cfg) == {("sample", ("experiment=sgm_quadratic", "steps=5")),
                                  ("evaluate", ("experiment=sgm_quadratic", "steps=5")), ("report", ())}
