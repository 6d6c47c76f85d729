"""The CelebA-HQ 128² paper run (config/celebahq128_paper.yaml with profiles/celebahq128_paper),
checked by a dry run under the SLURM profile, exactly as a user types it on the cluster (plus the
checksum, which only a download can give): its jobs, the resources they would ask for, and that
nothing is downloaded by a compute job. Needs no data, no GPU and no SLURM.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml

from wsgm import config as config_lib
from wsgm import specs

from .helpers import REPO, make_project, snakemake

pytestmark = pytest.mark.workflow

CONFIG = "config/celebahq128_paper.yaml"
PROFILE = "profiles/celebahq128_paper"
SHA = "0" * 64  # stands in for the user's `sha256sum celeba_hq.zip`
RUN = ("--profile", "profiles/slurm", "--workflow-profile", PROFILE, "--configfile", CONFIG)
PIN = ("--config", f"datasets={{celebahq128: {{sha256: '{SHA}'}}}}")
STEPS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
OWNERS = {"sgm_quadratic": 0, "wsgm1_quadratic": 1, "wsgm2_quadratic": 2}
TWINS = {"sgm_uniform": "sgm_quadratic", "wsgm1_uniform": "wsgm1_quadratic", "wsgm2_uniform": "wsgm2_quadratic"}


def dry_run_jobs(out: str) -> list[dict]:
    """Every job of a dry run: rule, input, wildcards and resources as printed by Snakemake, and
    the group job it belongs to, "ID#k" for the k-th group job printed (members of a group are
    printed indented under `Group job ID`; the jobs merged from more components share the ID)."""
    jobs: list[dict] = []
    group, n_groups = None, 0
    for line in out.splitlines():
        if m := re.match(r"^\[[^\]]*\] Group job (\S+) ", line):
            group, n_groups = f"{m.group(1)}#{n_groups}", n_groups + 1  # one id can name several jobs
        elif m := re.match(r"^(    )?(?:local)?rule (\w+):", line):
            group = group if m.group(1) else None
            jobs.append({"rule": m.group(2), "input": [], "wildcards": {}, "resources": {}, "group": group})
        elif jobs and (m := re.match(r"^(?:    )?    (input|wildcards|resources): (.*)", line)):
            field, value = m.groups()
            if field == "input":
                jobs[-1]["input"] = value.split(", ")
            else:
                jobs[-1][field] = dict(kv.split("=", 1) for kv in value.split(", "))
    return [j for j in jobs if j["rule"] != "all"]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("celebahq128"))
    return dry_run_jobs(snakemake(root, "--dry-run", *RUN, *PIN))


def test_without_a_pinned_checksum_the_config_refuses(tmp_path):
    root = make_project(tmp_path / "unpinned")
    out = snakemake(root, "--dry-run", *RUN, check=False)
    assert "config error at 'datasets.celebahq128.sha256'" in out and "sha256sum" in out, out[-2000:]
    assert not (root / "results").exists() and not (root / "resources").exists()


def test_each_model_is_trained_once_and_each_experiment_sampled_at_every_step_count(plan):
    counts: dict[str, int] = {}
    for job in plan:
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    assert counts == {"fetch_celebahq128": 1, "fetch_inception": 1, "make_dataset": 1, "decompose": 3,
                      "reference": 3, "train_scale": 6, "sample": 40, "sample_shard": 80, "gather_samples": 20,
                      "evaluate": 60, "report": 1}
    trained = {(j["wildcards"]["experiment"], int(j["wildcards"]["j"])) for j in plan if j["rule"] == "train_scale"}
    assert trained == {(e, j) for e, J in OWNERS.items() for j in range(J + 1)}
    sampled = {(j["wildcards"]["experiment"], int(j["wildcards"]["steps"])) for j in plan
               if j["rule"] in ("sample", "gather_samples")}
    assert sampled == {(e, s) for e in [*OWNERS, *TWINS] for s in STEPS}
    # the SGM net's sampling (sampling.shards: 4): 4 shards of 1250 samples, one gather, per step count
    shards = {(j["wildcards"]["experiment"], int(j["wildcards"]["steps"]), j["wildcards"]["i"], j["wildcards"]["K"])
              for j in plan if j["rule"] == "sample_shard"}
    assert shards == {(e, s, str(i), "4") for e in ("sgm_quadratic", "sgm_uniform") for s in STEPS for i in range(4)}
    for job in plan:
        if job["rule"] == "gather_samples":
            exp, steps = job["wildcards"]["experiment"], job["wildcards"]["steps"]
            assert sorted(job["input"]) == sorted(
                p for i in range(4) for p in [f"results/samples/{exp}/shards/steps{steps}/{i}of4.zarr",
                                              f"results/samples/{exp}/shards/steps{steps}/{i}of4.zarr.prov.json"])
    for job in plan:
        if job["rule"] in ("sample", "sample_shard"):
            exp = job["wildcards"]["experiment"]
            owner = TWINS.get(exp, exp)
            models = sorted(p for p in job["input"] if p.endswith(".pt"))
            assert models == [f"results/models/{owner}/scale{j}.pt" for j in range(OWNERS[owner] + 1)], job


def test_scoring_jobs_are_grouped_per_experiment(plan):
    """profiles/slurm groups the 60 evaluations into group jobs of at most 5 evaluations of one
    experiment (12 jobs), and the 3 references into one; everything else is one job per rule."""
    groups: dict[str, list[dict]] = {}
    for job in plan:
        if job["group"] is not None:
            groups.setdefault(job["group"], []).append(job)
    assert {j["rule"] for j in plan if j["group"] is not None} == {"evaluate", "reference"}
    assert all(j["group"] is not None for j in plan if j["rule"] in ("evaluate", "reference"))
    score = {g: m for g, m in groups.items() if g.startswith("score_")}
    assert sorted(len(m) for m in score.values()) == [5] * 12
    for gid, members in score.items():
        assert {f"score_{j['wildcards']['experiment']}" for j in members} == {gid.split("#")[0]}
    assert [len(m) for g, m in groups.items() if g.startswith("references#")] == [3]


def test_gpu_jobs_ask_for_realistic_resources(plan):
    by = {}
    for job in plan:
        by.setdefault(job["rule"], []).append(job)
    for rule in ("sample", "reference", "evaluate"):
        assert all(j["resources"].get("gpu") == "1" for j in by[rule]), rule
    # train.gpus: SGM's 128² net trains on 4 GPUs (one DDP job on one node), the WSGM nets on 1
    gpus = {(j["wildcards"]["experiment"], j["wildcards"]["j"]): (j["resources"].get("gpu"),
            j["resources"].get("gpus_per_node"), j["resources"].get("nodes")) for j in by["train_scale"]}
    assert gpus.pop(("sgm_quadratic", "0")) == ("4", "4", "1")
    assert set(gpus.values()) == {("1", "1", "1")}
    for rule in ("train_scale", "sample", "reference", "evaluate"):
        assert all(int(j["resources"]["mem_mb"]) == 32000 for j in by[rule]), rule
    for rule in ("make_dataset", "decompose"):
        assert all("gpu" not in j["resources"] for j in by[rule]), rule
    assert {int(j["resources"]["runtime"]) for j in by["train_scale"]} == {1440}  # a day per model
    runtime = {int(j["wildcards"]["steps"]): int(j["resources"]["runtime"]) for j in by["sample"]}
    assert runtime[2] == 31 and runtime[1024] == 644  # 30 min + 0.6 min per step (10000 samples)
    assert all(runtime[a] <= runtime[b] for a, b in zip(STEPS, STEPS[1:]))
    assert all(j["resources"].get("gpu") == "1" and int(j["resources"]["mem_mb"]) == 32000 for j in by["sample_shard"])
    shard = {int(j["wildcards"]["steps"]): int(j["resources"]["runtime"]) for j in by["sample_shard"]}
    assert shard[2] == 30 and shard[1024] == 183  # a quarter of the samples: 30 min + 0.6 / 4 min per step
    assert all("gpu" not in j["resources"] and int(j["resources"]["runtime"]) == 30 for j in by["gather_samples"])
    assert {int(j["resources"]["runtime"]) for j in by["evaluate"]} == {60}


def test_runtime_and_memory_grow_with_the_attempt_up_to_the_cap():
    """The profile's expressions, evaluated as Snakemake does (Python, with attempt and wildcards)."""
    rules = yaml.safe_load((REPO / PROFILE / "config.yaml").read_text())["set-resources"]

    def value(rule, key, attempt, steps="1024"):
        return eval(str(rules[rule][key]), {"attempt": attempt, "wildcards": SimpleNamespace(steps=steps)})

    assert [value("train_scale", "runtime", a) for a in (1, 2, 3)] == [1440, 2880, 2880]
    assert [value("sample", "runtime", a) for a in (1, 2, 3)] == [644, 1288, 1932]
    assert [value("sample", "runtime", a, "8-8-32") for a in (1, 2)] == [49, 98]  # per-scale lists: the max
    assert [value("evaluate", "mem_mb", a) for a in (1, 2)] == [32000, 64000]
    # the same rules as the default workflow profile, so a site's GRES edit has one shape in both
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert set(default["set-resources"]) <= set(rules)
    assert {k: v for k, v in default.items() if k != "set-resources"} == {
        k: v for k, v in yaml.safe_load((REPO / PROFILE / "config.yaml").read_text()).items() if k != "set-resources"}


def test_nothing_is_downloaded_at_evaluation_time(plan):
    """Downloads are local rules on the submit host; scoring jobs read the fetched weights."""
    cfg = config_lib.load(REPO / CONFIG, {"datasets": {"celebahq128": {"sha256": SHA}}})
    for job in plan:
        if job["rule"] in ("reference", "evaluate"):
            assert specs.INCEPTION_WEIGHTS in job["input"], job
    spec = specs.evaluate(cfg, "wsgm2_uniform", 1024)
    assert spec["fid"]["extractor"] == "inception-v3-compat"
    assert spec["fid"]["weights"] == specs.INCEPTION_WEIGHTS
    smk = (REPO / "workflow/rules/evaluate.smk").read_text() + (REPO / "workflow/rules/fetch.smk").read_text()
    assert re.search(r"localrules:\s*fetch_inception", smk) and "localrule: True" in smk
    # held out: the reference from 5000 images, FID on 5000 samples per step count against a floor of
    # 5000 other held-out images; 20000 left to train on
    ds = cfg["datasets"]["celebahq128"]
    assert cfg["fid"]["n_reference"] == ds["n_test"] == 5000 and ds["n_floor"] == 5000
    assert {e["sampling"]["n_samples"] for e in cfg["experiments"].values()} == {5000}
    assert {e["sde"]["name"] for e in cfg["experiments"].values()} == {"ou"}
    assert {e["sampling"]["time_grid"] for n, e in cfg["experiments"].items()} == {"quadratic", "uniform"}
