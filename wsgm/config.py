"""Load and check the pipeline config against the schema (wsgm/schemas/config.schema.yaml).

The same schema is enforced by the Snakefile (``snakemake.utils.validate``) and by the CLI; this
module adds the defaults (including inside named entries, which Snakemake's validator skips),
turns the first schema violation into one message naming the key and the fix, and checks what a
schema cannot express (an experiment naming a missing dataset, J too large for the image size,
a float such as 30.0 where the schema says integer, image sides the FID feature extractor cannot
take, too few images for a metric, an inverse task's mask off the Haar blocks) and resolves
`models_from` (an experiment sharing another one's trained models).

What makes a metric statistically meaningless without making it undefined (FID from fewer
images than max(2d, 50), KID subsets under 50; see :mod:`wsgm.metrics.sample_sizes`) is a
warning: :func:`warnings` lists them, :func:`check` prints them on stderr (at planning, from
workflow/rules/common.smk), and `wsgm check-config` too.
"""

from __future__ import annotations

import copy
import json
import functools
import numbers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from wsgm.errors import UserError
from wsgm.metrics import sample_sizes as sizes
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
    if kind in ("oneOf", "anyOf"):  # a value none of the alternatives accepts
        branches = [_resolve_ref(b) for b in error.validator_value]
        types = [b.get("type") for b in branches]
        if all(isinstance(t, str) for t in types) and not any(_json_kind(error.instance) == t or (
                t in ("number", "integer") and _json_kind(error.instance) == "number") for t in types):
            return (f"config error at '{key}': {error.instance!r} has the wrong type, expected one of "
                    f"{types}. Fix: write a value of one of those types")
    desc = error.schema.get("description", "")
    hint = f" ({desc.strip()})" if desc else ""
    return f"config error at '{key}': {error.message}{hint}. Fix: change the value to satisfy this"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "number" if isinstance(value, numbers.Number) else "other"


def _check_integers(value: Any, node: dict, path: tuple = ()) -> None:
    """Every value at a schema node of type integer is a real integer: jsonschema's "integer"
    accepts 30.0 (a float with no fractional part), which then crashes the job that reads it."""
    node = _resolve_ref(node)
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        branch = _resolve_ref(branch)
        types = branch.get("type", [])
        types = {types} if isinstance(types, str) else set(types)
        kind = _json_kind(value)
        if kind in types or (kind == "number" and "integer" in types):
            _check_integers(value, branch, path)
            break
    if node.get("type") == "integer" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        key = ".".join(map(str, path)) or "(top level)"
        example = int(value) if isinstance(value, float) and value.is_integer() else 1
        raise ConfigError(
            f"config error at '{key}': {value!r} is not an integer (the schema's type is integer; YAML "
            f"reads {value!r} as a {type(value).__name__}). Fix: write an integer without a decimal "
            f"point, e.g. {example}")
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _check_integers(sub, props[key], (*path, key))
            elif isinstance(extra, dict):
                _check_integers(sub, extra, (*path, key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, sub in enumerate(value):
            _check_integers(sub, node["items"], (*path, i))


CIFAR10_IMAGES = {"train": 50000, "test": 10000, "all": 60000}


def dataset_count(ds: dict) -> tuple[int | None, str]:
    """(number of images, the key that sets it) of a dataset, known before it is built; None when
    the files decide (npz, images without limit)."""
    if ds["kind"] in ("gaussian", "phi4", "photos"):
        return ds["n"], "n"
    if ds["kind"] == "cifar10":
        total = CIFAR10_IMAGES[ds["split"]]
        return (ds["limit"], "limit") if 0 < ds["limit"] < total else (total, "split")
    if ds["kind"] == "images" and ds["limit"]:
        return ds["limit"], "limit"
    return None, "limit"


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
        if ds["kind"] == "photos":
            from wsgm.data import photos

            if why := photos.problems(ds):
                raise ConfigError(
                    f"config error at '{key}': " + "; ".join(why) + ". Fix: lower downscale or held_out, set a "
                    "smaller size, or list only photographs that fit (photos); channels 3 takes the colour "
                    f"photographs {[p for p, (_, c) in photos.PHOTOS.items() if c]}")
        count, count_key = dataset_count(ds)
        held_out = ds["n_test"] + ds["n_floor"]
        if ds["kind"] not in ("gaussian", "phi4", "photos") and count is not None and count - held_out < sizes.MIN_SAMPLES:
            raise ConfigError(
                f"config error at '{key}.{count_key}': {count} image(s) cannot hold out n_test + n_floor = "
                f"{held_out} (reference statistics and data floors, never trained on) and leave at least "
                f"{sizes.MIN_SAMPLES} to train on. Fix: lower {key}.n_test / n_floor or raise {count_key}")
        if count is not None and count < sizes.MIN_SAMPLES:
            raise ConfigError(
                f"config error at '{key}.{count_key}': {count} image(s) cannot be scored: the reference "
                f"statistics and the data floor compare distributions and need at least "
                f"{sizes.MIN_SAMPLES} images (with 1, FID's covariance is NaN and evaluate fails). "
                f"Fix: set {count_key} to at least {sizes.MIN_SAMPLES} "
                f"({sizes.MIN_MEANINGFUL}+ for meaningful metrics)")


def _check_semantics(cfg: dict, warnings: list[str], inverse_explicit: bool = True) -> None:
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
        _resolve_padding(exp, datasets[exp["dataset"]]["kind"])
        _check_receptive_field(name, exp, size)
        _check_prior(cfg, name, exp, warnings)
        _check_feature_sides(cfg, name, exp)
        _check_counts(cfg, name, exp, warnings)
        _check_processes(name, exp)
    _check_inverse(cfg)
    _check_inverse_alignment(cfg, warnings, inverse_explicit)


def _check_processes(name: str, exp: dict) -> None:
    tcfg = exp["train"]
    world = tcfg.get("gpus", 1) * tcfg.get("nodes", 1)
    if tcfg["batch_size"] % world:
        raise ConfigError(
            f"config error at 'experiments.{name}.train.batch_size': {tcfg['batch_size']} is not divisible by "
            f"train.gpus x train.nodes = {tcfg.get('gpus', 1)} x {tcfg.get('nodes', 1)} = {world} DDP processes "
            f"(each takes batch_size / {world} rows of every global batch). Fix: make batch_size a multiple "
            f"of {world}, or change train.gpus / train.nodes")


PERIODIC_KINDS = ("gaussian", "phi4")  # fields on a periodic grid: circular padding fits them
# (photos, images, cifar10 and npz are not periodic: their crops and pictures have borders, so zeros)


def _resolve_padding(exp: dict, kind: str) -> None:
    """net.padding auto → circular for periodic dataset kinds, zeros otherwise, written into the
    config so that every spec records the resolved value."""
    if exp["net"]["padding"] == "auto":
        exp["net"]["padding"] = "circular" if kind in PERIODIC_KINDS else "zeros"


def _check_receptive_field(name: str, exp: dict, size: int) -> None:
    """The unconditional model (SGM's, or WSGM's coarsest, j = J) must see its whole input: the
    image mean (the DC mode) is usually the largest-variance direction of the data, and a model
    that cannot see all pixels cannot estimate it. Conditional models (j < J) may be local."""
    from wsgm.nets import receptive_field as rf

    net, J = exp["net"], exp["J"]
    side = rf.model_side(size, J, J)
    if rf.sees_whole_input(net, side):
        return
    levels = len(net["channel_mult"])
    width = rf.receptive_field(levels, net["num_res_blocks"], side)
    bottleneck = side >> (levels - 1)
    what = "the image" if J == 0 else f"the coarsest low-pass x_{J}"
    fixes = []
    if side % 2**levels == 0:
        fixes.append(f"add a level to channel_mult (e.g. {[*net['channel_mult'], net['channel_mult'][-1]]})")
    fixes.append(f"set attn_resolutions: [{bottleneck}] (global attention at the {bottleneck}x{bottleneck} "
                 "bottleneck)")
    raise ConfigError(
        f"config error at 'experiments.{name}.net': the unconditional model of experiment {name!r} "
        f"(on {what}, {side}x{side}) cannot see its whole input: the receptive field of its centre pixel "
        f"is {width} pixels ({levels} level(s), num_res_blocks {net['num_res_blocks']}, no attention at its "
        f"resolutions), so it cannot estimate the mean of its input, usually the data's largest-variance "
        f"mode. Fix: " + ", or ".join(fixes))


def _check_prior(cfg: dict, name: str, exp: dict, warnings: list[str]) -> None:
    """Warn when the forward process leaves the largest-variance mode of a band far from the prior
    (:mod:`wsgm.prior`); known here for simulated Gaussian fields (exact spectrum), for other data
    train warns from the decompose stage's estimate."""
    from wsgm import prior

    ds = cfg["datasets"][exp["dataset"]]
    if ds["kind"] != "gaussian":
        return
    lams = prior.exact_max_mode_variance(ds["size"], float(ds["xi"]), float(ds["eta"]), exp["J"], exp["wavelet"])
    for j in range(exp["J"], -1, -1):
        band = prior.band_name(exp["J"], j)
        r = prior.mismatch(exp["sde"], lams[band])
        if r > prior.THRESHOLD:
            warnings.append(
                f"config warning at 'experiments.{name}.sde': the forward process does not reach its prior "
                f"for model {j} of experiment {name!r}: m(T)²·λ_max / prior variance = {r:.3g} > "
                f"{prior.THRESHOLD:g} (λ_max = {lams[band]:.4g}, the largest mode variance of the normalized "
                f"band {band}; the sampled variance of that mode is then about {r:.1%} too small even with "
                "the exact score). Fix: raise sde.beta_max (vp, subvp, vp_exp), sde.T, or sde.sigma_max (ve)")


def _check_feature_sides(cfg: dict, name: str, exp: dict) -> None:
    """The reference stage computes FID features at every resolution k = 0..J (sides size/2^k,
    each a whole number: the J check above) whatever the metrics: wsgm-fields takes sides 2^a and
    3·2^a only (it halves while the side is >= 4, needing an even side each time)."""
    if cfg["fid"]["extractor"] != sizes.FIELDS:
        return
    ds_name = exp["dataset"]
    size = cfg["datasets"][ds_name]["size"]
    for k in range(exp["J"] + 1):
        side = size // 2**k
        if not sizes.fields_side_ok(side):
            lo, hi = sizes.nearest_fields_sides(size)
            raise ConfigError(
                f"config error at 'datasets.{ds_name}.size': fid.extractor {sizes.FIELDS} cannot take the "
                f"{side}x{side} images of experiment {name!r} at resolution {k} (size {size}, J={exp['J']}): "
                f"it halves each side while it is at least {sizes.FIELDS_MIN_SIDE} and needs it even each "
                f"time, so sides must be 2^a or 3·2^a. Fix: set size to {lo} or {hi}, or use fid.extractor: "
                f"{sizes.IDENTITY} (or {sizes.INCEPTION})")


def _check_counts(cfg: dict, name: str, exp: dict, warnings: list[str]) -> None:
    """Images on each side of every comparison evaluate makes: the samples (n_samples), the
    reference statistics (min(n_test, fid.n_reference) held-out images) and the data floor (n_samples
    held-out images, which n_floor must hold). Fewer than 2 is an error; FID/KID warnings as documented
    in :mod:`wsgm.metrics.sample_sizes`."""
    ds_name, fid = exp["dataset"], cfg["fid"]
    ds = cfg["datasets"][ds_name]
    n_samples = exp["sampling"]["n_samples"]
    samples_key = f"experiments.{name}.sampling.n_samples"
    if n_samples < sizes.MIN_SAMPLES:
        raise ConfigError(
            f"config error at '{samples_key}': {n_samples} sample(s) cannot be scored: every metric "
            f"compares two distributions and needs at least {sizes.MIN_SAMPLES} images on each side (with "
            f"1, FID's covariance is NaN and evaluate fails after training). Fix: set n_samples to at "
            f"least {sizes.MIN_SAMPLES} ({sizes.MIN_MEANINGFUL}+ for meaningful metrics)")
    _check_shards(name, exp)
    if ds["n_floor"] < n_samples:
        raise ConfigError(
            f"config error at 'datasets.{ds_name}.n_floor': experiment {name!r} draws n_samples = {n_samples}, "
            f"but its data floor is a held-out real set of the same size and the dataset holds out only "
            f"n_floor = {ds['n_floor']}. Fix: set datasets.{ds_name}.n_floor to at least {n_samples} (or "
            f"lower {samples_key})")
    sides = [(n_samples, samples_key)]  # (images, the key that sets them), smallest first wins ties
    if ds["n_test"] < fid["n_reference"]:
        sides.append((ds["n_test"], f"datasets.{ds_name}.n_test"))
    else:
        sides.append((fid["n_reference"], "fid.n_reference"))
    counts = (f"samples {n_samples}, reference {min(ds['n_test'], fid['n_reference'])} held-out images, "
              f"data floor {n_samples} held-out images")
    n, key = min(sides, key=lambda s: s[0])
    size, channels = ds["size"], ds["channels"]
    if "fid" in exp["metrics"]:
        d = sizes.feature_dim(fid["extractor"], size, channels)
        if why := sizes.frechet_warning(n, d):
            warnings.append(
                f"config warning at '{key}': experiment {name!r}: {why}; d = {d} for {fid['extractor']} "
                f"features of {channels}x{size}x{size} images (resolution 0; {counts}). Fix: raise it to "
                f"{max(2 * d, sizes.MIN_MEANINGFUL)} or more, or drop fid from experiments.{name}.metrics")
    if "kid" in exp["metrics"]:
        m, m_key = min([*sides, (fid["kid_subset_size"], "fid.kid_subset_size")], key=lambda s: s[0])
        if why := sizes.kid_warning(m):
            warnings.append(
                f"config warning at '{m_key}': experiment {name!r}: {why} (kid_subset_size "
                f"{fid['kid_subset_size']}, capped at the images on each side: {counts}). Fix: raise it "
                f"to {sizes.MIN_MEANINGFUL} or more, or drop kid from experiments.{name}.metrics")


def _check_shards(name: str, exp: dict) -> None:
    """sampling.shards: every shard draws at least one sample, and the sampler is batch-invariant."""
    from wsgm import solvers

    sampling = exp["sampling"]
    k, n = sampling.get("shards", 1), sampling["n_samples"]
    key = f"experiments.{name}.sampling.shards"
    if k > n:
        raise ConfigError(f"config error at '{key}': {k} shards of n_samples = {n} samples would leave "
                          f"shards without a sample. Fix: set shards to at most {n} (or raise n_samples)")
    if k > 1 and not solvers.get(sampling["sampler"]).batch_invariant:
        raise ConfigError(f"config error at '{key}': sampler {sampling['sampler']!r} controls its step size "
                          f"over the whole batch, so its samples depend on how they are split and {k} shards "
                          f"would not give the samples of one job. Fix: set shards: 1, or use a "
                          f"batch-invariant sampler (heun, dpmpp_2m, edm, ...)")


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


def inverse_problems(cfg: dict) -> list[str]:
    """Why each configured inverse task does not fit an experiment that solves it (the checks of
    wsgm.inverse's Inpaint.mask/check and SuperRes.check, computed from the specs' task sizes
    without building the tasks), as config messages (tests/test_config_checks.py compares them
    with the real tasks)."""
    from wsgm import specs

    inv, out = cfg["inverse"], []
    for name in inv["experiments"] or list(cfg["experiments"]):
        exp = cfg["experiments"][name]
        J, wavelet = exp["J"], exp["wavelet"]
        size = cfg["datasets"][exp["dataset"]]["size"]
        b = 2**J
        for task in inv["tasks"]:
            if task == "colorize":
                continue  # _check_inverse
            spec = specs.inverse_task(cfg, name, task)
            where = f"inverse task {task} for experiment {name!r} ({size}x{size} images, J={J})"
            if spec["kind"] == "superres":
                levels = spec["levels"]
                if levels < 1 or size % 2**levels:
                    out.append(f"config error at 'inverse.superres_levels': {where}: a low-pass of {levels} "
                               f"level(s) does not fit (size must be divisible by 2^{levels}). Fix: set "
                               "inverse.superres_levels to fewer levels, or list fitting experiments in "
                               "inverse.experiments")
                elif J > 0 and wavelet != spec["wavelet"]:
                    out.append(f"config error at 'experiments.{name}.wavelet': {where}: the super-resolution "
                               f"low-pass is {spec['wavelet']} (the deepest experiment's wavelet), this experiment "
                               f"uses {wavelet}. Fix: use one wavelet in the inverse experiments, or list "
                               "matching experiments in inverse.experiments")
                continue
            if J > 0 and wavelet != "haar":
                out.append(f"config error at 'experiments.{name}.wavelet': {where}: inpainting scale by scale "
                           f"needs Haar blocks, this experiment uses {wavelet}. Fix: use wavelet: haar, or drop "
                           f"{task} from inverse.tasks")
            elif spec["mask"] == "center":
                side, lo = spec["side"], (size - spec["side"]) // 2
                if not 0 < side < size:
                    out.append(f"config error at 'inverse.hole': {where}: the centred hole, aligned on the "
                               f"{2 * b}-pixel blocks of the deepest J, has side {side}, outside 1..{size - 1}. "
                               f"Fix: use larger images or a smaller deepest J, or drop {task} from "
                               "inverse.tasks")
                elif J > 0 and (lo % b or side % b):
                    out.append(f"config error at 'inverse.hole': {where}: the centred hole of side {side} at "
                               f"offset {lo} is not on the {b}x{b} Haar blocks. Fix: change inverse.hole, or "
                               f"drop {task} from inverse.tasks")
            else:
                block = spec["block"]
                if block < 1 or size % block or (J > 0 and block % b):
                    out.append(f"config error at 'inverse.block': {where}: blocks of side {block} must divide "
                               f"the image side {size}" + (f" and be a multiple of 2^J = {b}" if J else "")
                               + f". Fix: set inverse.block to such a side (0 = 2^J of the deepest "
                               "experiment), or drop inpaint_blocks from inverse.tasks")
    return out


def _check_inverse_alignment(cfg: dict, warnings: list[str], explicit: bool) -> None:
    """An inverse task that cannot run is an error where the config asks for inverse problems (an
    `inverse` section, or in_all), otherwise a warning (`snakemake inverse` would fail)."""
    problems = inverse_problems(cfg)
    if problems and (explicit or cfg["inverse"]["in_all"]):
        raise ConfigError(problems[0])
    warnings += [p.replace("config error", "config warning", 1) + " (only `snakemake inverse` needs it)"
                 for p in problems]


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


def _steps_with_budget(experiments: Any) -> dict[str, Any]:
    """{experiment: the steps it wrote} for experiments that write both train.steps and a budget
    (before defaults are filled: only what the user wrote counts)."""
    out = {}
    for name, exp in (experiments or {}).items() if isinstance(experiments, dict) else ():
        tcfg = exp.get("train") if isinstance(exp, dict) else None
        if isinstance(tcfg, dict) and tcfg.get("budget") is not None and "steps" in tcfg:
            out[name] = tcfg["steps"]
    return out


def _resolve_budgets(cfg: dict, written: dict[str, Any]) -> None:
    """Per experiment: a per-model steps list has J+1 entries; a budget derives each model's steps
    (wsgm.budget) into train.steps (written steps are an error, unless they are exactly the derived
    ones: a config checked twice); snapshot fractions give distinct steps below each model's steps."""
    from wsgm import budget

    fractions = cfg["learning_curve"]["fractions"]
    for name, exp in cfg["experiments"].items():
        key, tcfg, J = f"experiments.{name}.train", exp["train"], exp["J"]
        if tcfg["budget"] is not None:
            models = budget.plan(exp, cfg["datasets"][exp["dataset"]])
            derived = [m["steps"] for m in models]
            if name in written and written[name] != derived:
                raise ConfigError(
                    f"config error at '{key}.steps': experiment {name!r} gives both train.steps ({written[name]}) "
                    f"and train.budget ({tcfg['budget']}); with a budget each model's steps are derived from it "
                    f"(here {derived}, models 0..J). Fix: remove train.steps (or remove train.budget to set the "
                    "steps yourself)")
            for m in models:
                if m["steps"] < 1:
                    unit = m["unit"]
                    need = m["cost_per_step"] / m["share"]
                    raise ConfigError(
                        f"config error at '{key}.budget': the budget {tcfg['budget']} buys model {m['scale']} of "
                        f"experiment {name!r} less than one training step (its share {m['share']:.3g} of the budget, "
                        f"{m['cost_per_step']:.4g} {unit} per step at batch_size {tcfg['batch_size']}). Fix: raise "
                        f"train.budget.{unit} to at least {need:.3g} (better 1000x that)")
            tcfg["steps"] = derived
        steps = tcfg["steps"]
        if isinstance(steps, list) and len(steps) != J + 1:
            raise ConfigError(
                f"config error at '{key}.steps': the per-model list {steps} has {len(steps)} entries but J={J} "
                f"needs J+1 = {J + 1} (models 0..J, finest first). Fix: give one number per model, or a single "
                "integer for all models")
        for j in range(J + 1):
            total = budget.steps_of(tcfg, j)
            at = [budget.snapshot_step(total, f) for f in fractions]
            if len(set(at)) < len(at) or max(at, default=0) >= total:
                raise ConfigError(
                    f"config error at 'learning_curve.fractions': model {j} of experiment {name!r} trains "
                    f"{total} steps, so the fractions {fractions} give snapshot steps {at}, which must be "
                    f"distinct and below {total}. Fix: use fewer or more widely spaced fractions, or more steps")


def print_warning(message: str) -> None:
    print(f"wsgm: {message}", file=sys.stderr)


def check(config: dict, warn: Callable[[str], None] | None = print_warning) -> dict:
    """Return a validated copy of ``config`` with every default filled in; raise ConfigError.
    Each warning (see :func:`warnings`) is passed to ``warn`` (default: printed on stderr)."""
    cfg, found = _checked(config)
    if warn is not None:
        for message in found:
            warn(message)
    return cfg


def warnings(config: dict) -> list[str]:
    """The warnings of a valid config: metrics that would be statistically meaningless, inverse
    tasks that would fail where the config does not ask for inverse problems."""
    return _checked(config)[1]


def _checked(config: dict) -> tuple[dict, list[str]]:
    if not isinstance(config, dict):
        raise ConfigError("config error: the config file must be a mapping of keys to values. Fix: "
                          "write its keys (datasets:, experiments:, ...) at the top level")
    explicit = "inverse" in config
    config = copy.deepcopy(config)
    _share_models(config.get("experiments"))
    written = _steps_with_budget(config.get("experiments"))
    cfg = _fill_defaults(config, schema())
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(cfg))
    if error is not None:
        raise ConfigError(_schema_message(error))
    _check_integers(cfg, schema())
    found: list[str] = []
    _check_semantics(cfg, found, explicit)
    _resolve_budgets(cfg, written)
    return cfg, found


def load(path: str | Path, overrides: dict | None = None, warn: Callable[[str], None] | None = None) -> dict:
    """Read a YAML config file, apply nested ``overrides`` and check it. Warnings go to ``warn``:
    none by default (a stage job's config was checked, and warned about, at planning);
    `wsgm check-config` passes :func:`print_warning`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist. Fix: pass --config with an existing file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        opened = getattr(exc, "context_mark", None)
        if getattr(exc, "context", None) and opened is not None and opened is not mark:
            what += f", {exc.context} at line {opened.line + 1}, column {opened.column + 1}"
        raise ConfigError(f"config file {where}: not valid YAML ({what}). Fix: correct the syntax at "
                          "that line and column (indentation, a missing ':' or closing bracket, quotes)") from None
    if raw is None and not overrides:
        raise ConfigError(f"config file {path} is empty (or only comments). Fix: write its datasets: and "
                          "experiments: sections (see config/README.md and config/test.yaml)")
    if overrides:
        raw = merge(raw or {}, overrides)
    return check(raw, warn)


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
            if not kind and "oneOf" in sub:
                kind = list(dict.fromkeys(_resolve_ref(b).get("type", "") for b in sub["oneOf"]))
            if isinstance(kind, list):
                kind = " \\| ".join(map(str, kind))
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
