"""WSGM coarse-to-fine sampling: x_J from model J, then x̄_{j+1} | x_{j+1} and one inverse DWT.

Everything stays on the device from the prior draw to the finest image (one copy to the host per
batch, to write it); every intermediate resolution x_k is returned so it can be scored. J = 0 is
plain SGM through the same code. Inverse problems (``wsgm.inverse``: inpainting, colorization,
super-resolution) project every draw onto the measured part of its band, scale by scale; a band
known whole (the real low-pass, in super-resolution) is not drawn at all.

Randomness is per sample index (``wsgm.noise.PerSample``): sample i's prior draws, solver noise and
projection noise come from its own generator, so a store is the same bits whatever the batch size
(a runtime setting, not part of the spec) and whichever rows a job draws (``rows``: one shard of
``sampling.shards``, gathered by ``wsgm.shards``). That holds on CPU, where the networks run on
chunks of a fixed number of rows (:func:`fixed_rows`); on GPU up to the kernels' batch-size
dependence. rk45 (one step control per batch) is the exception: its batch size stays in the spec.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm import tqdm

from wsgm import sde as sde_lib
from wsgm import wavelets
from wsgm.bands import band_pair, normalize
from wsgm.data import split
from wsgm.data.store import StoreError, create_array, open_group
from wsgm.decompose import read_stats
from wsgm import noise as noise_lib
from wsgm.nets.load import load_model
from wsgm.noise import Noise, PerSample
from wsgm.runtime import derive_seed
from wsgm.samplers import options as sampler_options
from wsgm.samplers import sample as reverse_sample
from wsgm.steps import Steps

log = logging.getLogger("wsgm.sample")


def cascade(models: list, stats: dict, spec: dict, n: int, generator: Noise | torch.Generator,
            device: torch.device, bands: dict | None = None,
            nfe: dict[int, int] | None = None, kernel_rows: int | None = None) -> dict[int, torch.Tensor]:
    """Draw n samples; returns {k: x_k} for k = J..0 (de-normalized, on ``device``).

    ``models[j](x, t, cond)`` is model j's ε-predictor. ``bands`` ({band name:
    ``wsgm.inverse.Projector``} in normalized coordinates) projects each draw onto measurements.
    ``nfe`` ({scale: network evaluations}) is increased by each scale's draws. ``generator``: the
    noise source of every draw (``wsgm.noise``; a ``torch.Generator`` is shared by the batch).
    ``kernel_rows``: run the networks on chunks of exactly that many rows (:func:`fixed_rows`).
    """
    generator = noise_lib.source(generator)
    J, wavelet = spec["J"], spec["wavelet"]
    sde = sde_lib.build(spec["sde"])
    sampling = spec["sampling"]
    steps = Steps(spec["steps"]).per_scale(J)
    channels, size = spec["shape"][1], spec["shape"][2]
    nfe = {} if nfe is None else nfe

    def draw(j: int, shape: tuple[int, ...], cond: torch.Tensor | None) -> torch.Tensor:
        model = models[j]
        proj = None if bands is None else bands.get(band_pair(J, j)[0])  # absent: nothing known
        if proj is not None and proj.full:  # the whole band is measured: nothing to draw
            return proj.target.to(device)
        project = None if proj is None else _projection(proj, sde, generator)
        info: dict = {}
        net = fixed_rows(model, kernel_rows)
        x = reverse_sample(lambda x, t: net(x, t, cond), sde, shape, steps[j], sampling["sampler"],
                           sampling["time_grid"], generator, device, project=project, info=info,
                           **sampler_options(sampling))
        nfe[j] = nfe.get(j, 0) + info["nfe"]
        return x if proj is None else proj.hard(x)

    coarse = size // 2**J
    x = normalize(draw(J, (n, channels, coarse, coarse), None), stats[band_pair(J, J)[0]], inverse=True)
    out = {J: x}
    for j in range(J - 1, -1, -1):
        target, cond_name = band_pair(J, j)
        cond = normalize(x, stats[cond_name])
        details = draw(j, (n, 3 * channels, x.shape[-2], x.shape[-1]), cond)
        x = wavelets.idwt2(x, normalize(details, stats[target], inverse=True), wavelet)
        out[j] = x
    return out


def _projection(proj, sde, generator):
    """The sampler hook: known part ← m(t) y + s(t) z (fresh z), unknown part kept."""
    def project(x: torch.Tensor, t: float) -> torch.Tensor:
        m, s = (float(v) for v in sde.marginal(torch.tensor(t, dtype=torch.float64)))
        z = generator.randn(x.shape, x.device, x.dtype)
        return proj.noisy(x, m, s, z)
    return project


def _inverse_task(spec: dict, J: int):
    """The inverse task of ``spec['inverse']``, checked against this cascade and sampler."""
    from wsgm import inverse

    task = inverse.build(spec["inverse"], spec["shape"][1], spec["shape"][2], spec["seed"])
    task.check(J, spec["wavelet"])
    if spec["sampling"]["sampler"] not in inverse.PROJECTABLE:
        raise inverse.InverseError(f"sampler {spec['sampling']['sampler']!r} cannot project onto "
                                   f"measurements; use one of {inverse.PROJECTABLE}")
    return task


def _open_truth(truth: Path, offset: int, n_total: int, shape: list[int]):
    """(array, first row): the measured images are held-out floor images offset..offset+n_total of a
    dataset store (never trained on), checked against the spec."""
    group = open_group(truth, "x")
    source, rows = group["x"], split.rows(group, "floor", truth)
    held_out = rows.stop - rows.start
    if held_out < offset + n_total or tuple(source.shape[1:]) != tuple(shape[1:]):
        raise StoreError(f"{truth} holds {held_out} held-out floor images of shape {tuple(source.shape[1:])}; "
                         f"this needs {offset + n_total} of shape {tuple(shape[1:])}. "
                         "Fix: lower --offset or sampling.n_samples, raise the dataset's n_floor, "
                         "or use a matching dataset")
    return source, rows.start


CHUNK_ROWS = 64  # rows per Zarr chunk: fixed, so a store's layout depends on neither batch size nor shards
DEFAULT_BATCH = 256
KERNEL_ROWS = 32  # on CPU the networks run on chunks of exactly this many rows (fixed_rows)


def _create_arrays(group, spec: dict, task, n: int) -> tuple[dict, dict]:
    """Arrays x0..xJ of a store of n rows (and truth, y for an inverse problem)."""
    channels, size, J = spec["shape"][1], spec["shape"][2], spec["J"]
    arrays = {k: create_array(group, f"x{k}", (n, channels, size // 2**k, size // 2**k), CHUNK_ROWS)
              for k in range(J + 1)}
    extra = {}
    if task is not None:
        extra = {"truth": create_array(group, "truth", (n, channels, size, size), CHUNK_ROWS),
                 "y": create_array(group, "y", (n, *task.y_shape()), CHUNK_ROWS)}
    return arrays, extra


def batch_size(spec: dict, requested: int | None) -> int:
    """The batch size a run uses: the spec's where it is a result parameter (rk45), else the
    requested one (runtime, like threads), else ``DEFAULT_BATCH``."""
    fixed = spec["sampling"].get("batch_size")
    if fixed is not None and requested is not None and requested != fixed:
        raise StoreError(f"sampler {spec['sampling']['sampler']!r} is not batch-invariant, so its batch size "
                         f"is part of the spec ({fixed}); --batch-size {requested} would change the samples. "
                         "Fix: drop --batch-size or edit sampling.batch_size in the config")
    size = fixed or requested or DEFAULT_BATCH
    if size < 1:
        raise StoreError(f"batch size {size} must be at least 1. Fix: pass --batch-size N with N >= 1")
    return size


def noise_seed(spec: dict, offset: int = 0) -> int:
    """The base of the per-sample streams of a spec (sample i uses ``wsgm.noise.seed(base, i)``)."""
    stream = ("inverse", spec["inverse"]["name"], offset) if "inverse" in spec else ()
    return derive_seed(spec["seed"], "sample", spec["experiment"], spec["steps"], *stream)


def _cost(spec: dict, nfe: dict[int, int], wall: float, device: torch.device, batch: int, n: int) -> dict:
    """Sampling cost of n samples: wall time, throughput and network evaluations per sample (per scale)."""
    J = spec["J"]
    batches = -(-n // batch)
    per_scale = [nfe.get(j, 0) // batches for j in range(J + 1)]
    return {"wall_time_s": wall, "samples_per_s": n / wall, "nfe_per_sample": sum(per_scale),
            "nfe_per_scale": per_scale, "steps_per_scale": Steps(spec["steps"]).per_scale(J),
            "device": str(device), "batch_size": batch, "batches": batches}


def fixed_rows(model, rows: int | None):
    """``model(x, t, cond)`` evaluated on chunks of exactly ``rows`` rows (the last one padded by
    repeating its first row, the padding's outputs dropped), so that the kernels always see the same
    batch size: on CPU, oneDNN and NNPACK choose their convolution algorithm (and its rounding) by
    batch size, so a sample's output would depend on its batch. The network mixes no rows (convs,
    per-sample group norm and attention), so a row's output is then the same in any batch. None:
    one call with the whole batch."""
    if rows is None:
        return model

    def run(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[0]
        t = t.reshape(-1).expand(n) if t.numel() == 1 else t
        outs = []
        for i in range(0, n, rows):
            parts = [x[i:i + rows], t[i:i + rows], None if cond is None else cond[i:i + rows]]
            k = parts[0].shape[0]
            if k < rows:
                parts = [None if p is None else torch.cat([p, p[:1].expand(rows - k, *p.shape[1:])]) for p in parts]
            outs.append(model(*parts)[:k])
        return torch.cat(outs)
    return run


def sample_to_store(spec: dict, store: Path, model_paths: list[Path], out: Path, device: torch.device,
                    truth: Path | None = None, offset: int = 0, *, batch: int | None = None,
                    rows: tuple[int, int] | None = None) -> dict:
    """Sample ``spec['sampling']['n_samples']`` images (or the global ``rows`` [a, b) of them: one
    shard) in batches of ``batch`` into the Zarr store ``out``.

    With ``spec['inverse']`` (a task of ``wsgm.inverse``) and ``truth`` (a dataset store), solve
    the inverse problem for images offset.. of it; the store then also holds ``truth`` and the
    measurement ``y`` for scoring. Returns the cost summary (also in the store's attributes).
    """
    J = spec["J"]
    if len(model_paths) != J + 1:
        raise ValueError(f"need J+1 = {J + 1} model files (scales 0..J), got {len(model_paths)}")
    if ("inverse" in spec) != (truth is not None):
        raise StoreError("an inverse problem needs the images it measures: pass --inverse TASK (or a spec "
                         "holding 'inverse') together with --truth DATA.zarr, or neither")
    n_total = spec["sampling"]["n_samples"]
    a, b = rows if rows is not None else (0, n_total)
    if not 0 <= a < b <= n_total:
        raise StoreError(f"rows [{a}, {b}) are not a non-empty part of the {n_total} samples. "
                         f"Fix: pass --rows A:B with 0 <= A < B <= {n_total}, or --shard I/K with K <= {n_total}")
    batch = batch_size(spec, batch)
    task = _inverse_task(spec, J) if truth is not None else None
    source, first = _open_truth(truth, offset, n_total, spec["shape"]) if truth is not None else (None, 0)
    models = [load_model(p, device)[0] for p in model_paths]
    stats = read_stats(store)
    noise = PerSample(noise_seed(spec, offset), a, b)
    group = zarr.open_group(str(out), mode="w-")
    arrays, extra = _create_arrays(group, spec, task, b - a)
    nfe: dict[int, int] = {}
    finite = True
    t0 = time.perf_counter()
    bar = tqdm(total=b - a, desc=f"sample {spec['experiment']} steps {Steps(spec['steps']).label}",
               unit="img", disable=not sys.stderr.isatty(), dynamic_ncols=True)
    for begin in range(a, b, batch):
        n = min(batch, b - begin)
        local = slice(begin - a, begin - a + n)  # rows of this store
        bands = None
        if task is not None:
            index = np.arange(offset + begin, offset + begin + n)
            held = slice(first + offset + begin, first + offset + begin + n)  # held-out floor rows
            real = torch.from_numpy(np.asarray(source[held])).to(device)
            y = task.measure(real, index)
            bands = task.bands(y, index, J, spec["wavelet"], stats)
            extra["truth"][local] = real.float().cpu().numpy()
            extra["y"][local] = y.float().cpu().numpy()
        xs = cascade(models, stats, spec, n, noise.rows(begin, begin + n), device, bands, nfe,
                     KERNEL_ROWS if device.type == "cpu" else None)
        finite &= bool(torch.isfinite(xs[0]).all())
        for k, x in xs.items():
            arrays[k][local] = x.float().cpu().numpy()
        bar.update(n)
        log.info("sampled %d/%d (rows %d..%d of %d)", begin + n - a, b - a, a, b, n_total)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    summary = _cost(spec, nfe, time.perf_counter() - t0, device, batch, b - a)
    if (a, b) != (0, n_total):
        summary["rows"] = [a, b]
    attrs = {"J": J, "wavelet": spec["wavelet"], "cost": summary, "finite": finite,
             "mode": "generate" if task is None else "inverse", "rows": [a, b], "n_samples": n_total}
    if task is not None:
        attrs["inverse"] = {"task": spec["inverse"], "source": str(truth), "offset": offset, "part": "floor",
                            "rows": [first + offset, first + offset + n_total],
                            "note": "truth = the measured images, y = their measurement; x{k} for k >= 1 "
                                    "are the cascade's low-passes of the solutions"}
    group.attrs.update(attrs)
    return summary
