"""φ⁴ at criticality (issue 8, item 2; issue 14, item 6): SGM vs WSGM trained with the same budget,
quality against steps per scale with 95% intervals, the step count at which each reaches the
held-out data floor, and the observables physicists report (⟨m⟩, χ₂, ξ₂, G(r), Binder).

Runs the pipeline on the config through Snakemake (every metric file of every experiment; the
numbers are the pipeline's own results/metrics/*.json), then per experiment and metric finds the
smallest steps-per-scale setting that *reaches the data floor* by the pipeline's own rule (the
metric files' ``reaches_floor``: the 95% bootstrap interval of metric − floor has its lower end
≤ 0; the floor is a real held-out set of n_samples images, never trained on and not in the
reference). Where no setting reaches it, the JSON and the tables also give the smallest setting
within 2×, 5× and 10× the floor, and the setting where the curve plateaus (first value within
25 % of the best one in the step list: from there on the trained model, not the step count, limits).

    python bench/phi4.py [--config config/phi4.yaml] [--cores 2] [--no-run]

Writes results/bench/phi4.json (machine, date, runtime, budget, per-metric values and intervals,
floors, steps-to-floor, observables) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's wsgm, not an installed one
from wsgm import config as config_lib  # noqa: E402
from wsgm import specs  # noqa: E402
from wsgm.steps import Steps  # noqa: E402

METRICS = ("spectrum_log_error", "marginal_w1", "energy_w1", "magnetization_w1", "two_point_error_max",
           "fid", "fid_texture")
OBSERVABLES = {"energy_mean": "⟨e⟩", "energy_std": "std e", "magnetization_mean": "⟨m⟩",
               "abs_magnetization": "⟨\\|m\\|⟩", "susceptibility": "χ₂", "correlation_length": "ξ₂",
               "binder": "U", "two_point_error_max": "G(r) err"}
MULTIPLES = (2, 5, 10)
PLATEAU = 1.25


def run_pipeline(config: Path, cores: int, cfg: dict) -> float:
    t0 = time.perf_counter()
    targets = specs.all_metrics(cfg)
    subprocess.run(["snakemake", "--configfile", str(config), "--cores", str(cores), *targets],
                   cwd=ROOT, check=True)
    return time.perf_counter() - t0


def train_seconds(exp_name: str, J: int) -> float:
    total = 0.0
    for j in range(J + 1):
        tsv = ROOT / specs.benchmark_path("train", f"{exp_name}_scale{j}")
        if tsv.exists():
            with tsv.open() as fh:
                total += float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    return total


def steps_to_floor(values: dict[str, float], threshold: float) -> str | None:
    """The smallest step setting whose value is ≤ threshold (None: never within the list)."""
    for label, v in sorted(values.items(), key=lambda kv: Steps(kv[0]).cost):
        if v <= threshold:
            return label
    return None


def first_reaching(reached: dict[str, bool]) -> str | None:
    """The smallest step setting the pipeline decided reaches the floor (None: none in the list)."""
    for label, ok in sorted(reached.items(), key=lambda kv: Steps(kv[0]).cost):
        if ok:
            return label
    return None


def observables(rows: dict[str, dict]) -> dict:
    """The φ⁴ observables of each step setting's metric file (final resolution), with their intervals
    where the file has them: {"observables": {label: {name: entry}}, "observables_data": {name: entry},
    "two_point": {label: G(r)}, "two_point_data": G(r)}; entry = value, ci, and for the data the
    reference's value (data), the held-out floor (data_floor) and its interval (data_floor_ci)."""
    def entry(m: dict, name: str) -> dict:
        return {"value": m.get(name), "ci": m.get(f"{name}_ci")}

    first = next(iter(rows.values()))
    fm = first["metrics"]
    return {"observables": {label: {n: entry(r["metrics"], n) for n in OBSERVABLES} for label, r in rows.items()},
            "observables_data": {n: {"data": fm.get(f"{n}_data"), "data_floor": fm.get(f"{n}_data_floor"),
                                     "data_floor_ci": fm.get(f"{n}_data_floor_ci")} for n in OBSERVABLES},
            "two_point": {label: r.get("spectra", {}).get("two_point_samples") for label, r in rows.items()},
            "two_point_data": first.get("spectra", {}).get("two_point_data")}


def cell(value, ci=None) -> str:
    """value, or value ± half-width of its interval ci = [lo, hi]; '-' when absent."""
    if value is None:
        return "-"
    if ci is None or any(c is None for c in ci):
        return f"{value:.4g}"
    return f"{value:.4g} ± {(ci[1] - ci[0]) / 2:.2g}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/phi4.yaml")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--no-run", action="store_true", help="only read the existing pipeline outputs")
    args = p.parse_args(argv)
    config = (ROOT / args.config) if not Path(args.config).is_absolute() else Path(args.config)
    cfg = config_lib.load(config)
    runtime = 0.0 if args.no_run else run_pipeline(config, args.cores, cfg)

    result: dict = {"machine": f"{platform.node()} ({os.cpu_count()} cores, "
                               f"{platform.processor() or platform.machine()})",
                    "date": dt.date.today().isoformat(), "config": args.config, "pipeline_wall_s": runtime,
                    "reaches_floor": "the metric files' reaches_floor: the 95% bootstrap interval of metric - "
                                     "floor (a held-out real set of n_samples images) has its lower end <= 0",
                    "budget": "per model: train.steps x train.batch_size images for each of the J+1 models",
                    "experiments": {}}
    for name, exp in cfg["experiments"].items():
        per: dict = {"J": exp["J"], "models": exp["J"] + 1, "train_steps_per_model": exp["train"]["steps"],
                     "batch_size": exp["train"]["batch_size"],
                     "images_per_model": exp["train"]["steps"] * exp["train"]["batch_size"],
                     "train_job_s": train_seconds(name, exp["J"]), "metrics": {}, "cost": {}}
        rows = {}
        for s in exp["sampling"]["steps"]:
            m = json.loads((ROOT / specs.metrics_path(name, s)).read_text())
            rows[Steps(s).label] = m
            per["cost"][Steps(s).label] = {k: m["cost"].get(k) for k in
                                           ("nfe_per_sample", "wall_time_s", "samples_per_s")}
        for metric in METRICS:
            values = {label: r["metrics"][metric] for label, r in rows.items() if metric in r["metrics"]}
            if not values:
                continue
            first = next(iter(rows.values()))["metrics"]
            floor = first.get(f"{metric}_data_floor")
            reached = {label: r.get("reaches_floor", {}).get(metric) for label, r in rows.items() if label in values}
            per["metrics"][metric] = {
                "values": values, "ci": {label: r["metrics"].get(f"{metric}_ci") for label, r in rows.items()
                                         if label in values},
                "floor": floor, "floor_ci": first.get(f"{metric}_data_floor_ci"), "reaches_floor": reached,
                "steps_to_floor": first_reaching(reached) if all(v is not None for v in reached.values()) else None,
                "steps_to_multiple": {f"{f}x": steps_to_floor(values, f * floor) for f in MULTIPLES}
                if floor else {},
                "plateau_steps": steps_to_floor(values, PLATEAU * min(values.values()))}
        per |= observables(rows)
        result["experiments"][name] = per
    out = ROOT / specs.BENCH_DIR / "phi4.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    return result


def print_tables(result: dict) -> None:
    exps = result["experiments"]
    names = list(exps)
    print(f"# φ⁴ bench ({result['machine']}, {result['date']}, pipeline {result['pipeline_wall_s']:.0f} s)\n")
    print("| experiment | J | models | steps × batch per model | train job time (s) |\n|---|---|---|---|---|")
    for n, e in exps.items():
        print(f"| {n} | {e['J']} | {e['models']} | {e['train_steps_per_model']} × {e['batch_size']} "
              f"| {e['train_job_s']:.0f} |")
    for metric in METRICS:
        if not all(metric in exps[n]["metrics"] for n in names):
            continue
        labels = sorted({lab for n in names for lab in exps[n]["metrics"][metric]["values"]},
                        key=lambda s: int(s.split("-")[0]))
        print(f"\n**{metric}** (steps per scale; value ± half-width of its 95% interval; floor = a held-out "
              "real set of n_samples images; * = reaches the floor: the interval of value − floor reaches 0)\n")
        print("| steps per scale | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for lab in labels:
            cells = []
            for n in names:
                e = exps[n]["metrics"][metric]
                v = e["values"].get(lab)
                cells.append("-" if v is None else cell(v, e["ci"].get(lab)) + ("*" if e["reaches_floor"].get(lab) else ""))
            print(f"| {lab} | " + " | ".join(cells) + " |")
        cells = [cell(exps[n]["metrics"][metric]["floor"], exps[n]["metrics"][metric]["floor_ci"]) for n in names]
        print("| data floor (held-out) | " + " | ".join(cells) + " |")
        cells = [exps[n]["metrics"][metric]["steps_to_floor"] for n in names]
        print("| steps to reach it | " + " | ".join("never" if c is None else c for c in cells) + " |")
        for f in MULTIPLES:
            cells = [exps[n]["metrics"][metric]["steps_to_multiple"].get(f"{f}x") for n in names]
            print(f"| steps to {f}× floor | " + " | ".join("never" if c is None else c for c in cells) + " |")
        cells = [exps[n]["metrics"][metric]["plateau_steps"] for n in names]
        print(f"| plateau (within {PLATEAU:g}× best) | " + " | ".join(cells) + " |")
    print_observables(result)


def print_observables(result: dict) -> None:
    """The φ⁴ observables table: one row per experiment and step setting, then the data's rows (the
    reference's value; the held-out floor ± half-width of its interval where the metric file has one)."""
    exps = result["experiments"]
    names = [n for n in exps if "observables" in exps[n]]
    if not names:
        return
    cols = [c for c in OBSERVABLES if any(o[c]["value"] is not None for n in names
                                          for o in exps[n]["observables"].values())]
    if not cols:
        return
    print("\n**φ⁴ observables** at the final resolution (value ± half-width of the 95 % bootstrap interval "
          "where the metric files have one)\n")
    print("| experiment | steps per scale | " + " | ".join(OBSERVABLES[c] for c in cols) + " |\n|---|---|"
          + "---|" * len(cols))
    for n in names:
        for lab, obs in exps[n]["observables"].items():
            print(f"| {n} | {lab} | " + " | ".join(cell(obs[c]["value"], obs[c]["ci"]) for c in cols) + " |")
    d = exps[names[0]]["observables_data"]
    print("| data (reference) | | " + " | ".join(cell(d[c]["data"]) for c in cols) + " |")
    if any(d[c]["data_floor"] is not None for c in cols):
        print("| data (held-out, n_samples) | | " + " | ".join(cell(d[c]["data_floor"], d[c]["data_floor_ci"])
                                                         for c in cols) + " |")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\nbench/phi4.py total runtime: {time.perf_counter() - t0:.0f} s")
