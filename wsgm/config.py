"""Load and check the pipeline config against the schema (wsgm/schemas/config.schema.yaml).

The same schema is enforced by the Snakefile (``snakemake.utils.validate``) and by the CLI; this
module adds the defaults (including inside named entries, which Snakemake's validator skips),
turns the first schema violation into one message naming the key and the fix, and checks what a
schema cannot express (an experiment naming a missing dataset, J too large for the image size)
and resolves `models_from` (an experiment sharing another one's trained models).
"""

from __future__ import annotations

import copy
import json
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from wsgm.errors import UserError
from wsgm.steps import Steps

# Shipped inside the package (package data), so an installed wsgm validates configs too;
# workflow/schemas/config.schema.yaml, which Snakemake's validate() reads, is a link to this file.
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(UserError, ValueError):
    """A user error in the config: the message names the key and the fix."""


@functools.cache
def schema() -> dict:
    if not SCHEMA_PATH.is_file():
        raise ConfigError(
            f"config schema not found at {SCHEMA_PATH}: the wsgm installation is incomplete. "
            "Fix: reinstall it (`pip install .` or `pip install -e .` from the repository)"
        )
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve_ref(node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _fill_defaults(value: Any, node: dict) -> Any:
    node = _resolve_ref(node)
    if isinstance(value, dict) and node.get("type") == "object":
        props = node.get("properties", {})
        for key, sub in props.items():
            sub_r = _resolve_ref(sub)
            if key not in value and "default" in sub_r:
                value[key] = copy.deepcopy(sub_r["default"])
            if key in value:
                value[key] = _fill_defaults(value[key], sub_r)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    value[key] = _fill_defaults(value[key], extra)
    return value


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _schema_message(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        return (f"config error at '{key}': unknown key(s) {unknown}. Fix: remove them or correct "
                f"the spelling; allowed keys here: {allowed}")
    if kind == "required":
        return f"config error at '{key}': {error.message}. Fix: add that key"
    if kind == "enum":
        return (f"config error at '{key}': {error.instance!r} is not one of {error.validator_value}. "
                "Fix: use one of those values")
    if kind == "type":
        return (f"config error at '{key}': {error.instance!r} has the wrong type, expected "
                f"{error.validator_value}. Fix: write a value of that type")
    desc = error.schema.get("description", "")
    hint = f" ({desc.strip()})" if desc else ""
    return f"config error at '{key}': {error.message}{hint}. Fix: change the value to satisfy this"


def _check_datasets(datasets: dict) -> None:
    for name, ds in datasets.items():
        key = f"datasets.{name}"
        if ds["kind"] in ("cifar10", "images"):
            if not ds["url"] and not ds["path"]:
                raise ConfigError(f"config error at '{key}': a {ds['kind']} dataset needs url (fetched "
                                  "and verified) or path (a local archive or folder). Fix: set one")
            if ds["url"] and not (ds["sha256"] or ds["md5"]):
                raise ConfigError(
                    f"config error at '{key}.sha256': no checksum is pinned for {ds['url']} and every "
                    "download must be verified. Fix: put the published sha256 (or md5) here; where none "
                    "is published, download the file once, check it, run `sha256sum FILE` and paste "
                    "the value")
        if ds["kind"] == "cifar10" and (ds["size"], ds["channels"]) != (32, 3):
            raise ConfigError(f"config error at '{key}.size': CIFAR-10 images are 3×32×32. Fix: set "
                              "size: 32 and channels: 3")
        if ds["kind"] == "images" and ds["channels"] not in (1, 3):
            raise ConfigError(f"config error at '{key}.channels': images are converted to 1 (gray) or 3 "
                              "(RGB) channels. Fix: set channels to 1 or 3")
        if ds["kind"] == "phi4" and ds["channels"] != 1:
            raise ConfigError(f"config error at '{key}.channels': the φ⁴ field is a single channel. Fix: "
                              "set channels: 1")


def _check_semantics(cfg: dict) -> None:
    datasets = cfg["datasets"]
    _check_datasets(datasets)
    for name, exp in cfg["experiments"].items():
        key = f"experiments.{name}"
        if exp["dataset"] not in datasets:
            raise ConfigError(
                f"config error at '{key}.dataset': dataset {exp['dataset']!r} is not defined. "
                f"Fix: use one of {sorted(datasets)} or add it under 'datasets'")
        size = datasets[exp["dataset"]]["size"]
        J = exp["J"]
        coarse = size / 2**J
        levels = len(exp["net"]["channel_mult"])
        need = 2 ** (levels - 1)
        if size % 2**J or coarse < max(need, 2):
            max_j = 0
            while size % 2 ** (max_j + 1) == 0 and size // 2 ** (max_j + 1) >= max(need, 2):
                max_j += 1
            raise ConfigError(
                f"config error at '{key}.J': J={J} is too large for {size}x{size} images "
                f"(the coarsest scale must be an integer size of at least {max(need, 2)} pixels "
                f"for a net with {levels} levels). Fix: set J <= {max_j}")
        sde = exp["sde"]
        if sde["name"] in ("ve", "ve_power") and sde["sigma_min"] >= sde["sigma_max"]:
            raise ConfigError(
                f"config error at '{key}.sde.sigma_max': {sde['name']} needs sigma_max > sigma_min, got "
                f"{sde['sigma_max']} <= {sde['sigma_min']}. Fix: raise sigma_max (data std is 1 after "
                "normalization, so sigma_max >> 1)")
        if sde["eps"] >= sde["T"]:
            raise ConfigError(
                f"config error at '{key}.sde.eps': eps={sde['eps']} must be below T={sde['T']}. "
                "Fix: use a small eps such as 0.001")
        for steps in exp["sampling"]["steps"]:
            _check_steps(f"{key}.sampling.steps", steps)
            if isinstance(steps, list) and len(steps) != J + 1:
                raise ConfigError(
                    f"config error at '{key}.sampling.steps': the per-scale list {steps} has "
                    f"{len(steps)} entries but J={J} needs J+1 = {J + 1} (scales 0..J, finest first). "
                    "Fix: give one number per scale, or a single integer for all scales")
        if (size // 2**J) % need:
            raise ConfigError(
                f"config error at '{key}.net.channel_mult': {levels} levels need image sides "
                f"divisible by {need}, but the coarsest scale is {size // 2**J}. Fix: use fewer levels")
    _check_inverse(cfg)


def _check_steps(where: str, steps) -> None:
    """A step setting is integers (the schema lets 30.0 through as an integer)."""
    try:
        Steps(steps)
    except ValueError as exc:
        raise ConfigError(f"config error at '{where}': {exc}") from None


def _check_inverse(cfg: dict) -> None:
    """Inverse problems: named experiments exist; step settings are integers; colorization only on
    3-channel data."""
    inv = cfg["inverse"]
    for steps in inv["steps"]:
        _check_steps("inverse.steps", steps)
    for name in inv["experiments"]:
        if name not in cfg["experiments"]:
            raise ConfigError(f"config error at 'inverse.experiments': experiment {name!r} is not defined. "
                              f"Fix: use some of {sorted(cfg['experiments'])}, or [] for all")
    if "colorize" in inv["tasks"]:
        for name in inv["experiments"] or cfg["experiments"]:
            channels = cfg["datasets"][cfg["experiments"][name]["dataset"]]["channels"]
            if channels != 3:
                raise ConfigError(f"config error at 'inverse.tasks': colorize needs 3-channel images, experiment "
                                  f"{name!r} has {channels}. Fix: drop colorize, or list only 3-channel "
                                  "experiments in inverse.experiments")


# What determines an experiment's trained models: an experiment with `models_from: OTHER` takes
# these from OTHER (and OTHER's model files), so it can differ only in sampling and metrics.
MODEL_KEYS = ("dataset", "wavelet", "J", "sde", "net", "train")


def _share_models(experiments: Any) -> None:
    """Resolve ``models_from`` in place (before defaults are filled, so that only values the user
    wrote can conflict): copy OTHER's MODEL_KEYS into the sharing experiment."""
    if not isinstance(experiments, dict):
        return  # the schema check names the problem
    node = _resolve_ref(schema()["$defs"]["experiment"])
    for name, exp in experiments.items():
        if not isinstance(exp, dict) or not exp.get("models_from"):
            continue
        key = f"experiments.{name}.models_from"
        other = exp["models_from"]
        if other == name:
            raise ConfigError(f"config error at '{key}': experiment {name!r} names itself. Fix: remove "
                              "models_from (it then trains its own models) or name another experiment")
        if not isinstance(other, str) or other not in experiments:
            raise ConfigError(f"config error at '{key}': experiment {other!r} is not defined. Fix: use one "
                              f"of {sorted(n for n in experiments if n != name)}")
        target = experiments[other]
        if not isinstance(target, dict):
            continue  # the schema check names the problem
        if target.get("models_from"):
            raise ConfigError(
                f"config error at '{key}': {other!r} itself takes its models from "
                f"{target['models_from']!r}; chains are not followed. Fix: set models_from: "
                f"{target['models_from']!r} (the experiment that trains them)")
        mine = _fill_defaults({k: copy.deepcopy(exp[k]) for k in MODEL_KEYS if k in exp}, node)
        theirs = _fill_defaults({k: copy.deepcopy(target[k]) for k in MODEL_KEYS if k in target}, node)
        for k in MODEL_KEYS:
            if k in exp and mine.get(k) != theirs.get(k):
                raise ConfigError(
                    f"config error at 'experiments.{name}.{k}': {mine.get(k)!r} differs from the value "
                    f"{theirs.get(k)!r} of {other!r}, whose trained models {name!r} uses (models_from). "
                    f"Fix: remove {k} from {name!r} (it is taken from {other!r}), or remove models_from "
                    f"to train {name!r}'s own models")
        for k in MODEL_KEYS:
            if k in target:
                exp[k] = copy.deepcopy(target[k])


def check(config: dict) -> dict:
    """Return a validated copy of ``config`` with every default filled in; raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("config error: the config file must be a mapping of keys to values")
    config = copy.deepcopy(config)
    _share_models(config.get("experiments"))
    cfg = _fill_defaults(config, schema())
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(cfg))
    if error is not None:
        raise ConfigError(_schema_message(error))
    _check_semantics(cfg)
    return cfg


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config file, apply nested ``overrides`` and check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist. Fix: pass --config with an existing file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if overrides:
        raw = merge(raw, overrides)
    return check(raw)


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge (update wins), returning a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def defaults(section: str) -> dict:
    """The schema's defaults of one ``$defs`` section (e.g. ``sde``): the one source of them."""
    node = schema()["$defs"][section]
    return {k: copy.deepcopy(v["default"]) for k, v in node.get("properties", {}).items() if "default" in v}


def reference_markdown() -> str:
    """The config reference (every key, type, default, description) as a Markdown table."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def walk(node: dict, prefix: str) -> None:
        node = _resolve_ref(node)
        for key, sub in node.get("properties", {}).items():
            sub = _resolve_ref(sub)
            path = f"{prefix}{key}"
            kind = sub.get("type", "")
            if "enum" in sub:
                kind = " \\| ".join(map(str, sub["enum"]))
            default = json.dumps(sub["default"]) if "default" in sub else "required"
            desc = " ".join(sub.get("description", "").split()).replace("|", "\\|")
            if kind != "object" or "description" in sub:
                rows.append(f"| `{path}` | {kind} | `{default}` | {desc} |")
            walk(sub, f"{path}.")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, f"{prefix}<name>.")

    walk(schema(), "")
    return "\n".join(rows)
