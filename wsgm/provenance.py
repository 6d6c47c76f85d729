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
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

from wsgm import __version__
from wsgm.atomic import atomic_path, write_json
from wsgm.errors import UserError

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

# The Snakemake rule that makes an output of each stage (for the fix in error messages).
RULES = {"dataset": "make_dataset", "decompose": "decompose", "train": "train_scale", "sample": "sample",
         "likelihood": "likelihood", "reference": "reference", "evaluate": "evaluate", "report": "report"}
REQUIRED = ("stage", "output", "spec", "inputs", "code")  # what every record holds (``output.hash`` too)


class RecordError(UserError):
    """A provenance record is damaged or foreign, or the output it describes no longer matches it."""


class RecordMissing(RecordError, FileNotFoundError):
    """An output has no provenance record (or a record has no output)."""


def rule_for(output: str | Path, record: dict | None = None) -> str | None:
    """The Snakemake rule that makes ``output`` (from its record's stage), if it can be told."""
    stage = (record or {}).get("stage")
    spec = (record or {}).get("spec")
    inverse = isinstance(spec, dict) and "inverse" in spec
    if stage == "fetch":
        parent = Path(output).parent.name
        return "fetch_inception" if parent == "resources" else f"fetch_{parent}"
    extra = (record or {}).get("extra")
    if stage == "sample" and isinstance(extra, dict) and "shards" in extra:  # gathered shards
        return "gather_inverse" if inverse else "gather_samples"
    if stage == "sample" and isinstance(extra, dict) and "rows" in extra:  # one shard
        return "inverse_shard" if inverse else "sample_shard"
    if stage in ("sample", "evaluate") and inverse:
        return f"inverse_{stage}"
    if stage in ("sample", "evaluate") and isinstance(spec, dict) and "snapshot" in spec:
        return f"{stage}_snapshot"
    if isinstance(stage, str) and stage in RULES:
        return RULES[stage]
    return _rule_from_layout(Path(output))


def _rule_from_layout(output: Path) -> str | None:
    """The rule that makes ``output`` by its place in the results layout (wsgm.specs), for a
    record that cannot be read."""
    name, kind = output.name, output.parent.parent.name
    if name == "data.zarr":
        return "make_dataset"
    if kind == "inverse":
        return "inverse_evaluate" if name.endswith(".json") else "inverse_sample"
    if kind == "shards":  # results/{samples,inverse}/E/shards/S/IofK.zarr
        return "inverse_shard" if output.parents[3].name == "inverse" else "sample_shard"
    rule = {"decomposed": "decompose", "models": "train_scale", "samples": "sample",
            "metrics": "evaluate", "reference": "reference"}.get(kind)
    if rule in ("sample", "evaluate") and ".at" in name:  # a learning-curve point (steps8.at0.25.json)
        return f"{rule}_snapshot"
    return rule


def rebuild_hint(output: str | Path, record: dict | None = None) -> str:
    """How to rebuild ``output``: delete it with its record and rerun (the rule, when known)."""
    output = Path(str(output).removesuffix(SUFFIX))
    if record is None:
        with contextlib.suppress(Exception):
            record = json.loads(record_path(output).read_text())
    rm = f"rm -r {shlex.quote(str(output))} {shlex.quote(str(record_path(output)))}"
    rule = rule_for(output, record if isinstance(record, dict) else None)
    alt = f"`snakemake --forcerun {rule}`" if rule else "the `wsgm` stage that made it"
    return f"Fix: delete it and its record (`{rm}`) and rerun `snakemake`, or rerun {alt}"


def read_record(output: str | Path) -> dict:
    """The record of ``output``; a :class:`RecordError` naming the file and the fix if it is
    missing, not JSON (truncated, overwritten) or not a wsgm record."""
    output = Path(str(output).removesuffix(SUFFIX))
    path = record_path(output)
    if not path.is_file():
        raise RecordMissing(
            f"{output} has no provenance record ({path.name} is missing): it was not made by a "
            f"wsgm stage, or the record was deleted. {rebuild_hint(output)}")
    try:
        rec = json.loads(path.read_bytes())
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RecordError(f"{path} is damaged (not JSON: {exc}); {output} cannot be trusted. "
                          f"{rebuild_hint(output)}") from None
    missing = [k for k in REQUIRED if not isinstance(rec, dict) or k not in rec]
    if not missing and not (isinstance(rec["output"], dict) and isinstance(rec["output"].get("hash"), str)
                            and isinstance(rec["inputs"], dict) and isinstance(rec["code"], dict)):
        missing = ["output.hash"]
    if missing:
        raise RecordError(f"{path} is not a wsgm provenance record (it lacks {', '.join(missing)}); "
                          f"{output} cannot be trusted. {rebuild_hint(output, {})}")
    return rec


def verify(output: str | Path) -> dict:
    """The record of ``output`` after checking that the output exists and still has the content
    hash its record holds; a :class:`RecordError` naming it and the fix otherwise."""
    output = Path(str(output).removesuffix(SUFFIX))
    rec = read_record(output)
    if not output.exists():
        raise RecordMissing(f"{output} is missing (its record {record_path(output).name} exists). "
                            f"{rebuild_hint(output, rec)}")
    actual = content_hash(output)
    if actual != rec["output"]["hash"]:
        raise RecordError(f"{output} is corrupt: its content (sha256 {actual[:12]}) is not what the "
                          f"{rec['stage']} stage wrote (sha256 {rec['output']['hash'][:12]}); it was "
                          f"changed or damaged since. {rebuild_hint(output, rec)}")
    return rec


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
        # Read input records first: a stage never runs on an input without provenance, nor on one
        # whose content no longer matches its record (re-hashed here: a corrupt input stops the
        # stage before it writes anything).
        self._inputs = {}
        for key, path in self.inputs.items():
            t0 = time.perf_counter()
            rec = verify(path)
            log.info("input %s verified (sha256 %s) in %.2f s", path, rec["output"]["hash"][:12],
                     time.perf_counter() - t0)
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
    except RecordMissing as exc:
        out(f"{pad}MISSING  {output}: {exc}")
        _seen[key] = False
        return False
    except RecordError as exc:
        out(f"{pad}CORRUPT  {exc}")
        _seen[key] = False
        return False
    ok = True
    if not output.exists():
        out(f"{pad}MISSING  {output} (record exists, output does not). {rebuild_hint(output, rec)}")
        _seen[key] = False
        return False
    actual = content_hash(output)
    status = "ok" if actual == rec["output"]["hash"] else "CHANGED"
    ok &= status == "ok"
    code = rec["code"]
    out(f"{pad}{status:8s} [{rec['stage']}] {output}  sha256:{actual[:12]}  "
        f"git:{str(code.get('commit') or 'none')[:10]}{'+dirty' if code.get('dirty') else ''}  "
        f"code:{code.get('stage_code_hash')}  seed:{rec.get('seed')}  {rec.get('end')}")
    if status != "ok":
        out(f"{pad}         recorded sha256:{rec['output']['hash'][:12]} — the file was changed "
            f"after the stage wrote it. {rebuild_hint(output, rec)}")
    for name, inp in rec["inputs"].items():
        if not (isinstance(inp, dict) and isinstance(inp.get("path"), str)):
            out(f"{pad}  CORRUPT  {record_path(output)}: its input {name!r} has no path; the record "
                f"is damaged. {rebuild_hint(output, rec)}")
            ok = False
            continue
        path = Path(inp["path"])
        try:
            current = read_record(path)
        except RecordMissing as exc:
            out(f"{pad}  MISSING  input {name}: {exc}")
            ok = False
            continue
        except RecordError as exc:
            out(f"{pad}  CORRUPT  input {name}: {exc}")
            ok = False
            continue
        if current["output"]["hash"] != inp.get("hash") or _file_sha256(record_path(path)) != inp.get("record_hash"):
            out(f"{pad}  STALE    input {name} {path}: it was rebuilt or replaced after {output} was made")
            ok = False
        ok &= audit(path, out, _depth + 1, _seen)
    _seen[key] = ok
    return ok
