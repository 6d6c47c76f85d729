"""WSGM coarse-to-fine sampling: x_J from model J, then x̄_{j+1} | x_{j+1} and one inverse DWT.

Everything stays on the device from the prior draw to the finest image; every intermediate
resolution x_k is returned so it can be scored. J = 0 is plain SGM through the same code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from wsgm import sde as sde_lib
from wsgm import wavelets
from wsgm.data.store import create_array
from wsgm.decompose import read_stats
from wsgm.runtime import derive_seed
from wsgm.samplers import sample as reverse_sample
from wsgm.train import band_pair, load_model, normalize

log = logging.getLogger("wsgm.sample")


def steps_per_scale(steps: int | list[int], J: int) -> list[int]:
    """Steps for models 0..J: one number for all scales, or a list of J+1 numbers."""
    if isinstance(steps, int):
        return [steps] * (J + 1)
    if len(steps) != J + 1:
        raise ValueError(f"a per-scale step list needs J+1 = {J + 1} entries, got {len(steps)}")
    return list(steps)


def cascade(models: list[torch.nn.Module], stats: dict, spec: dict, n: int,
            generator: torch.Generator, device: torch.device) -> dict[int, torch.Tensor]:
    """Draw n samples; returns {k: x_k} for k = J..0 (de-normalized, on ``device``)."""
    J, wavelet = spec["J"], spec["wavelet"]
    sde = sde_lib.build(spec["sde"])
    sampling = spec["sampling"]
    steps = steps_per_scale(spec["steps"], J)
    channels, size = spec["shape"][1], spec["shape"][2]

    def draw(j: int, shape: tuple[int, ...], cond: torch.Tensor | None) -> torch.Tensor:
        model = models[j]
        return reverse_sample(lambda x, t: model(x, t, cond), sde, shape, steps[j],
                              sampling["sampler"], sampling["time_grid"], generator, device)

    coarse = size // 2**J
    target, _ = band_pair(J, J)
    x = normalize(draw(J, (n, channels, coarse, coarse), None), stats[target], inverse=True)
    out = {J: x}
    for j in range(J - 1, -1, -1):
        target, cond_name = band_pair(J, j)
        cond = normalize(x, stats[cond_name])
        details = draw(j, (n, 3 * channels, x.shape[-2], x.shape[-1]), cond)
        x = wavelets.idwt2(x, normalize(details, stats[target], inverse=True), wavelet)
        out[j] = x
    return out


def run(spec: dict, store: Path, model_paths: list[Path], out: Path, device: torch.device) -> dict:
    """Sample ``spec['sampling']['n_samples']`` images in batches into the Zarr store ``out``."""
    J = spec["J"]
    if len(model_paths) != J + 1:
        raise ValueError(f"need J+1 = {J + 1} model files (scales 0..J), got {len(model_paths)}")
    models = [load_model(p, device)[0] for p in model_paths]
    stats = read_stats(store)
    n_total, batch = spec["sampling"]["n_samples"], spec["sampling"]["batch_size"]
    gen = torch.Generator(device=device).manual_seed(
        derive_seed(spec["seed"], "sample", spec["experiment"], spec["steps"]))
    group = zarr.open_group(str(out), mode="w-")
    channels, size = spec["shape"][1], spec["shape"][2]
    arrays = {k: create_array(group, f"x{k}", (n_total, channels, size // 2**k, size // 2**k), batch)
              for k in range(J + 1)}
    t0 = time.perf_counter()
    for start in range(0, n_total, batch):
        n = min(batch, n_total - start)
        for k, x in cascade(models, stats, spec, n, gen, device).items():
            arrays[k][start:start + n] = x.float().cpu().numpy()
        log.info("sampled %d/%d", start + n, n_total)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    steps = steps_per_scale(spec["steps"], J)
    summary = {"wall_time_s": wall, "samples_per_s": n_total / wall, "nfe_per_sample": sum(steps),
               "steps_per_scale": steps, "device": str(device)}
    group.attrs.update({"J": J, "wavelet": spec["wavelet"], "cost": summary,
                        "finite": bool(np.isfinite(arrays[0][:]).all())})
    return summary
