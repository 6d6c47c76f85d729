"""``wsgm <stage>``: one subcommand per pipeline stage, usable with or without Snakemake.

Each stage takes its spec either as JSON (``--spec``, what the Snakemake rules pass) or from a
config file plus the names that select it (``--config config/config.yaml --experiment E ...``);
paths default to the pipeline's results layout. Outputs are written atomically and carry a
provenance record; ``wsgm audit PATH`` walks a result back to the data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from wsgm import config as config_lib
from wsgm import specs
from wsgm.errors import Interrupted, UserError
from wsgm.provenance import Stage, audit, record_path, run_stage
from wsgm.steps import Steps

log = logging.getLogger("wsgm")


class _LazyConfig:
    """The config, read once and only when a spec or a path has to come from it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args, self._cfg = args, None

    def _load(self) -> dict:
        if self._cfg is None:
            if not self._args.config:
                raise UserError("no --config given: pass --config FILE, or --spec JSON (as the "
                                "Snakemake rules do) together with every input and output path")
            self._cfg = config_lib.load(self._args.config)
        return self._cfg

    def __getitem__(self, key):
        return self._load()[key]

    def get(self, key, default=None):
        return self._load().get(key, default)


def _spec(args: argparse.Namespace, build: Callable[[_LazyConfig], dict]) -> tuple[dict, _LazyConfig]:
    """The stage's spec (from --spec, else built from --config) and the config for default paths."""
    cfg = _LazyConfig(args)
    if args.spec:
        return json.loads(args.spec), cfg
    try:
        return build(cfg), cfg
    except KeyError as exc:
        raise UserError(exc.args[0]) from None


def _device(spec: dict):
    from wsgm.runtime import resolve_device

    return resolve_device(spec.get("device", "auto"))


# --- stages -----------------------------------------------------------------------------------

def cmd_dataset(args):
    import importlib

    spec, _ = _spec(args, lambda cfg: specs.dataset(cfg, args.dataset))
    out = Path(args.out or specs.data_path(spec["name"]))
    d = spec["dataset"]
    module = importlib.import_module(specs.STAGE_MODULES[f"dataset:{d['kind']}"])
    if hasattr(module, "simulate"):  # simulated data; the other kinds convert a source
        work, inputs = (lambda t: module.simulate(spec, t["data"])), {}
    else:
        source = Path(args.source or specs.dataset_source(spec["name"], d))
        # a fetched download carries a provenance record; a user's own file or folder does not
        inputs = {"source": source} if d.get("url") else {}
        work = lambda t: module.convert(spec, source, t["data"])  # noqa: E731
    run_stage("dataset", spec, inputs, {"data": (out, True)}, work)


def cmd_fetch(args):
    from wsgm.data.fetch import fetch
    from wsgm.provenance import Stage

    out = Path(args.out)
    spec = specs.fetch(args.url, args.sha256, args.md5)
    record_path(out).unlink(missing_ok=True)
    stage = Stage("fetch", spec, {})
    stage.extra = fetch(args.url, out, args.sha256, args.md5, retries=args.retries)
    stage.finish(out)
    log.info("fetch done: %s (%d bytes, sha256 %s)", out, stage.extra["bytes"], stage.extra["sha256"])


def cmd_decompose(args):
    from wsgm.decompose import decompose

    def build(cfg):
        exp = specs.experiment(cfg, args.experiment)
        return specs.decompose(cfg, exp["wavelet"], exp["J"])

    spec, cfg = _spec(args, build)
    data = Path(args.data or specs.data_path(cfg["experiments"][args.experiment]["dataset"]))
    out = Path(args.out or specs.store_path(cfg, args.experiment))
    run_stage("decompose", spec, {"data": data}, {"store": (out, True)},
              lambda t: decompose(spec, data, t["store"], args.threads, args.dask))


def cmd_train(args):
    from wsgm.train import train, write_loss_curve

    from wsgm import launch

    spec, cfg = _spec(args, lambda cfg: specs.train(cfg, args.experiment, args.scale))
    gpus, nodes = _processes(args, cfg)
    store = Path(args.store or specs.store_path(cfg, spec["experiment"]))
    out = Path(args.out or specs.model_paths(cfg, spec["experiment"])[spec["scale"]])
    ckpt = Path(args.checkpoint or specs.checkpoint_path(spec["experiment"], spec["scale"]))
    device = _device(spec)
    if gpus * nodes > 1 and not launch.is_worker():  # one DDP process group: torchrun (srun on M nodes)
        _check_processes(spec, device, gpus, nodes)
        log.info("training on %d process(es) per node x %d node(s) (%s), one DDP process group",
                 gpus, nodes, device.type)
        code = launch.relaunch(args.argv, gpus, nodes, device.type == "cuda")
        if code == launch.INTERRUPTED:
            raise Interrupted("a training process was interrupted; its checkpoint is saved: rerun to resume")
        return code
    fractions = sorted(spec.get("snapshots") or {}, key=float)  # learning curves: EMA weights at these fractions
    snaps = [Path(p) for p in args.snapshots] if args.snapshots else \
        [Path(specs.snapshot_model_path(spec["experiment"], spec["scale"], f)) for f in fractions]
    if len(snaps) != len(fractions):
        raise UserError(f"--snapshots gives {len(snaps)} path(s), the spec has {len(fractions)} snapshot "
                        f"fraction(s) {fractions}: give one path per fraction, in that order")
    if int(__import__("os").environ.get("RANK", "0")) > 0:  # torchrun: rank 0 alone writes outputs
        # the same snapshots as rank 0, so every rank decides alike whether the checkpoint is usable
        train(spec, store, out, ckpt, device, dict(zip(fractions, snaps)))
        return
    outputs = {"weights": (out, False), **{f"at{f}": (p, False) for f, p in zip(fractions, snaps)}}
    run_stage("train", spec, {"store": store}, outputs,
              lambda t: train(spec, store, t["weights"], ckpt, device, {f: t[f"at{f}"] for f in fractions}),
              str(device))
    write_loss_curve(out)


def _processes(args, cfg) -> tuple[int, int]:
    """(processes per node, nodes) of a training job: --gpus/--nodes, else train.gpus/train.nodes
    of the config (with --config), else 1 x 1."""
    gpus, nodes = args.gpus, args.nodes
    if (gpus is None or nodes is None) and args.config and args.experiment:
        tcfg = specs.experiment(cfg, specs.models_owner(cfg, args.experiment))["train"]
        gpus = tcfg.get("gpus", 1) if gpus is None else gpus
        nodes = tcfg.get("nodes", 1) if nodes is None else nodes
    return gpus or 1, nodes or 1


def _check_processes(spec: dict, device, gpus: int, nodes: int) -> None:
    """One clear message for a process count this run cannot have."""
    world, batch = gpus * nodes, spec["train"]["batch_size"]
    if batch % world:
        raise UserError(f"train.batch_size {batch} is not divisible by train.gpus x train.nodes = {gpus} x "
                        f"{nodes} = {world} DDP processes (each takes batch_size / {world} rows of every "
                        f"global batch). Fix: make batch_size a multiple of {world}, or change train.gpus")
    if device.type == "cuda":
        import torch

        seen = torch.cuda.device_count()
        if seen < gpus:
            raise UserError(f"train.gpus = {gpus} but only {seen} CUDA device(s) are visible here "
                            f"(CUDA_VISIBLE_DEVICES={__import__('os').environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                            f"Fix: request {gpus} GPUs per node (the rule asks SLURM for train.gpus), or set "
                            f"train.gpus: {seen}")


def _sample_spec(args) -> tuple[dict, _LazyConfig]:
    def build(cfg):
        if args.inverse:
            return specs.inverse(cfg, args.experiment, args.inverse, args.steps)
        return specs.sample(cfg, args.experiment, args.steps)

    return _spec(args, build)


def _shard_rows(args, spec: dict) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(shard (i, K) or None, global rows or None) from --shard / --rows."""
    from wsgm import shards

    if args.shard and args.rows:
        raise UserError("give --shard I/K or --rows A:B, not both")
    if args.shard:
        i, k = shards.parse(args.shard)
        return (i, k), shards.rows(i, k, spec["sampling"]["n_samples"])
    return None, (shards.parse_rows(args.rows) if args.rows else None)


def cmd_sample(args):
    from wsgm.cascade import sample_to_store

    spec, cfg = _sample_spec(args)
    shard, rows = _shard_rows(args, spec)
    store = Path(args.store or specs.store_path(cfg, spec["experiment"]))
    models = [Path(m) for m in (args.models or specs.model_paths(cfg, spec["experiment"]))]
    inputs = {"store": store, **{f"model{j}": m for j, m in enumerate(models)}}
    truth = None
    task = spec["inverse"]["name"] if "inverse" in spec else None
    if task:
        truth = Path(args.truth or specs.data_path(cfg["experiments"][spec["experiment"]]["dataset"]))
        inputs["truth"] = truth
    elif args.truth or args.inverse:
        raise UserError("--inverse TASK and --truth go together (or a --spec holding 'inverse')")
    if args.out:
        out = Path(args.out)
    elif shard:
        out = Path(specs.shard_path(spec["experiment"], spec["steps"], *shard, task))
    elif rows:
        raise UserError("--rows writes a part of the samples: give its store with --out")
    else:
        out = Path(specs.inverse_path(spec["experiment"], task, spec["steps"]) if task
                   else specs.samples_path(spec["experiment"], spec["steps"]))
    device = _device(spec)
    batch = args.batch_size or (cfg["experiments"][spec["experiment"]]["sampling"]["batch_size"]
                                if args.config else None)
    run_stage("sample", spec, inputs, {"samples": (out, True)},
              lambda t: sample_to_store(spec, store, models, t["samples"], device, truth, args.offset,
                                        batch=batch, rows=rows), str(device))


def cmd_gather(args):
    from wsgm import shards

    spec, cfg = _sample_spec(args)
    task = spec["inverse"]["name"] if "inverse" in spec else None
    if args.shards:
        paths = [Path(p) for p in args.shards]
    else:
        k = args.count or cfg["experiments"][spec["experiment"]]["sampling"]["shards"]
        paths = [Path(p) for p in specs.shard_paths(spec["experiment"], spec["steps"], k, task)]
    out = Path(args.out or (specs.inverse_path(spec["experiment"], task, spec["steps"]) if task
                            else specs.samples_path(spec["experiment"], spec["steps"])))
    ordered, records = shards.check(spec, paths)
    run_stage("sample", spec, shards.inputs_of(records[0]), {"samples": (out, True)},
              lambda t: shards.gather(spec, ordered, records, t["samples"]), records[0].get("device", "cpu"))


def cmd_likelihood(args):
    def _bin_width(text: str | None) -> float | None:
        if text is None:
            return None
        if text == "8bit":
            from wsgm.likelihood import BIN_8BIT

            return BIN_8BIT
        try:
            return float(text)
        except ValueError:
            raise UserError(f"--bin-width {text!r} is neither a number (data units) nor 8bit") from None

    from wsgm.likelihood import likelihood_of_images

    spec, cfg = _spec(args, lambda cfg: specs.likelihood(
        cfg, args.experiment, args.n, args.offset, args.estimator, args.probes, _bin_width(args.bin_width),
        args.batch_size, args.rtol, args.atol))
    data = Path(args.data or specs.data_path(cfg["experiments"][spec["experiment"]]["dataset"]))
    store = Path(args.store or specs.store_path(cfg, spec["experiment"]))
    models = [Path(m) for m in (args.models or specs.model_paths(cfg, spec["experiment"]))]
    out = Path(args.out or specs.likelihood_path(spec["experiment"]))
    device = _device(spec)

    def work(t):
        result = likelihood_of_images(spec, data, store, models, device)
        t["likelihood"].write_text(json.dumps(result, indent=2) + "\n")
        scales = ", ".join(f"scale {s['scale']} {s['bits_per_dim']:.4f}" for s in result["per_scale"])
        print(f"{spec['experiment']}: {result['bits_per_dim']:.4f} ± {result['bits_per_dim_sem']:.4f} bits/dim "
              f"({scales}); {result['nfe']} NFE, {result['wall_time_s']:.1f} s")
        return {k: result[k] for k in ("bits_per_dim", "bits_per_dim_sem", "nfe", "wall_time_s")}

    run_stage("likelihood", spec, {"data": data, "store": store, **{f"model{j}": m for j, m in enumerate(models)}},
              {"likelihood": (out, False)}, work, str(device))


def cmd_reference(args):
    from wsgm.reference import compute

    def build(cfg):
        exp = specs.experiment(cfg, args.experiment)
        return specs.reference(cfg, exp["dataset"], exp["wavelet"], exp["J"])

    spec, cfg = _spec(args, build)
    data = Path(args.data or specs.data_path(spec["dataset"]))
    out = Path(args.out or specs.reference_path(cfg, args.experiment))
    device = _device(spec)
    run_stage("reference", spec, {"data": data}, {"reference": (out, False)},
              lambda t: compute(spec, data, t["reference"], device), str(device))


def cmd_evaluate(args):
    def build(cfg):
        if args.inverse:
            return specs.inverse_evaluate(cfg, args.experiment, args.inverse, args.steps)
        if args.snapshot:
            return specs.evaluate_snapshot(cfg, args.experiment, args.steps, args.snapshot)
        return specs.evaluate(cfg, args.experiment, args.steps)

    spec, cfg = _spec(args, build)
    if "inverse" in spec:  # inverse-problem stores: the same metrics plus the measurement errors
        return cmd_evaluate_inverse(args, spec, cfg)
    from wsgm.evaluate import evaluate

    if "snapshot" in spec:  # a learning-curve point
        f = spec["snapshot"]["fraction"]
        _score(args, spec, cfg, evaluate, specs.snapshot_samples_path(spec["experiment"], spec["steps"], f),
               specs.snapshot_metrics_path(spec["experiment"], spec["steps"], f))
        return
    _score(args, spec, cfg, evaluate, specs.samples_path(spec["experiment"], spec["steps"]),
           specs.metrics_path(spec["experiment"], spec["steps"]))


def cmd_evaluate_inverse(args, spec, cfg):
    from wsgm.evaluate_inverse import evaluate_inverse

    task = spec["inverse"]["name"]
    _score(args, spec, cfg, evaluate_inverse, specs.inverse_path(spec["experiment"], task, spec["steps"]),
           specs.inverse_metrics_path(spec["experiment"], task, spec["steps"]))


def _score(args, spec: dict, cfg, evaluate: Callable, default_samples: str, default_out: str) -> None:
    """The evaluate stage around ``evaluate`` (plain or inverse-problem scoring)."""
    samples = Path(args.samples or default_samples)
    data = Path(args.data or specs.data_path(cfg["experiments"][spec["experiment"]]["dataset"]))
    reference = Path(args.reference or specs.reference_path(cfg, spec["experiment"]))
    out = Path(args.out or default_out)
    device = _device(spec)

    def work(t):
        result = evaluate(spec, samples, data, reference, device)
        if "snapshot" in spec:  # a learning-curve point: which training snapshot was sampled
            result["snapshot"] = spec["snapshot"]
        t["metrics"].write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        summary = {k: v for k, v in result["metrics"].items() if not isinstance(v, list)}
        if "inverse" in result:
            summary |= result["inverse"]["metrics"]
        return {"metrics": summary}

    run_stage("evaluate", spec, {"samples": samples, "data": data, "reference": reference},
              {"metrics": (out, False)}, work, str(device))


def cmd_report(args):
    from wsgm.report import report

    spec, cfg = _spec(args, specs.report)
    metrics = [Path(p) for p in (args.metrics or specs.report_metrics(cfg))]
    samples = {n: Path(p) for n, p in (dict(a.split("=", 1) for a in args.samples) if args.samples
                                       else specs.all_samples(cfg)).items()}
    data = {n: Path(p) for n, p in (dict(a.split("=", 1) for a in args.data) if args.data else
                                    {n: specs.data_path(e["dataset"]) for n, e in cfg["experiments"].items()}).items()}
    outdir = Path(args.outdir) if args.outdir else None
    files = {**specs.REPORT_FILES, **(specs.TRAINING_FILES if "learning_curve" in spec else {})}
    outputs = {k: ((outdir / Path(v).name) if outdir else Path(v), False) for k, v in files.items()}
    inputs = {**{f"metrics:{p}": p for p in metrics}, **{f"samples:{n}": p for n, p in samples.items()},
              **{f"data:{p}": p for p in set(data.values())}}
    run_stage("report", spec, inputs, outputs,
              lambda t: {"best": report(spec, metrics, samples, data, t)["best"]})
    print(f"report: {outputs['quality'][0].parent.resolve()}")


def cmd_audit(args):
    ok = True
    for path in args.paths:
        ok &= audit(path)
    print("audit: every link verified" if ok else "audit: FAILED (see MISSING/CORRUPT/CHANGED/STALE above)")
    return 0 if ok else 1


def cmd_check_config(args):
    if args.reference:
        print(config_lib.reference_markdown())
        return 0
    if not args.config:
        raise UserError("give a config file to check (or --reference for the key reference)")
    cfg = config_lib.load(args.config, warn=config_lib.print_warning)  # warnings on stderr
    print(f"{args.config}: ok ({len(cfg['datasets'])} dataset(s), {len(cfg['experiments'])} experiment(s))")
    if args.show:
        print(json.dumps(cfg, indent=2))


def cmd_paper(args):
    from wsgm import paper

    cfg = paper.load(args.config)
    if args.sizes:  # reduced runs: keep only these sizes everywhere
        for section in ("gaussian", "cost"):
            cfg[section]["sizes"] = [s for s in cfg[section]["sizes"] if s in args.sizes] or args.sizes
        cfg["processes"]["size"] = min(args.sizes)
        if "gao" in cfg:
            cfg["gao"]["sizes"] = [s for s in cfg["gao"]["sizes"] if s in args.sizes] or args.sizes
    if args.steps:
        cfg["gaussian"]["steps"] = args.steps
    results = paper.measure(cfg, Path(args.outdir), tuple(args.only or paper.SECTIONS), log.info)
    print(paper.tables(results))


# --- argument parsing -------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsgm", description=__doc__.split("\n\n")[0])
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name, fn, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--spec", help="the stage's spec as JSON (what the Snakemake rules pass)")
        s.add_argument("--config", help="config YAML to build the spec from instead")
        s.add_argument("--threads", type=int, default=1, help="CPU threads (fixed for determinism)")
        s.set_defaults(fn=fn)
        return s

    s = stage("dataset", cmd_dataset, "simulate a dataset into Zarr")
    s.add_argument("--dataset", help="dataset name (with --config)")
    s.add_argument("--source", help="archive/folder to convert (default: its fetched download or path)")
    s.add_argument("--out")
    f = sub.add_parser("fetch", help="download a file (URL, file:// or path), verified and atomic")
    f.add_argument("--url", required=True, help="http(s):// URL, file:// URL or local path")
    f.add_argument("--sha256", help="pinned sha256 (or give --md5 where only that is published)")
    f.add_argument("--md5")
    f.add_argument("--out", required=True)
    f.add_argument("--retries", type=int, default=5, help="retries (resuming) with exponential back-off")
    f.set_defaults(fn=cmd_fetch)
    s = stage("decompose", cmd_decompose, "wavelet-decompose a dataset into per-scale Zarr + stats")
    s.add_argument("--dask", help="Dask scheduler: threads (default), processes, synchronous, local "
                                  "(LocalCluster), slurm:N (N dask-jobqueue workers as SLURM jobs) "
                                  "or a dask.distributed address; default $WSGM_DASK")
    s.add_argument("--experiment")
    s.add_argument("--data")
    s.add_argument("--out")
    s = stage("train", cmd_train, "train the score model of one scale")
    s.add_argument("--experiment")
    s.add_argument("--scale", type=int)
    s.add_argument("--store")
    s.add_argument("--out")
    s.add_argument("--checkpoint", help="resumable checkpoint (outside the declared outputs)")
    s.add_argument("--snapshots", nargs="*", help="learning curves: weights files of the spec's snapshot "
                                                  "fractions, in order (default: results/models/EXP/scaleJ.atF.pt)")
    s.add_argument("--gpus", type=int, help="DDP processes per node, one per GPU (CPU processes with gloo "
                                            "where there is no CUDA); default train.gpus of --config, else 1")
    s.add_argument("--nodes", type=int, help="nodes (> 1: inside a SLURM job, one torchrun per node via "
                                             "srun); default train.nodes of --config, else 1")
    s = stage("sample", cmd_sample, "coarse-to-fine cascade sampling for one step count")
    s.add_argument("--experiment")
    s.add_argument("--steps", type=Steps, help="steps at every scale (8), or per scale 0..J (8-8-32)")
    s.add_argument("--store")
    s.add_argument("--models", nargs="+", help="weights of scales 0..J, in order")
    s.add_argument("--out")
    s.add_argument("--offset", type=int, default=0, help="inverse problems: first measured image within --truth's held-out floor rows")
    s.add_argument("--inverse", choices=specs.INVERSE_TASKS,
                   help="solve this inverse problem (with --config: the task's settings from `inverse`); "
                        "superres = super-resolution from the real low-pass")
    s.add_argument("--truth", help="inverse: the dataset store whose images are measured (default: the "
                                   "experiment's dataset; its held-out floor images are measured, from --offset)")
    s.add_argument("--batch-size", type=int, help="samples per batch (runtime: the samples do not depend on it; "
                                                  "default: sampling.batch_size with --config, else 256)")
    s.add_argument("--shard", help="I/K: draw only shard I of K (contiguous rows, np.array_split boundaries); "
                                   "`wsgm gather` joins the K shard stores")
    s.add_argument("--rows", help="A:B: draw only the global sample rows A..B-1 (with --out)")
    s = stage("gather", cmd_gather, "join the shard stores of `wsgm sample --shard I/K` into one store")
    s.add_argument("--experiment")
    s.add_argument("--steps", type=Steps, help="steps at every scale (8), or per scale 0..J (8-8-32)")
    s.add_argument("--inverse", choices=specs.INVERSE_TASKS, help="gather an inverse problem's shards")
    s.add_argument("--shards", nargs="+", help="the shard stores (default: the results layout's, K = "
                                               "--count or sampling.shards)")
    s.add_argument("--count", type=int, help="K, the number of shards (with --config, default sampling.shards)")
    s.add_argument("--out", help="the gathered store (default: the results layout's samples store)")
    s = stage("likelihood", cmd_likelihood, "bits/dim of real images (probability-flow ODE, per scale)")
    s.add_argument("--experiment")
    s.add_argument("--data", help="dataset store of the images (default: the experiment's dataset)")
    s.add_argument("--store", help="decomposed store whose normalization stats the models use")
    s.add_argument("--models", nargs="+", help="weights of scales 0..J, in order")
    s.add_argument("--out", help="result JSON (default: results/likelihood/EXPERIMENT.json)")
    s.add_argument("--n", type=int, default=64, help="number of images")
    s.add_argument("--offset", type=int, help="first image within the dataset's held-out floor rows (default 0)")
    s.add_argument("--estimator", default="rademacher", choices=["rademacher", "gaussian", "exact"],
                   help="divergence: Hutchinson probes, or exact (one backward pass per dimension)")
    s.add_argument("--probes", type=int, default=1, help="Hutchinson probes per image")
    s.add_argument("--bin-width", help="dequantize: bin width in data units, or 8bit (= 2/255, the spacing "
                                       "of x = uint8/127.5 - 1); reports the bound on -log2 P(bin)")
    s.add_argument("--batch-size", type=int, help="images per ODE solve (default: all --n)")
    s.add_argument("--rtol", type=float, default=1e-5, help="RK45 relative tolerance")
    s.add_argument("--atol", type=float, default=1e-5, help="RK45 absolute tolerance")
    s = stage("reference", cmd_reference, "real-data statistics (FID features, spectra) at every resolution")
    s.add_argument("--experiment")
    s.add_argument("--data")
    s.add_argument("--out")
    s = stage("evaluate", cmd_evaluate, "score one sample store")
    s.add_argument("--experiment")
    s.add_argument("--steps", type=Steps, help="steps at every scale (8), or per scale 0..J (8-8-32)")
    s.add_argument("--samples")
    s.add_argument("--data")
    s.add_argument("--reference", help="reference statistics from `wsgm reference`")
    s.add_argument("--inverse", choices=specs.INVERSE_TASKS, help="score an inverse-problem store")
    s.add_argument("--snapshot", type=float, help="learning curves: score the samples of the models' snapshot "
                                                  "at this fraction of training (with --config)")
    s.add_argument("--out")
    s = stage("report", cmd_report, "plots and summary table")
    s.add_argument("--metrics", nargs="+")
    s.add_argument("--samples", nargs="+", help="EXPERIMENT:STEPS=PATH of the stores shown in the grids")
    s.add_argument("--data", nargs="+", help="EXPERIMENT=PATH of each experiment's dataset")
    s.add_argument("--outdir")

    t = sub.add_parser("paper", aliases=["theory"],
                       help="paper claims with exact Gaussian scores (config/paper.yaml; alias: theory)")
    t.add_argument("--config", default="config/paper.yaml", help="paper config (sizes, steps, target, processes)")
    t.add_argument("--outdir", default="results/bench", help="where paper_*.json and paper_*.png go")
    t.add_argument("--only", nargs="+", choices=["gaussian", "cost", "processes", "gao"],
                   help="run only these sections (cost uses gaussian's SGM steps when both run)")
    t.add_argument("--sizes", nargs="+", type=int, help="reduced run: only these field sizes")
    t.add_argument("--steps", nargs="+", type=int, help="reduced run: this step list")
    t.add_argument("--threads", type=int, default=1, help="CPU threads (fixed for determinism)")
    t.set_defaults(fn=cmd_paper)
    a = sub.add_parser("audit", help="walk provenance from a result back to the data")
    a.add_argument("paths", nargs="+")
    a.set_defaults(fn=cmd_audit)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("config", nargs="?")
    c.add_argument("--show", action="store_true", help="print it with every default filled in")
    c.add_argument("--reference", action="store_true", help="print the key reference (Markdown)")
    c.set_defaults(fn=cmd_check_config)
    return p


def _threads_per_process(args) -> int:
    """--threads is the job's CPU threads per node; a DDP worker of ``train`` gets its share."""
    from wsgm.launch import is_worker

    if args.command == "train" and is_worker():
        return max(1, args.threads // max(1, int(__import__("os").environ.get("LOCAL_WORLD_SIZE", "1"))))
    return args.threads


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a launcher re-executes
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from wsgm.runtime import setup

    if hasattr(args, "threads"):
        setup(_threads_per_process(args))
    try:
        return args.fn(args) or 0
    except Interrupted as exc:
        print(f"wsgm {args.command}: {exc}", file=sys.stderr)
        return 143
    except (UserError, FileNotFoundError) as exc:
        print(f"wsgm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
