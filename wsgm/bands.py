"""Which bands of the decomposed store model j learns, and their normalization.

Model j < J learns the detail bands of level j+1 given the low-pass of level j+1; model J learns
the coarsest low-pass (J = 0: the image itself). Every band is normalized per channel with the
mean/std that ``wsgm decompose`` stored. Training, sampling and likelihood all read these two
helpers, so they live apart from each of them.
"""

from __future__ import annotations

import torch


def band_pair(J: int, j: int) -> tuple[str, str | None]:
    """(target band, conditioning band) names in the decomposed store for model j."""
    if not 0 <= j <= J:
        raise ValueError(f"scale {j} is outside 0..J={J}")
    return (f"low{J}", None) if j == J else (f"detail{j + 1}", f"low{j + 1}")


def normalize(x: torch.Tensor, stats: dict, inverse: bool = False) -> torch.Tensor:
    mean = torch.tensor(stats["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(stats["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * std + mean if inverse else (x - mean) / std
