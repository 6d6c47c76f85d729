import copy

import pytest
import yaml
from snakemake.utils import validate

from wsgm import config as config_lib
from wsgm import paper
from wsgm.config import ConfigError

from .helpers import REPO, make_project, planned, rules

# config/*.yaml read by `wsgm.paper.load` (the exact-score paper bench), not by the pipeline.
PAPER_CONFIGS = {"paper.yaml"}
PIPELINE_CONFIGS = sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name not in PAPER_CONFIGS)
# Overlays on the default config (`--configfile config/config.yaml config/OVERLAY.yaml`): checked merged into it
OVERLAYS = {"fast_solvers.yaml", "learning_curve.yaml"}
STAND_IN_SHA = "0" * 64  # stands in for the checksum a user pins after downloading the data

MINIMAL = {"datasets": {"d": {"kind": "gaussian", "size": 16}},
           "experiments": {"e": {"dataset": "d", "J": 1}}}


def unpinned(raw: dict) -> list[str]:
    """Datasets downloaded from a URL whose checksum the shipped config leaves for the user to pin."""
    return [name for name, ds in raw.get("datasets", {}).items()
            if ds.get("url") and not (ds.get("sha256") or ds.get("md5"))]


def pins(raw: dict) -> dict:
    """Overrides giving every unpinned download a stand-in sha256."""
    return {"datasets": {name: {"sha256": STAND_IN_SHA} for name in unpinned(raw)}}


def test_every_shipped_config_is_covered():
    assert PIPELINE_CONFIGS and {"config.yaml", "test.yaml"} <= set(PIPELINE_CONFIGS)
    assert all((REPO / "config" / name).is_file() for name in PAPER_CONFIGS)


@pytest.mark.parametrize("name", PIPELINE_CONFIGS)
def test_shipped_configs_are_valid(name):
    """Every config/*.yaml of the pipeline passes the schema and the semantic checks; one that leaves
    a download's checksum to the user refuses to load without it, naming the key, and loads with it."""
    path = REPO / "config" / name
    raw = yaml.safe_load(path.read_text())
    if name in OVERLAYS:
        cfg = config_lib.load(REPO / "config" / "config.yaml", raw)
        validate(copy.deepcopy(cfg), str(config_lib.SCHEMA_PATH))
        return
    if missing := unpinned(raw):
        with pytest.raises(ConfigError, match=rf"'datasets\.{missing[0]}\.sha256'.*sha256sum"):
            config_lib.load(path)
    cfg = config_lib.load(path, pins(raw))
    # Snakemake's own validator accepts the same config against the same schema file.
    validate(copy.deepcopy(cfg), str(config_lib.SCHEMA_PATH))


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_shipped_paper_config_is_valid(name):
    cfg = paper.load(REPO / "config" / name)
    assert set(paper.SECTIONS) <= set(cfg)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("configs"))


# test.yaml runs for real in test_workflow.py; celebahq128_paper.yaml is planned under its SLURM
# profile in test_celebahq128_paper.py.
@pytest.mark.workflow
@pytest.mark.parametrize("name", [n for n in PIPELINE_CONFIGS if n not in ("test.yaml", "celebahq128_paper.yaml")])
def test_shipped_config_plans_every_model_and_sample(project, name):
    """A dry run of the whole pipeline on each shipped config (with its checksums pinned): one
    training job per scale of every experiment that owns models, one sampling job per step count."""
    raw = yaml.safe_load((REPO / "config" / name).read_text())
    if name in OVERLAYS:  # planned as they are used: over the default config
        raw = config_lib.merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), raw)
    raw = config_lib.merge(raw, pins(raw))
    cfg = config_lib.check(copy.deepcopy(raw))
    jobs = planned(project, raw)
    per_exp: dict[tuple[str, str], int] = {}
    for rule, wildcards in jobs:
        for exp in (w.removeprefix("experiment=") for w in wildcards if w.startswith("experiment=")):
            per_exp[rule, exp] = per_exp.get((rule, exp), 0) + 1
    for exp_name, exp in cfg["experiments"].items():
        trains = 0 if exp["models_from"] else exp["J"] + 1
        assert per_exp.get(("train_scale", exp_name), 0) == trains, (exp_name, rules(jobs))
        assert per_exp.get(("sample", exp_name), 0) == len(exp["sampling"]["steps"]), (exp_name, rules(jobs))
    assert rules(jobs)["report"] == 1


def test_defaults_fill_named_entries():
    cfg = config_lib.check(MINIMAL)
    exp = cfg["experiments"]["e"]
    assert exp["sde"]["name"] == "vp" and exp["train"]["steps"] == 2000
    assert exp["sampling"]["steps"] == [8, 16, 32, 64]
    assert cfg["datasets"]["d"]["n"] == 2048 and cfg["seed"] == 0


def test_every_schema_key_has_description_and_default():
    schema = config_lib.schema()

    def walk(node, path):
        node = config_lib._resolve_ref(node)
        for key, sub in node.get("properties", {}).items():
            sub = config_lib._resolve_ref(sub)
            assert "description" in sub or sub.get("type") == "object", f"{path}.{key} lacks a description"
            required = node.get("required", [])
            assert "default" in sub or key in required or sub.get("type") == "object", \
                f"{path}.{key} lacks a default"
            walk(sub, f"{path}.{key}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{path}.*")

    walk(schema, "config")


@pytest.mark.parametrize("mutate, key, fix", [
    (lambda c: c["experiments"]["e"]["train"].update(stpes=3), "experiments.e.train", "unknown key"),
    (lambda c: c["experiments"]["e"].update(J="two"), "experiments.e.J", "wrong type"),
    (lambda c: c["experiments"]["e"].update(J=5), "experiments.e.J", "set J <= 3"),
    (lambda c: c["experiments"]["e"].update(dataset="cifar"), "experiments.e.dataset", "'cifar' is not defined"),
    (lambda c: c["experiments"]["e"]["sde"].update(name="vpp"), "experiments.e.sde.name", "not one of"),
    (lambda c: c["datasets"]["d"].pop("kind"), "datasets.d", "'kind' is a required property"),
    (lambda c: c["experiments"]["e"]["sampling"].update(steps=[]), "experiments.e.sampling.steps", "Fix"),
])
def test_bad_config_gives_one_message_naming_key_and_fix(mutate, key, fix):
    cfg = copy.deepcopy(MINIMAL)
    cfg["experiments"]["e"].setdefault("train", {})
    cfg["experiments"]["e"].setdefault("sde", {})
    cfg["experiments"]["e"].setdefault("sampling", {})
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        config_lib.check(cfg)
    msg = str(err.value)
    assert f"'{key}'" in msg and fix in msg and "Fix" in msg
    assert "\n" not in msg


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config_lib.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config_lib.load(bad)


def test_environment_yml_matches_requirements():
    """environment.yml (conda, HPC) pins the same versions as requirements.txt (pip)."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names = {"torch": "pytorch", "pywavelets": "pywavelets"}
    found = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if "==" in item or "=" in item:
                name, _, version = item.replace("==", "=").partition("=")
                found[name.strip().lower()] = version.split("=")[0].strip()
    for name, version in pins.items():
        conda = conda_names.get(name, name)
        assert conda in found or name in found, f"{name} is pinned in requirements.txt but not in environment.yml"
        assert found.get(conda, found.get(name)) == version, f"{name}: {version} (pip) vs {found.get(conda)} (conda)"


def test_config_readme_reference_is_current():
    readme = (REPO / "config" / "README.md").read_text()
    start, end = "<!-- config-reference:start -->\n", "\n<!-- config-reference:end -->"
    block = readme[readme.index(start) + len(start): readme.index(end)]
    assert block == config_lib.reference_markdown(), \
        "config/README.md config reference is stale: regenerate it with `wsgm check-config --reference` " \
        "and paste the output between its config-reference markers"
