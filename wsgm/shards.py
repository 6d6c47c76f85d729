"""Sharded sampling: K jobs each draw a contiguous slice of the samples, one gather joins them.

Shard i of K draws the global rows ``rows(i, K, n)`` ([i·n/K, (i+1)·n/K) with ``np.array_split``
boundaries) with ``wsgm sample --shard i/K``; randomness is per sample index
(``wsgm.noise.PerSample``), so :func:`gather` (``wsgm gather``) writes a store whose arrays are the
bits a single job would have written (on CPU; on GPU up to kernel nondeterminism), with the same
spec, the same provenance inputs (the decomposed store, the models, the measured data) and the
shards' own records embedded under ``extra.shards``. The shard stores are then redundant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from wsgm.data.store import create_array
from wsgm.errors import UserError
from wsgm.provenance import _file_sha256 as file_sha256
from wsgm.provenance import record_path, spec_hash, verify

CHUNK_ROWS = 64  # as wsgm.cascade.CHUNK_ROWS (the gathered store has a single job's layout)


class ShardError(UserError):
    """Shard stores that cannot be gathered into one store (missing, foreign, overlapping)."""


def rows(i: int, k: int, n: int) -> tuple[int, int]:
    """Global rows [a, b) of shard i of k over n samples (``np.array_split`` boundaries)."""
    if not 1 <= k <= n:
        raise ShardError(f"{k} shard(s) of {n} sample(s): every shard needs at least one sample. "
                         f"Fix: set sampling.shards between 1 and n_samples = {n}")
    if not 0 <= i < k:
        raise ShardError(f"shard {i} of {k} does not exist; shards are numbered 0..{k - 1}")
    q, r = divmod(n, k)
    a = i * q + min(i, r)
    return a, a + q + (1 if i < r else 0)


def _two_ints(text: str, sep: str, usage: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(sep))
    except ValueError:
        raise UserError(f"{text!r} is not {usage}") from None
    return a, b


def parse(text: str) -> tuple[int, int]:
    """``"i/K"`` → (i, K)."""
    return _two_ints(text, "/", "I/K for --shard (e.g. 0/3: the first of 3 shards)")


def parse_rows(text: str) -> tuple[int, int]:
    """``"a:b"`` → (a, b)."""
    return _two_ints(text, ":", "A:B for --rows (global sample rows A..B-1)")


def _fix(spec: dict) -> str:
    return ("Fix: rerun the missing or stale shards (`snakemake` does it; by hand `wsgm sample --spec ... "
            "--shard I/K --out SHARD`), or delete the shard folder and rerun")


def check(spec: dict, shards: list[Path]) -> tuple[list[Path], list[dict]]:
    """The shards ordered by rows and their records, after checking that they are complete,
    made from ``spec`` and together tile the rows [0, n_samples) exactly once."""
    if not shards:
        raise ShardError("no shard stores to gather. " + _fix(spec))
    n = spec["sampling"]["n_samples"]
    found = []
    for path in shards:
        if not Path(path).exists():
            raise ShardError(f"shard store {path} is missing: its sampling job has not run or failed. "
                             + _fix(spec))
        rec = verify(path)
        if rec.get("stage") != "sample" or spec_hash(rec["spec"]) != spec_hash(spec):
            diff = sorted(k for k in set(rec["spec"]) | set(spec) if rec["spec"].get(k) != spec.get(k))
            raise ShardError(f"shard store {path} was sampled with another spec (differs in {diff}): it is "
                             f"from an earlier config or another experiment. " + _fix(spec))
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        a, b = attrs.get("rows", [0, attrs.get("n_samples", n)])
        found.append((a, b, Path(path), rec, attrs))
    found.sort(key=lambda f: (f[0], f[1]))
    at = 0
    for a, b, path, _, _ in found:
        if a != at:
            what = f"rows {at}..{a - 1} are in no shard" if a > at else f"rows {a}..{min(b, at) - 1} are in two shards"
            raise ShardError(f"the shard stores do not tile the {n} samples: {what} ({path} holds rows "
                             f"{a}..{b - 1}); shards of different counts K, or a shard missing, are mixed. "
                             + _fix(spec))
        at = b
    if at != n:
        raise ShardError(f"the shard stores cover rows 0..{at - 1} of {n}: the last shard(s) are missing. "
                         + _fix(spec))
    inputs = [json.dumps({k: (v["path"], v["hash"]) for k, v in f[3]["inputs"].items()}, sort_keys=True)
              for f in found]
    if len(set(inputs)) != 1:
        raise ShardError("the shard stores were sampled from different inputs (models, decomposed store "
                         "or measured data were rebuilt between shards). " + _fix(spec))
    for name, inp in found[0][3]["inputs"].items():
        path = record_path(inp["path"])
        if not path.is_file() or file_sha256(path) != inp.get("record_hash"):
            raise ShardError(f"input {name} ({inp['path']}) was rebuilt or removed after the shards were "
                             "sampled from it. " + _fix(spec))
    return [f[2] for f in found], [f[3] for f in found]


def inputs_of(record: dict) -> dict[str, Path]:
    """The inputs a shard read (the same for every shard): the gathered store's provenance inputs."""
    return {k: Path(v["path"]) for k, v in record["inputs"].items()}


def gather(spec: dict, shards: list[Path], records: list[dict], out: Path) -> dict:
    """Concatenate the (checked, ordered) shard stores into the store ``out``; returns the merged
    cost summary with the shard records (the gathered record's ``extra``)."""
    groups = [zarr.open_group(str(p), mode="r") for p in shards]
    attrs = [dict(g.attrs) for g in groups]
    n = spec["sampling"]["n_samples"]
    group = zarr.open_group(str(out), mode="w-")
    for name in sorted(groups[0].array_keys()):
        first = groups[0][name]
        target = create_array(group, name, (n, *first.shape[1:]), CHUNK_ROWS, str(first.dtype))
        for g, a in zip(groups, attrs):
            lo, hi = a["rows"]
            target[lo:hi] = g[name][:]
    costs = [a["cost"] for a in attrs]
    if len({json.dumps(c["nfe_per_scale"]) for c in costs}) != 1:
        raise ShardError(f"the shards spent different network evaluations per sample "
                         f"({[c['nfe_per_scale'] for c in costs]}); they were made by different code. " + _fix(spec))
    wall = sum(c["wall_time_s"] for c in costs)
    batches = sorted({c["batch_size"] for c in costs})
    cost = {"wall_time_s": wall, "samples_per_s": n / wall, "nfe_per_sample": costs[0]["nfe_per_sample"],
            "nfe_per_scale": costs[0]["nfe_per_scale"], "steps_per_scale": costs[0]["steps_per_scale"],
            "device": costs[0]["device"], "batch_size": batches[0] if len(batches) == 1 else batches,
            "batches": sum(c["batches"] for c in costs), "shards": len(shards),
            "shard_wall_time_max_s": max(c["wall_time_s"] for c in costs)}
    merged = {k: v for k, v in attrs[0].items() if k not in ("cost", "rows", "finite")}
    merged.update(cost=cost, finite=all(a["finite"] for a in attrs), rows=[0, n], n_samples=n)
    group.attrs.update(merged)
    return {**cost, "shards": [{"path": str(p), "rows": a["rows"], "record": r}
                               for p, a, r in zip(shards, attrs, records)]}
