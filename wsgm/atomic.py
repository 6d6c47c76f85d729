"""Atomic outputs: write into a temporary sibling, then rename into place.

A crash (or SIGKILL) leaves at most a ``.tmp-*`` sibling behind, never a half-written output
under the real name; stale temporaries from earlier crashes are removed on the next attempt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def clear_stale_temporaries(target: Path) -> None:
    for old in target.parent.glob(f".{target.name}.tmp-*"):
        _remove(old)


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    work = tmp if directory else tmp / target.name
    if directory:
        tmp.rmdir()  # the writer creates the directory (e.g. a Zarr store)
    try:
        yield work
        if not work.exists():
            raise FileNotFoundError(f"stage wrote nothing to {work}")
        if target.exists():
            _remove(target)
        os.replace(work, target)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_json(target: str | Path, data: object) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
