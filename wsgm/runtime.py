"""Device choice, seeding and deterministic execution shared by the stages."""

from __future__ import annotations

import hashlib
import os

import torch

from wsgm.errors import UserError


class DeviceError(UserError, RuntimeError):
    """The configured device cannot be used on this machine."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "device: cuda was requested but no CUDA GPU is visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                "Fix: run on a GPU node (the SLURM profile requests one), or set device: auto or cpu")
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu")


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for one named random stream, derived from the master seed."""
    text = "/".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def setup(threads: int | None = None) -> None:
    """Deterministic kernels; a fixed thread count (reductions depend on it)."""
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
