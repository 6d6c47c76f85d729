"""Fault injection: damage every kind of artifact of a finished tiny run and check that the next
run that reads it refuses it with one clear message (or, for a training checkpoint, sets it aside).

Usage: python bench/faults.py [--workdir DIR] [--keep]   ->  results/bench/faults.json + a table.

A tiny project (config/test.yaml) is run to the end once; each case then works on a fresh copy
of it: it damages one file (a flipped byte in a chunk, a truncated file, random bytes, a cut
record), runs ``snakemake`` again, forcing the rule that reads the artifact where Snakemake
cannot see the damage itself (files inside directory outputs), and checks:

- the run failed (exit status non-zero) and the failing job's log ends in exactly one line
  ``wsgm <stage>: error: ...`` that names the damaged file (or its store) and says ``Fix``,
  with no Python traceback;
- no new output of the refused job was left behind (outputs are written atomically);
- the recovery the message names (delete and rerun) ends in a complete run.

For the training checkpoint, the expected behaviour is different (training resumes from
checkpoints, so a damaged one must never stop a cluster job): the job succeeds, the damaged file
is kept aside under a new name, and the log says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from tests.helpers import make_project  # noqa: E402  (the tiny project of the workflow tests)


def snakemake(root: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)
    return proc.returncode, proc.stdout + proc.stderr


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(max(256, path.stat().st_size)))


def first_chunk(store: Path, array: str) -> Path:
    chunks = sorted(p for p in (store / array).rglob("*") if p.is_file() and p.name != "zarr.json")
    if not chunks:
        raise RuntimeError(f"no chunk files in {store / array}")
    return chunks[0]


def _checkpoint(root: Path) -> Path:
    """A valid training checkpoint is deleted when training ends: damage one written in its place."""
    path = root / "results" / "checkpoints" / "wsgm" / "scale0.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(4096))
    return path


# kind -> (damaged file (a function of the project root), damage, rules to force, expected job)
CASES = {
    "dataset store chunk (flipped byte)": (
        lambda r: first_chunk(r / "results/data/tiny/data.zarr", "x"), flip_byte, ["decompose"], "decompose"),
    "decomposed store chunk (flipped byte)": (
        lambda r: first_chunk(r / "results/decomposed/tiny/haar_J2.zarr", "low2"), flip_byte, ["train_scale"],
        "train"),
    "decomposed store chunk (truncated)": (
        lambda r: first_chunk(r / "results/decomposed/tiny/haar_J2.zarr", "detail1"), truncate, ["train_scale"],
        "train"),
    "sample store chunk (flipped byte)": (
        lambda r: first_chunk(r / "results/samples/wsgm/steps4.zarr", "x0"), flip_byte, ["evaluate"], "evaluate"),
    "model weights (truncated)": (lambda r: r / "results/models/wsgm/scale0.pt", truncate, [], "sample"),
    "model weights (random bytes)": (lambda r: r / "results/models/sgm/scale0.pt", random_bytes, [], "sample"),
    "reference statistics (flipped byte)": (
        lambda r: r / "results/reference/tiny/haar_J2.npz", flip_byte, [], "evaluate"),
    "provenance record (truncated)": (
        lambda r: r / "results/decomposed/tiny/haar_J2.zarr.prov.json", truncate, ["train_scale"], "train"),
    "training checkpoint (random bytes)": (_checkpoint, lambda p: None, ["train_scale"], None),
}


def _job_logs(root: Path, since: float) -> list[Path]:
    return [p for p in (root / "results" / "logs").rglob("*.log") if p.stat().st_mtime >= since]


def run_case(base: Path, work: Path, kind: str) -> dict:
    locate, damage, force, job = CASES[kind]
    root = work / re.sub(r"\W+", "_", kind).strip("_")
    shutil.copytree(base, root, symlinks=True)
    target = locate(root)
    damage(target)
    rel = str(target.relative_to(root))
    since = time.time() - 1
    code, out = snakemake(root, *(["--forcerun", *force] if force else []))
    logs = _job_logs(root, since)
    result = {"file": rel, "exit": code}
    if job is None:  # the checkpoint: set aside, training goes on
        text = "\n".join(p.read_text(errors="replace") for p in logs)
        aside = [str(p.relative_to(root)) for p in target.parent.iterdir() if p.name.startswith(target.name + ".")]
        result.update(refused=code == 0 and bool(aside) and target.name in text and "Traceback" not in text,
                      set_aside=aside, message=next((l for l in text.splitlines() if "corrupt" in l.lower()), ""))
        return result
    errors, traceback = [], False
    for p in logs:
        text = p.read_text(errors="replace")
        traceback |= "Traceback" in text
        errors += [l for l in text.splitlines() if l.startswith(f"wsgm {job}: error:")]
    store = rel.split(".zarr")[0] + ".zarr" if ".zarr" in rel else rel.removesuffix(".prov.json")
    message = errors[0] if errors else ""
    result.update(message=message, traceback=traceback,
                  refused=code != 0 and len(errors) >= 1 and not traceback and store in message and "Fix" in message)
    if result["refused"]:  # the documented recovery: delete the damaged artifact, rerun
        damaged = root / store
        shutil.rmtree(damaged) if damaged.is_dir() else damaged.unlink(missing_ok=True)
        (root / (store + ".prov.json")).unlink(missing_ok=True)
        code2, out2 = snakemake(root)
        result["recovered"] = code2 == 0
        if code2:
            result["recovery_output"] = out2[-2000:]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, help="where the projects go (default: a temporary folder)")
    p.add_argument("--only", nargs="+", choices=sorted(CASES), help="run only these cases")
    p.add_argument("--keep", action="store_true", help="keep the projects")
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wsgm-faults-"))
    base = make_project(work / "base")
    t0 = time.perf_counter()
    code, out = snakemake(base)
    if code:
        print(out[-3000:], file=sys.stderr)
        return 1
    print(f"base run: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    results = {}
    for kind in args.only or CASES:
        results[kind] = run_case(base, work, kind)
        print(f"{kind}: {'refused' if results[kind]['refused'] else 'NOT REFUSED'}", file=sys.stderr)
    out_path = REPO / "results" / "bench" / "faults.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"machine": f"{platform.node()} ({os.cpu_count()} cores)",
                                    "date": dt.date.today().isoformat(), "cases": results}, indent=2) + "\n")
    print("| artifact | damaged file | refused | recovered | message |\n|---|---|---|---|---|")
    for kind, r in results.items():
        print(f"| {kind} | `{r['file']}` | {'yes' if r['refused'] else 'NO'} | "
              f"{'yes' if r.get('recovered', r['refused']) else 'no'} | {r.get('message', '')[:140]} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["refused"] and r.get("recovered", True) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
