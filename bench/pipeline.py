"""Per-stage wall time and peak memory of the last pipeline run, from Snakemake's benchmark files.

Usage: python bench/pipeline.py [results]   ->  results/bench/pipeline.json and a Markdown table.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path


def main(results: Path = Path("results")) -> dict:
    stages: dict[str, dict] = {}
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        s = stages.setdefault(tsv.parent.name, {"jobs": 0, "wall_s": 0.0, "max_rss_mb": 0.0})
        s["jobs"] += 1
        s["wall_s"] += float(row["s"])
        s["max_rss_mb"] = max(s["max_rss_mb"], float(row["max_rss"]) if row["max_rss"] != "NA" else 0.0)
    summary = json.loads((results / "report" / "summary.json").read_text())
    out = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "date": dt.date.today().isoformat(),
        "stages": stages,
        "total_job_s": sum(s["wall_s"] for s in stages.values()),
        "quality": summary,
    }
    (results / "bench").mkdir(parents=True, exist_ok=True)
    (results / "bench" / "pipeline.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"| stage | jobs | job time (s) | peak RSS (MB) |\n|---|---|---|---|")
    for name, s in stages.items():
        print(f"| {name} | {s['jobs']} | {s['wall_s']:.1f} | {s['max_rss_mb']:.0f} |")
    exps = list(summary["table"])
    metrics = [m for m in ("fid", "kl_exact_per_dim", "spectrum_log_error", "marginal_w1")
               if any(m in row for t in summary["table"].values() for row in t.values())]
    labels = sorted({s for t in summary["table"].values() for s in t},
                    key=lambda s: [int(p) for p in s.split("-")])
    print("\n| steps per scale | " + " | ".join(f"{m} {e}" for m in metrics for e in exps) + " |")
    print("|---|" + "---|" * (len(metrics) * len(exps)))
    for label in labels:
        cells = [summary["table"][e].get(label, {}).get(m, float("nan")) for m in metrics for e in exps]
        print(f"| {label} | " + " | ".join(f"{c:.3g}" for c in cells) + " |")
    floors = {m: {e: summary["table"][e][labels[-1]].get(f"{m}_data_floor") for e in exps} for m in metrics}
    print("\nreal-data floors (as many real images as samples):", json.dumps(floors))
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results"))
