"""EMA snapshots at fractions of training (learning curves, ``learning_curve.fractions``).

The training loop (:func:`wsgm.train.train`) calls three hooks: :meth:`Snapshots.usable` on the
checkpoint it resumes from, :meth:`Snapshots.stash` after every step (rank 0), and
:meth:`Snapshots.write` once the final weights are written. The steps are the spec's
``snapshots`` ({fraction label: step}, :func:`wsgm.specs.train`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from wsgm.atomic import atomic_path
from wsgm.errors import UserError
from wsgm.nets.load import READ_ERRORS

log = logging.getLogger("wsgm.train")


class SnapshotError(UserError, RuntimeError):
    """A snapshot's stashed weights are lost at the end of training."""


class Snapshots:
    """EMA weights at fractions of training: at step ``spec['snapshots'][f]`` the
    EMA is stashed beside the checkpoint (``<checkpoint>.at<f>``, a :class:`wsgm.train.Checkpoint`; atomically, with the spec hash),
    and at the end each stash becomes a weights file like the final one (plus ``snapshot``:
    fraction and step). A resumed run finds its stashes, so it writes the same snapshots; a
    checkpoint past a snapshot step whose stash is missing or foreign is not resumed from."""

    def __init__(self, ckpt, outputs: dict[str, Path]) -> None:
        self.ckpt, self.outputs = ckpt, {str(f): Path(p) for f, p in outputs.items()}
        self.steps = {f: int(s) for f, s in (ckpt.spec.get("snapshots") or {}).items() if f in self.outputs}

    def stash_path(self, fraction: str) -> Path:
        return self.ckpt.path.with_name(f"{self.ckpt.path.name}.at{fraction}")

    def _stashed(self, fraction: str) -> dict | None:
        try:
            state = torch.load(self.stash_path(fraction), map_location="cpu", weights_only=True)
        except (FileNotFoundError, *READ_ERRORS):
            return None
        ok = isinstance(state, dict) and state.get("spec_hash") == self.ckpt.key
        return state if ok and state.get("step") == self.steps[fraction] else None

    def usable(self, state: dict | None) -> dict | None:
        """The checkpoint's state, or None when it is past a snapshot whose stash is lost."""
        if state is None:
            return None
        lost = [f for f, s in self.steps.items() if s <= int(state["step"]) and self._stashed(f) is None]
        if lost:
            log.warning("checkpoint %s is at step %d, past the snapshot(s) at fraction(s) %s whose stashed "
                        "weights are missing; training restarts from step 0", self.ckpt.path, state["step"], lost)
            return None
        return state

    def stash(self, done: int, ema) -> None:
        for f, s in self.steps.items():
            if s == done:
                with atomic_path(self.stash_path(f)) as tmp:
                    torch.save({"spec_hash": self.ckpt.key, "step": done, "ema": ema.state_dict()}, tmp)

    def write(self, final: dict) -> None:
        for f, s in self.steps.items():
            state = self._stashed(f)
            if state is None:
                raise SnapshotError(f"the EMA weights stashed at step {s} (snapshot {f}) are missing: "
                                    f"{self.stash_path(f)}. Fix: delete {self.ckpt.path} and rerun (training restarts)")
            weights = {**final, "ema": state["ema"], "losses": final["losses"][:s],
                       "snapshot": {"fraction": float(f), "step": s}}
            with atomic_path(self.outputs[f]) as tmp:
                torch.save(weights, tmp)
        for f in self.steps:
            self.stash_path(f).unlink(missing_ok=True)
