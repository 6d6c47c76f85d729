"""WSGM coarse-to-fine sampling: x_J from model J, then x̄_{j+1} | x_{j+1} and one inverse DWT.

Everything stays on the device from the prior draw to the finest image (one copy to the host per
batch, to write it); every intermediate resolution x_k is returned so it can be scored. J = 0 is
plain SGM through the same code. Super-resolution starts from the real level-J low-pass of given
images instead of drawing it, and samples only the detail bands. Inverse problems
(``wsgm.inverse``) project every draw onto the measured part of its band, scale by scale.
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
from wsgm.data.store import StoreError, create_array, open_group
from wsgm.decompose import read_stats
from wsgm.runtime import derive_seed
from wsgm.samplers import options as sampler_options
from wsgm.samplers import sample as reverse_sample
from wsgm.steps import Steps
from wsgm.train import band_pair, load_model, normalize

log = logging.getLogger("wsgm.sample")


class Counter:
    """Wraps an ε-predictor and counts network evaluations per sample (works for any sampler)."""

    def __init__(self) -> None:
        self.per_scale: dict[int, int] = {}

    def wrap(self, j: int, eps_fn):
        def counted(x, t):
            self.per_scale[j] = self.per_scale.get(j, 0) + 1
            return eps_fn(x, t)
        return counted


def lowpass(x: torch.Tensor, levels: int, wavelet: str) -> torch.Tensor:
    """The level-``levels`` low-pass: the x_J a real image would have (super-resolution start)."""
    return wavelets.wavedec2(x, wavelet, levels)[0]


def cascade(models: list, stats: dict, spec: dict, n: int, generator: torch.Generator,
            device: torch.device, start: torch.Tensor | None = None,
            counter: Counter | None = None, bands: dict | None = None) -> dict[int, torch.Tensor]:
    """Draw n samples; returns {k: x_k} for k = J..0 (de-normalized, on ``device``).

    ``models[j](x, t, cond)`` is model j's ε-predictor. ``start`` (n×C×L/2^J×L/2^J, the real
    level-J low-pass) replaces the draw of x_J: super-resolution. ``bands`` ({band name:
    ``wsgm.inverse.Projector``} in normalized coordinates) projects each draw onto measurements.
    """
    J, wavelet = spec["J"], spec["wavelet"]
    sde = sde_lib.build(spec["sde"])
    sampling = spec["sampling"]
    steps = Steps(spec["steps"]).per_scale(J)
    channels, size = spec["shape"][1], spec["shape"][2]
    counter = counter or Counter()

    def draw(j: int, shape: tuple[int, ...], cond: torch.Tensor | None) -> torch.Tensor:
        model = models[j]
        eps_fn = counter.wrap(j, lambda x, t: model(x, t, cond))
        proj = None if bands is None else bands.get(band_pair(J, j)[0])  # absent: nothing known
        if proj is not None and proj.full:  # the whole band is measured: nothing to draw
            return proj.target.to(device)
        project = None if proj is None else _projection(proj, sde, generator)
        x = reverse_sample(eps_fn, sde, shape, steps[j], sampling["sampler"], sampling["time_grid"],
                           generator, device, project=project, **sampler_options(sampling))
        return x if proj is None else proj.hard(x)

    coarse = size // 2**J
    if start is not None:
        if tuple(start.shape) != (n, channels, coarse, coarse):
            raise ValueError(f"super-resolution needs {n}x{channels}x{coarse}x{coarse} low-pass images, "
                             f"got {tuple(start.shape)}")
        x = start.to(device)
    else:
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


def _projection(proj, sde, generator):
    """The sampler hook: known part ← m(t) y + s(t) z (fresh z), unknown part kept."""
    def project(x: torch.Tensor, t: float) -> torch.Tensor:
        m, s = (float(v) for v in sde.marginal(torch.tensor(t, dtype=torch.float64)))
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return proj.noisy(x, m, s, z)
    return project


def run(spec: dict, store: Path, model_paths: list[Path], out: Path, device: torch.device,
        lowres: Path | None = None, offset: int = 0, truth: Path | None = None) -> dict:
    """Sample ``spec['sampling']['n_samples']`` images in batches into the Zarr store ``out``.

    With ``lowres`` (a dataset store), super-resolve images offset.. of it: x_J is their real
    level-J low-pass and only the detail bands are sampled (J >= 1). With ``spec['inverse']`` (a
    task of ``wsgm.inverse``) and ``truth`` (a dataset store), solve the inverse problem for images
    offset.. of it; the store then also holds ``truth`` and the measurement ``y`` for scoring.
    """
    J = spec["J"]
    task = None
    if len(model_paths) != J + 1:
        raise ValueError(f"need J+1 = {J + 1} model files (scales 0..J), got {len(model_paths)}")
    if lowres is not None and J == 0:
        raise StoreError("super-resolution needs a wavelet cascade (J >= 1); this experiment has J = 0")
    if "inverse" in spec:
        if truth is None or lowres is not None:
            raise StoreError("an inverse problem needs the images it measures (--truth DATA.zarr) "
                             "and no --lowres")
        from wsgm import inverse

        task = inverse.build(spec["inverse"], spec["shape"][1], spec["shape"][2], spec["seed"])
        task.check(J, spec["wavelet"])
        if spec["sampling"]["sampler"] not in inverse.PROJECTABLE:
            raise inverse.InverseError(f"sampler {spec['sampling']['sampler']!r} cannot project onto "
                                       f"measurements; use one of {inverse.PROJECTABLE}")
    elif truth is not None:
        raise StoreError("--truth is for inverse problems: pass --inverse TASK too")
    models = [load_model(p, device)[0] for p in model_paths]
    stats = read_stats(store)
    n_total, batch = spec["sampling"]["n_samples"], spec["sampling"]["batch_size"]
    source_path = lowres if lowres is not None else truth
    source = None
    if source_path is not None:
        source = open_group(source_path, "x")["x"]
        if source.shape[0] < offset + n_total or tuple(source.shape[1:]) != tuple(spec["shape"][1:]):
            raise StoreError(f"{source_path} holds {source.shape[0]} images of shape {tuple(source.shape[1:])}; "
                             f"this needs {offset + n_total} of shape {tuple(spec['shape'][1:])}. "
                             "Fix: lower --offset or sampling.n_samples, or use a matching dataset")
    mode = "generate" if source is None else "superres" if lowres is not None else "inverse"
    stream = () if mode == "generate" else (mode, offset) if task is None else \
        (mode, spec["inverse"]["name"], offset)
    gen = torch.Generator(device=device).manual_seed(
        derive_seed(spec["seed"], "sample", spec["experiment"], spec["steps"], *stream))
    group = zarr.open_group(str(out), mode="w-")
    channels, size = spec["shape"][1], spec["shape"][2]
    arrays = {k: create_array(group, f"x{k}", (n_total, channels, size // 2**k, size // 2**k), batch)
              for k in range(J + 1)}
    extra = {}
    if task is not None:
        extra = {"truth": create_array(group, "truth", (n_total, channels, size, size), batch),
                 "y": create_array(group, "y", (n_total, *task.y_shape()), batch)}
    counter = Counter()
    finite = True
    t0 = time.perf_counter()
    bar = tqdm(total=n_total, desc=f"sample {spec['experiment']} steps {spec['steps']}", unit="img",
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    for begin in range(0, n_total, batch):
        n = min(batch, n_total - begin)
        start = bands = None
        if source is not None:
            real = torch.from_numpy(np.asarray(source[offset + begin:offset + begin + n])).to(device)
            if task is None:
                start = lowpass(real, J, spec["wavelet"])
            else:
                index = np.arange(offset + begin, offset + begin + n)
                y = task.measure(real, index)
                bands = task.bands(y, index, J, spec["wavelet"], stats)
                extra["truth"][begin:begin + n] = real.float().cpu().numpy()
                extra["y"][begin:begin + n] = y.float().cpu().numpy()
        xs = cascade(models, stats, spec, n, gen, device, start, counter, bands)
        finite &= bool(torch.isfinite(xs[0]).all())
        for k, x in xs.items():
            arrays[k][begin:begin + n] = x.float().cpu().numpy()
        bar.update(n)
        log.info("sampled %d/%d", begin + n, n_total)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    steps = Steps(spec["steps"]).per_scale(J)
    batches = -(-n_total // batch)
    nfe = [counter.per_scale.get(j, 0) // batches for j in range(J + 1)]
    summary = {"wall_time_s": wall, "samples_per_s": n_total / wall, "nfe_per_sample": sum(nfe),
               "nfe_per_scale": nfe, "steps_per_scale": steps, "device": str(device),
               "batch_size": batch, "batches": batches}
    attrs = {"J": J, "wavelet": spec["wavelet"], "cost": summary, "finite": finite, "mode": mode}
    if mode == "superres":
        attrs["superres"] = {"source": str(lowres), "offset": offset,
                             "note": "x{J} is the real low-pass of these images, not a sample"}
    if mode == "inverse":
        attrs["inverse"] = {"task": spec["inverse"], "source": str(truth), "offset": offset,
                            "note": "truth = the measured images, y = their measurement; x{k} for k >= 1 "
                                    "are the cascade's low-passes of the solutions"}
    group.attrs.update(attrs)
    return summary
