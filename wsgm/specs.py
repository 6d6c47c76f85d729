"""Per-stage specs: exactly the config values a stage depends on, plus its code version.

The Snakefile passes each spec to its rule through ``params:`` (so Snakemake's params trigger
reruns exactly the stale stages) and the CLI builds the same spec from ``--config``. Nothing a
stage does not read is in its spec: editing the sampling steps retrains nothing, editing one
experiment's net retrains only that experiment.
"""

from __future__ import annotations

import json
import re

from wsgm import samplers
from wsgm import sde as sde_lib
from wsgm.code_version import stage_code_hash
from wsgm.steps import Steps

DATASET_KEYS = {
    "gaussian": ("kind", "size", "channels", "n", "xi", "eta", "chunk", "n_test", "n_floor"),
    "npz": ("kind", "size", "channels", "path", "key", "offset", "scale", "chunk", "n_test", "n_floor"),
    "phi4": ("kind", "size", "channels", "n", "beta", "chains", "chunk", "n_test", "n_floor"),
    "cifar10": ("kind", "size", "channels", "url", "sha256", "md5", "path", "split", "limit", "license",
                "chunk", "n_test", "n_floor"),
    "images": ("kind", "size", "channels", "url", "sha256", "md5", "path", "crop", "limit", "license",
               "chunk", "n_test", "n_floor"),
    "photos": ("kind", "size", "channels", "n", "photos", "downscale", "held_out", "flips", "chunk",
               "n_test", "n_floor"),
}
FETCHED_KINDS = ("cifar10", "images")
STAGE_MODULES = {
    "dataset:gaussian": "wsgm.data.gaussian",
    "dataset:npz": "wsgm.data.npz",
    "dataset:phi4": "wsgm.data.phi4",
    "dataset:cifar10": "wsgm.data.cifar",
    "dataset:images": "wsgm.data.images",
    "dataset:photos": "wsgm.data.photos",
    "fetch": "wsgm.data.fetch",
    "decompose": "wsgm.decompose",
    "train": "wsgm.train",
    "sample": "wsgm.cascade",
    "evaluate": "wsgm.evaluate",
    "report": "wsgm.report",
    "reference": "wsgm.reference",
    "inverse_evaluate": "wsgm.evaluate_inverse",
    "likelihood": "wsgm.likelihood",
}
# The CLI function each stage runs through (part of its code version).
STAGE_COMMANDS = {"dataset": "cmd_dataset", "fetch": "cmd_fetch", "decompose": "cmd_decompose",
                  "train": "cmd_train", "sample": ("cmd_sample", "cmd_gather"), "evaluate": "cmd_evaluate",
                  "report": "cmd_report", "reference": "cmd_reference", "inverse_evaluate": ("cmd_evaluate", "cmd_evaluate_inverse"),
                  "likelihood": "cmd_likelihood"}
INCEPTION_WEIGHTS = "resources/inception-v3-compat.pth"

RESULTS = "results"
RESOURCES = "resources"


def _code(stage: str) -> str:
    """The code version of a stage: every module it runs, its CLI command included."""
    return stage_code_hash(STAGE_MODULES[stage], STAGE_COMMANDS[stage.split(":")[0]])


def paper_code() -> str:
    """The code version of the paper bench (`wsgm paper`, the rule `paper`)."""
    return stage_code_hash("wsgm.paper", "cmd_paper")


def as_json(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def experiment(cfg: dict, name: str) -> dict:
    if name not in cfg["experiments"]:
        raise KeyError(f"experiment {name!r} is not in the config; defined: {sorted(cfg['experiments'])}")
    return cfg["experiments"][name]


def dataset(cfg: dict, name: str) -> dict:
    if name not in cfg["datasets"]:
        raise KeyError(f"dataset {name!r} is not in the config; defined: {sorted(cfg['datasets'])}")
    ds = cfg["datasets"][name]
    return {"stage": "dataset", "name": name, "dataset": {k: ds[k] for k in DATASET_KEYS[ds["kind"]]},
            "seed": cfg["seed"], "code": _code(f"dataset:{ds['kind']}")}


def fetch(url: str, sha256: str = "", md5: str = "") -> dict:
    return {"stage": "fetch", "url": url, "sha256": sha256 or "", "md5": md5 or "", "code": _code("fetch")}


def decompose(cfg: dict, wavelet: str, J: int) -> dict:
    return {"stage": "decompose", "wavelet": wavelet, "J": int(J), "code": _code("decompose")}


def models_owner(cfg: dict, exp_name: str) -> str:
    """The experiment that trains ``exp_name``'s models: itself, or the one named by models_from."""
    return experiment(cfg, exp_name).get("models_from") or exp_name


def trained_experiments(cfg: dict) -> list[str]:
    """The experiments that train models (those without models_from)."""
    return [name for name in cfg["experiments"] if models_owner(cfg, name) == name]


def trained_pattern(cfg: dict) -> str:
    """Regex of the experiment names that train models (the train rule's wildcard constraint)."""
    return "|".join(map(re.escape, trained_experiments(cfg)))


# train keys that are resources, not results (like threads): out of the hashed spec, so editing
# them reruns nothing and a checkpoint resumes under another process count
TRAIN_RESOURCES = ("gpus", "nodes")


def train_processes(cfg: dict, exp_name: str) -> tuple[int, int]:
    """(DDP processes per node = train.gpus, train.nodes) of an experiment's training jobs."""
    tcfg = experiment(cfg, models_owner(cfg, exp_name))["train"]
    return int(tcfg.get("gpus", 1)), int(tcfg.get("nodes", 1))


def train(cfg: dict, exp_name: str, scale: int) -> dict:
    exp_name = models_owner(cfg, exp_name)  # a sharing experiment trains nothing of its own
    exp, scale = experiment(cfg, exp_name), int(scale)
    if not 0 <= scale <= exp["J"]:
        raise KeyError(f"scale {scale} is outside 0..J={exp['J']} for experiment {exp_name!r}")
    return {"stage": "train", "experiment": exp_name, "scale": scale, "J": exp["J"],
            "sde": sde_lib.relevant(exp["sde"]), "net": _net(exp), "train": _train(exp, scale),
            "seed": cfg["seed"], "device": cfg["device"], "code": _code("train"),
            **_budget_entries(cfg, exp, scale)}


def _train(exp: dict, scale: int) -> dict:
    """The train section of model ``scale``: its own steps (one of a per-model list, or derived
    from a budget), without the experiment-level budget keys (those are in ``budget``)."""
    from wsgm import budget

    tcfg = {k: v for k, v in exp["train"].items() if k not in budget.BUDGET_KEYS and k not in TRAIN_RESOURCES}
    return {**tcfg, "steps": budget.steps_of(exp["train"], scale)}


def _budget_entries(cfg: dict, exp: dict, scale: int) -> dict:
    """The training spec's ``budget`` (the experiment's budget, its split, this model's share, cost
    and FLOPs per step) when a budget is set, and ``snapshots`` (fractions, steps) when learning
    curves are on; nothing otherwise (so a config without them keeps its specs)."""
    from wsgm import budget

    out = {}
    if exp["train"].get("budget") is not None:
        ds = cfg["datasets"][exp["dataset"]]
        model = budget.plan(exp, ds)[scale]
        out["budget"] = {"total": exp["train"]["budget"], "split": exp["train"]["budget_split"],
                         "share": model["share"], "cost_per_step": model["cost_per_step"],
                         "flops_per_step": budget.cost_per_step("flops", exp["net"], ds["channels"], ds["size"],
                                                                exp["J"], scale, exp["train"]["batch_size"])}
    fractions = cfg.get("learning_curve", {}).get("fractions") or []
    if fractions:
        steps = budget.steps_of(exp["train"], scale)
        out["snapshots"] = {budget.fraction_label(f): budget.snapshot_step(steps, f) for f in sorted(fractions)}
    return out


def _net(exp: dict) -> dict:
    """The net section as the training spec records it: sigma_data only where something uses it
    (net.parameterization or train.weighting edm), so it retrains nothing else."""
    net = dict(exp["net"])
    if "edm" not in (net.get("parameterization"), exp["train"].get("weighting")):
        net.pop("sigma_data", None)
    return net


FID_KEYS = {"reference": ("extractor", "weights", "sha256", "url", "range", "n_reference"),
            "evaluate": ("extractor", "weights", "sha256", "url", "range", "kid_subsets", "kid_subset_size")}


def fid(cfg: dict, stage: str) -> dict:
    """The feature-space settings a stage reads; empty ``weights`` = the copy fetched into resources/."""
    out = {k: cfg["fid"][k] for k in FID_KEYS[stage]}
    if out["extractor"] != "inception-v3-compat":  # weights and range mean nothing to the others
        out = {k: v for k, v in out.items() if k not in ("weights", "sha256", "url", "range")}
    else:
        out["weights"] = out["weights"] or INCEPTION_WEIGHTS
    return out


def sample(cfg: dict, exp_name: str, steps) -> dict:
    exp = experiment(cfg, exp_name)
    steps = Steps(steps).spec_value
    ds = cfg["datasets"][exp["dataset"]]
    sampling = samplers.relevant({k: v for k, v in exp["sampling"].items() if k not in RUNTIME_SAMPLING})
    if not batch_invariant(sampling["sampler"]):  # its samples depend on the batch they are drawn in
        sampling["batch_size"] = exp["sampling"]["batch_size"]
    return {"stage": "sample", "experiment": exp_name, "steps": steps, "J": exp["J"],
            "wavelet": exp["wavelet"], "sde": sde_lib.relevant(exp["sde"]), "sampling": sampling,
            "shape": [sampling["n_samples"], ds["channels"], ds["size"], ds["size"]],
            "seed": cfg["seed"], "device": cfg["device"], "code": _code("sample")}


def snapshot_entry(cfg: dict, exp_name: str, fraction) -> dict:
    """What a learning-curve point adds to its sample and evaluate specs: the snapshot fraction,
    the training steps of each model at it, and the training compute summed over the models."""
    from wsgm import budget

    owner = experiment(cfg, models_owner(cfg, exp_name))
    f = float(fraction)
    if budget.fraction_label(f) not in map(budget.fraction_label, cfg["learning_curve"]["fractions"]):
        raise KeyError(f"fraction {fraction} is not in learning_curve.fractions {cfg['learning_curve']['fractions']}")
    compute = budget.training_compute(owner, cfg["datasets"][owner["dataset"]], f)
    return {"snapshot": {"fraction": f, "train_steps": compute["steps"], "train_flops": compute["flops"],
                         "train_image_pixels": compute["image_pixels"]}}


def sample_snapshot(cfg: dict, exp_name: str, steps, fraction) -> dict:
    """The sample spec of a learning-curve point: the experiment's sampling from its models'
    snapshot at ``fraction`` of training (same seeds as the final models': common random numbers)."""
    return {**sample(cfg, exp_name, steps), **snapshot_entry(cfg, exp_name, fraction)}


def evaluate_snapshot(cfg: dict, exp_name: str, steps, fraction) -> dict:
    return {**evaluate(cfg, exp_name, steps), **snapshot_entry(cfg, exp_name, fraction)}


# sampling keys that are not result parameters: the step list (one job per entry), the batch size
# (per-sample randomness: the samples do not depend on it, but for rk45) and the shard count
RUNTIME_SAMPLING = ("steps", "batch_size", "shards")


def batch_invariant(sampler: str) -> bool:
    """Whether a sampler's samples are independent of their batch (all but rk45)."""
    return samplers.solvers.get(sampler).batch_invariant


def shards(cfg: dict, exp_name: str) -> int:
    """K, the number of jobs an experiment's sampling (and inverse problems) is split into."""
    return int(experiment(cfg, exp_name)["sampling"].get("shards", 1))


def sharded_pattern(cfg: dict, sharded: bool) -> str:
    """Regex of the experiment names whose sampling is (``sharded``) or is not split into shards
    (the wildcard constraint choosing between the rules `sample` and `gather_samples`)."""
    names = [n for n in cfg["experiments"] if (shards(cfg, n) > 1) == sharded]
    return "|".join(map(re.escape, names)) or "(?!)"


def batch_size(cfg: dict, exp_name: str) -> int:
    """The batch size of an experiment's sampling jobs (a runtime setting, ``--batch-size``)."""
    return int(experiment(cfg, exp_name)["sampling"]["batch_size"])


def likelihood(cfg: dict, exp_name: str, n: int = 64, offset: int | None = None, estimator: str = "rademacher",
               probes: int = 1, bin_width: float | None = None, batch_size: int | None = None,
               rtol: float = 1e-5, atol: float = 1e-5) -> dict:
    """Bits/dim of n held-out real images from ``offset`` within the dataset's floor rows (None: 0,
    the images inverse problems measure too)."""
    exp = experiment(cfg, exp_name)
    ds = cfg["datasets"][exp["dataset"]]
    opts = {"n": n, "offset": offset, "estimator": estimator, "probes": probes, "bin_width": bin_width,
            "batch_size": batch_size, "rtol": rtol, "atol": atol}
    return {"stage": "likelihood", "experiment": exp_name, "J": exp["J"], "wavelet": exp["wavelet"],
            "sde": sde_lib.relevant(exp["sde"]), "shape": [n, ds["channels"], ds["size"], ds["size"]],
            "likelihood": opts, "seed": cfg["seed"], "device": cfg["device"], "code": _code("likelihood")}


def physics(cfg: dict, dataset_name: str) -> dict:
    """The dataset parameters physics metrics read, as a spec entry: φ⁴'s coupling β; none otherwise."""
    ds = cfg["datasets"][dataset_name]
    return {"physics": {"beta": ds["beta"]}} if ds["kind"] == "phi4" else {}


def evaluate(cfg: dict, exp_name: str, steps) -> dict:
    exp = experiment(cfg, exp_name)
    return {"stage": "evaluate", "experiment": exp_name, "steps": Steps(steps).spec_value, "J": exp["J"],
            "metrics": exp["metrics"], "fid": fid(cfg, "evaluate"), "intervals": cfg["intervals"], "seed": cfg["seed"],
            "device": cfg["device"], "code": _code("evaluate"), **physics(cfg, exp["dataset"])}


INVERSE_TASKS = ("inpaint_center", "inpaint_blocks", "colorize", "superres")


def inverse_task(cfg: dict, exp_name: str, task: str) -> dict:
    """The measurement of an inverse task in pixels (hole side, block size, low-pass levels), the
    same for every experiment of the config: aligned on the 2^J blocks of its deepest cascade."""
    exp = experiment(cfg, exp_name)
    if task not in INVERSE_TASKS:
        raise KeyError(f"unknown inverse task {task!r}; use one of {INVERSE_TASKS}")
    inv, size = cfg["inverse"], cfg["datasets"][exp["dataset"]]["size"]
    align = 2 ** max(e["J"] for e in cfg["experiments"].values())
    if task == "colorize":
        return {"name": task, "kind": "colorize"}
    if task == "superres":  # the deepest experiment's low-pass, so its cascade starts from it
        deepest = max(cfg["experiments"].values(), key=lambda e: e["J"])
        return {"name": task, "kind": "superres", "levels": inv["superres_levels"] or max(1, deepest["J"]),
                "wavelet": deepest["wavelet"]}
    if task == "inpaint_center":
        side = max(2 * align, round(inv["hole"] * size / (2 * align)) * 2 * align)
        return {"name": task, "kind": "inpaint", "mask": "center", "side": min(side, size - 2 * align)}
    return {"name": task, "kind": "inpaint", "mask": "blocks", "block": inv["block"] or align,
            "fraction": inv["fraction"]}


def inverse(cfg: dict, exp_name: str, task: str, steps) -> dict:
    """The sample spec of one inverse problem: the experiment's sampling plus the task."""
    return {**sample(cfg, exp_name, steps), "inverse": inverse_task(cfg, exp_name, task)}


def inverse_evaluate(cfg: dict, exp_name: str, task: str, steps) -> dict:
    return {**evaluate(cfg, exp_name, steps), "inverse": inverse_task(cfg, exp_name, task),
            "code": _code("inverse_evaluate")}


def reference(cfg: dict, dataset_name: str, wavelet: str, J: int) -> dict:
    """Real-data statistics at resolutions 0..J: depends on the data, wavelet, J and feature space."""
    if dataset_name not in cfg["datasets"]:
        raise KeyError(f"dataset {dataset_name!r} is not in the config; defined: {sorted(cfg['datasets'])}")
    texture = any("texture" in e["metrics"] for e in cfg["experiments"].values() if e["dataset"] == dataset_name)
    return {"stage": "reference", "dataset": dataset_name, "wavelet": wavelet, "J": int(J),
            "fid": fid(cfg, "reference"), "texture": texture, "device": cfg["device"], "code": _code("reference"),
            **physics(cfg, dataset_name)}


def inception_inputs(cfg: dict) -> list[str]:
    """The fetched Inception weights as a rule input, when the config needs them."""
    return [INCEPTION_WEIGHTS] if uses_inception(cfg) else []


def uses_inception(cfg: dict) -> bool:
    """Whether some experiment scores FID/KID with Inception weights that the fetch rule provides."""
    return cfg["fid"]["extractor"] == "inception-v3-compat" and not cfg["fid"]["weights"] and any(
        {"fid", "kid"} & set(e["metrics"]) for e in cfg["experiments"].values())


def models_view(cfg: dict, exp_name: str) -> list[dict]:
    """Per model j = 0..J of an experiment: its input side, receptive field, attention resolutions,
    padding and whether it sees its whole input (:func:`wsgm.nets.receptive_field.describe`)."""
    from wsgm.nets import receptive_field

    exp = experiment(cfg, exp_name)
    size, J = cfg["datasets"][exp["dataset"]]["size"], exp["J"]
    return [{"scale": j, **receptive_field.describe(exp["net"], receptive_field.model_side(size, J, j))}
            for j in range(J + 1)]


def report(cfg: dict) -> dict:
    exps = {name: {"J": e["J"], "dataset": e["dataset"], "steps": [Steps(s).label for s in e["sampling"]["steps"]],
                   "sampler": e["sampling"]["sampler"], "models": models_view(cfg, name)}
            for name, e in cfg["experiments"].items()}
    return {"stage": "report", "experiments": exps, "report": cfg["report"], "code": _code("report"),
            **training_view(cfg)}


# --- paths (the single source of the results layout) ------------------------------------------
# Templates: the rules use them as they are (their {fields} are wildcards), the path functions
# below fill them in; {steps} is a step label (Steps.label: "8", "8-8-32").

DATA = f"{RESULTS}/data/{{dataset}}/data.zarr"
STORE = f"{RESULTS}/decomposed/{{dataset}}/{{wavelet}}_J{{J}}.zarr"
MODEL = f"{RESULTS}/models/{{experiment}}/scale{{j}}.pt"
CHECKPOINT = f"{RESULTS}/checkpoints/{{experiment}}/scale{{j}}.ckpt"
SAMPLES = f"{RESULTS}/samples/{{experiment}}/steps{{steps}}.zarr"
METRICS = f"{RESULTS}/metrics/{{experiment}}/steps{{steps}}.json"
REFERENCE = f"{RESULTS}/reference/{{dataset}}/{{wavelet}}_J{{J}}.npz"
INVERSE = f"{RESULTS}/inverse/{{experiment}}/{{task}}_steps{{steps}}.zarr"
INVERSE_METRICS = f"{RESULTS}/inverse/{{experiment}}/{{task}}_steps{{steps}}.json"
LIKELIHOOD = f"{RESULTS}/likelihood/{{experiment}}.json"
# shard i of K of a sample / inverse store (sampling.shards > 1), joined into SAMPLES / INVERSE
SHARD = f"{RESULTS}/samples/{{experiment}}/shards/steps{{steps}}/{{i}}of{{K}}.zarr"
INVERSE_SHARD = f"{RESULTS}/inverse/{{experiment}}/shards/{{task}}_steps{{steps}}/{{i}}of{{K}}.zarr"
REPORT_DIR = f"{RESULTS}/report"
BENCH_DIR = f"{RESULTS}/bench"


# Learning curves (learning_curve.fractions): {frac} is a fraction label ("0.25", budget.fraction_label)
MODEL_SNAPSHOT = f"{RESULTS}/models/{{experiment}}/scale{{j}}.at{{frac}}.pt"
SAMPLES_SNAPSHOT = f"{RESULTS}/samples/{{experiment}}/steps{{steps}}.at{{frac}}.zarr"
METRICS_SNAPSHOT = f"{RESULTS}/metrics/{{experiment}}/steps{{steps}}.at{{frac}}.json"


def snapshot_model_path(exp_name: str, scale: int, fraction) -> str:
    from wsgm import budget

    return MODEL_SNAPSHOT.format(experiment=exp_name, j=scale, frac=budget.fraction_label(float(fraction)))


def snapshot_outputs(cfg: dict) -> list[str]:
    """The train rule's snapshot outputs ({experiment} and {j} left as wildcards); [] when off."""
    from wsgm import budget

    return [MODEL_SNAPSHOT.replace("{frac}", budget.fraction_label(f)) for f in sorted(cfg["learning_curve"]["fractions"])]


def snapshot_model_paths(cfg: dict, exp_name: str, fraction) -> list[str]:
    owner = models_owner(cfg, exp_name)
    return [snapshot_model_path(owner, j, fraction) for j in range(experiment(cfg, owner)["J"] + 1)]


def learning_curve_steps(cfg: dict, exp_name: str):
    """The step setting at which an experiment's snapshots are sampled (learning_curve.steps, else
    its costliest sampling setting)."""
    e = experiment(cfg, exp_name)
    return cfg["learning_curve"]["steps"] or max(e["sampling"]["steps"], key=lambda s: Steps(s).cost)


def snapshot_metrics_path(exp_name: str, steps, fraction) -> str:
    from wsgm import budget

    return METRICS_SNAPSHOT.format(experiment=exp_name, steps=Steps(steps).label,
                                   frac=budget.fraction_label(float(fraction)))


def snapshot_samples_path(exp_name: str, steps, fraction) -> str:
    from wsgm import budget

    return SAMPLES_SNAPSHOT.format(experiment=exp_name, steps=Steps(steps).label,
                                   frac=budget.fraction_label(float(fraction)))


def all_snapshot_metrics(cfg: dict) -> list[str]:
    """Every learning-curve point's metrics file (experiment × fraction); [] when off."""
    return [snapshot_metrics_path(name, learning_curve_steps(cfg, name), f) for name in cfg["experiments"]
            for f in sorted(cfg["learning_curve"]["fractions"])]


def log_path(*parts: str) -> str:
    """A job's log: results/logs/PART/.../LAST.log (parts may hold wildcards)."""
    return "/".join([RESULTS, "logs", *parts]) + ".log"


def benchmark_path(*parts: str) -> str:
    """A job's Snakemake benchmark: results/benchmarks/PART/.../LAST.tsv."""
    return "/".join([RESULTS, "benchmarks", *parts]) + ".tsv"


def data_path(dataset_name: str) -> str:
    return DATA.format(dataset=dataset_name)


def resource_path(dataset_name: str, url: str) -> str:
    """Where the fetch stage puts a dataset's download (named after the URL's last part)."""
    from urllib.parse import unquote, urlparse

    name = unquote(urlparse(url).path).rstrip("/").rpartition("/")[2] or "download"
    return f"{RESOURCES}/{dataset_name}/{name}"


def dataset_source(dataset_name: str, ds: dict) -> str | None:
    """The file or folder a dataset is converted from: its fetched download, else its path."""
    if ds["kind"] in FETCHED_KINDS and ds["url"]:
        return resource_path(dataset_name, ds["url"])
    return ds.get("path") or None


def store_path(cfg: dict, exp_name: str) -> str:
    exp = experiment(cfg, exp_name)
    return STORE.format(dataset=exp["dataset"], wavelet=exp["wavelet"], J=exp["J"])


def model_paths(cfg: dict, exp_name: str) -> list[str]:
    owner = models_owner(cfg, exp_name)
    return [MODEL.format(experiment=owner, j=j) for j in range(experiment(cfg, owner)["J"] + 1)]


def samples_path(exp_name: str, steps) -> str:
    return SAMPLES.format(experiment=exp_name, steps=Steps(steps).label)


def inverse_path(exp_name: str, task: str, steps) -> str:
    return INVERSE.format(experiment=exp_name, task=task, steps=Steps(steps).label)


def shard_path(exp_name: str, steps, i: int, k: int, task: str | None = None) -> str:
    """Shard i of k of a sample store (of an inverse problem's store with ``task``)."""
    if task:
        return INVERSE_SHARD.format(experiment=exp_name, task=task, steps=Steps(steps).label, i=i, K=k)
    return SHARD.format(experiment=exp_name, steps=Steps(steps).label, i=i, K=k)


def shard_paths(exp_name: str, steps, k: int, task: str | None = None) -> list[str]:
    return [shard_path(exp_name, steps, i, k, task) for i in range(k)]


def inverse_metrics_path(exp_name: str, task: str, steps) -> str:
    return INVERSE_METRICS.format(experiment=exp_name, task=task, steps=Steps(steps).label)


def all_inverse(cfg: dict) -> list[str]:
    """The metrics files of ``snakemake inverse``: every configured task × experiment × step setting
    (default: each experiment's costliest step setting)."""
    inv = cfg["inverse"]
    out = []
    for name in inv["experiments"] or list(cfg["experiments"]):
        e = experiment(cfg, name)
        for steps in inv["steps"] or [max(e["sampling"]["steps"], key=lambda s: Steps(s).cost)]:
            out += [inverse_metrics_path(name, task, steps) for task in inv["tasks"]]
    return out


def metrics_path(exp_name: str, steps) -> str:
    return METRICS.format(experiment=exp_name, steps=Steps(steps).label)


def likelihood_path(exp_name: str) -> str:
    return LIKELIHOOD.format(experiment=exp_name)


def reference_path(cfg: dict, exp_name: str) -> str:
    exp = experiment(cfg, exp_name)
    return REFERENCE.format(dataset=exp["dataset"], wavelet=exp["wavelet"], J=exp["J"])


def checkpoint_path(exp_name: str, scale: int) -> str:
    return CHECKPOINT.format(experiment=exp_name, j=scale)


REPORT_FILES = {
    "quality": f"{REPORT_DIR}/quality_vs_steps.png",
    "samples": f"{REPORT_DIR}/samples.png",
    "spectra": f"{REPORT_DIR}/spectra.png",
    "summary": f"{REPORT_DIR}/summary.json",
    "quality_svg": f"{REPORT_DIR}/quality_vs_steps.svg",
    "spectra_svg": f"{REPORT_DIR}/spectra.svg",
    "scales": f"{REPORT_DIR}/quality_per_scale.png",
    "scales_svg": f"{REPORT_DIR}/quality_per_scale.svg",
    "steps_grid": f"{REPORT_DIR}/samples_per_steps.png",
    "table_md": f"{REPORT_DIR}/best.md",
    "table_html": f"{REPORT_DIR}/best.html",
    "cost": f"{REPORT_DIR}/quality_vs_cost.png",
    "cost_svg": f"{REPORT_DIR}/quality_vs_cost.svg",
    "time": f"{REPORT_DIR}/quality_vs_time.png",
    "time_svg": f"{REPORT_DIR}/quality_vs_time.svg",
}


TRAINING_FILES = {  # with learning curves (learning_curve.fractions) only
    "training": f"{REPORT_DIR}/quality_vs_training.png",
    "training_svg": f"{REPORT_DIR}/quality_vs_training.svg",
}


def report_files(cfg: dict) -> dict[str, str]:
    """The report's outputs: REPORT_FILES, plus quality_vs_training with learning curves."""
    return {**REPORT_FILES, **(TRAINING_FILES if cfg["learning_curve"]["fractions"] else {})}


def report_metrics(cfg: dict) -> list[str]:
    """The metrics files the report reads: every (experiment, steps), plus with learning curves each
    snapshot's and the final models' at the learning-curve step setting."""
    out = all_metrics(cfg)
    if cfg["learning_curve"]["fractions"]:
        out += [metrics_path(n, learning_curve_steps(cfg, n)) for n in cfg["experiments"]]
        out += all_snapshot_metrics(cfg)
    return list(dict.fromkeys(out))


def training_view(cfg: dict) -> dict:
    """The report spec's training compute per experiment (final models, and the learning-curve step
    setting and fractions), when some experiment has a budget or learning curves are on; else {}."""
    from wsgm import budget

    fractions = sorted(cfg["learning_curve"]["fractions"])
    if not fractions and all(e["train"].get("budget") is None for e in cfg["experiments"].values()):
        return {}
    out = {}
    for name in cfg["experiments"]:
        owner = experiment(cfg, models_owner(cfg, name))
        compute = budget.training_compute(owner, cfg["datasets"][owner["dataset"]])
        out[name] = {"train_flops": compute["flops"], "train_image_pixels": compute["image_pixels"],
                     "train_steps": compute["steps"], "budget": owner["train"].get("budget"),
                     "budget_split": owner["train"]["budget_split"] if owner["train"].get("budget") else None}
        if fractions:
            out[name]["learning_curve_steps"] = Steps(learning_curve_steps(cfg, name)).label
    return {"training": out, **({"learning_curve": {"fractions": fractions}} if fractions else {})}


def all_metrics(cfg: dict) -> list[str]:
    return [metrics_path(name, s) for name, e in cfg["experiments"].items()
            for s in e["sampling"]["steps"]]


def all_samples(cfg: dict) -> dict[str, str]:
    """``EXPERIMENT:LABEL`` → sample store, for the per-step-count grids."""
    return {f"{name}:{Steps(s).label}": samples_path(name, s) for name, e in cfg["experiments"].items()
            for s in e["sampling"]["steps"]}
