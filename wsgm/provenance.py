"""Provenance records (sidecar ``<output>.prov.json``) and the audit walk.

A record names the stage, its resolved spec and the spec's hash, the content hash of the output,
each input with its content hash and the hash of the input's own record, the code version
(git commit, dirty flag, package version, hash of the stage's source closure), library versions,
device, host, SLURM job id, seed and start/end time. ``audit`` re-hashes every file on the chain,
so an output or input replaced by hand is detected.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

from wsgm import __version__
from wsgm.atomic import atomic_path, write_json

log = logging.getLogger("wsgm")

PACKAGE_ROOT = Path(__file__).resolve().parent
SUFFIX = ".prov.json"
IGNORED = {".snakemake_timestamp"}  # Snakemake touches this inside directory() outputs


def record_path(output: str | Path) -> Path:
    output = Path(output)
    return output if output.name.endswith(SUFFIX) else output.with_name(output.name + SUFFIX)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(path: str | Path) -> str:
    """sha256 of a file, or of a directory's sorted (relative path, file hash) list."""
    path = Path(path)
    if path.is_file():
        return _file_sha256(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name not in IGNORED):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + _file_sha256(f).encode() + b"\n")
    return h.hexdigest()


# --- code version: git state (the stage code hash is wsgm.code_version's) ---------------

@functools.cache
def git_state() -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict:
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --- writing ----------------------------------------------------------------------------------

def read_record(output: str | Path) -> dict:
    path = record_path(output)
    if not path.is_file():
        raise FileNotFoundError(
            f"{output} has no provenance record ({path.name} is missing): it was not made by a "
            "wsgm stage. Fix: delete it and let the pipeline rebuild it")
    return json.loads(path.read_text())


@dataclass
class Stage:
    """Collects what a stage did; ``finish`` writes the record after the output is in place."""

    name: str
    spec: dict
    inputs: dict[str, Path]
    seed: int | None = None
    device: str = "cpu"
    started: str = field(default_factory=now)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read input records first: a stage never runs on an input without provenance.
        self._inputs = {}
        for key, path in self.inputs.items():
            rec = read_record(path)
            self._inputs[key] = {
                "path": str(path),
                "hash": rec["output"]["hash"],
                "record_hash": _file_sha256(record_path(path)),
                "stage": rec["stage"],
            }

    def finish(self, output: str | Path) -> dict:
        output = Path(output)
        record = {
            "stage": self.name,
            "output": {"path": str(output), "hash": content_hash(output)},
            "spec": self.spec,
            "spec_hash": spec_hash(self.spec),
            "inputs": self._inputs,
            "code": {"package": __version__, "stage_code_hash": self.spec.get("code"), **git_state()},
            "environment": environment(),
            "device": self.device,
            "seed": self.seed,
            "argv": sys.argv,
            "start": self.started,
            "end": now(),
            **({"extra": self.extra} if self.extra else {}),
        }
        write_json(record_path(output), record)
        return record


def run_stage(name: str, spec: dict, inputs: dict[str, Path], outputs: dict[str, tuple[Path, bool]],
              work: Callable[[dict[str, Path]], dict | None], device: str = "cpu") -> None:
    """Run a stage: ``work`` writes temporary outputs ({key: path}), which are moved into place
    only if it returns; then each output gets its record. ``outputs`` is {key: (path, is_dir)}."""
    stage = Stage(name, spec, inputs, spec.get("seed"), device)
    for path, _ in outputs.values():
        record_path(path).unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        tmps = {k: stack.enter_context(atomic_path(p, directory=is_dir)) for k, (p, is_dir) in outputs.items()}
        stage.extra = work(tmps) or {}
    for path, _ in outputs.values():
        stage.finish(path)
    log.info("%s done: %s", name, ", ".join(str(p) for p, _ in outputs.values()))


# --- audit ------------------------------------------------------------------------------------

def audit(output: str | Path, out=print, _depth: int = 0, _seen: dict | None = None) -> bool:
    """Print the chain from ``output`` back to the raw data; False if any link is broken.

    Paths in records are relative to the working directory the pipeline ran in.
    """
    output = Path(str(output).removesuffix(SUFFIX))
    pad = "  " * _depth
    _seen = {} if _seen is None else _seen
    key = str(output.resolve())
    if key in _seen:
        out(f"{pad}{'ok' if _seen[key] else 'FAILED':8s} {output} (verified above)")
        return _seen[key]
    try:
        rec = read_record(output)
    except FileNotFoundError as exc:
        out(f"{pad}MISSING  {output}: {exc}")
        return False
    ok = True
    if not output.exists():
        out(f"{pad}MISSING  {output} (record exists, output does not)")
        return False
    actual = content_hash(output)
    status = "ok" if actual == rec["output"]["hash"] else "CHANGED"
    ok &= status == "ok"
    code = rec["code"]
    out(f"{pad}{status:8s} [{rec['stage']}] {output}  sha256:{actual[:12]}  "
        f"git:{(code.get('commit') or 'none')[:10]}{'+dirty' if code.get('dirty') else ''}  "
        f"code:{code['stage_code_hash']}  seed:{rec.get('seed')}  {rec['end']}")
    if status != "ok":
        out(f"{pad}         recorded sha256:{rec['output']['hash'][:12]} — the file was changed "
            "after the stage wrote it")
    for name, inp in rec["inputs"].items():
        path = Path(inp["path"])
        try:
            current = read_record(path)
        except FileNotFoundError as exc:
            out(f"{pad}  MISSING  input {name}: {exc}")
            ok = False
            continue
        if current["output"]["hash"] != inp["hash"] or _file_sha256(record_path(path)) != inp["record_hash"]:
            out(f"{pad}  STALE    input {name} {path}: it was rebuilt or replaced after {output} was made")
            ok = False
        ok &= audit(path, out, _depth + 1, _seen)
    _seen[key] = ok
    return ok
