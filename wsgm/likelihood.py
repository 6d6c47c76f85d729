"""Bits/dim of real images under a trained experiment: SGM (J = 0) or the WSGM factorization.

With an orthonormal DWT (Jacobian 1), WSGM's factorization p(x) = p(x_J) Π_j p(x̄_j | x_j) gives

    log p(x) = log p_J(z_J) + Σ_{j<J} log p_j(z̄_{j+1} | z_{j+1}) + Σ_bands log |∂z/∂band|

where z = (band - mean) / std is each band normalized with decompose's per-channel stats (what
model j was trained on, ``wsgm.train.band_pair``/``normalize``) and the last term is
-H W Σ_c log std_c per band. Each model term is the probability-flow ODE likelihood
(``wsgm.ode_likelihood.log_likelihood``) of the normalized band at time eps, given the normalized
low-pass. J = 0 is plain SGM: one model on the normalized image. Every scale's term is reported
in bits per dimension of the *whole image* (so the scales' numbers add up to the total). For a
simulated Gaussian field the true law's bits/dim of the same images is reported beside it
(``exact_bits_per_dim``, continuous: without the bin term).

Dequantization (8-bit data): ``bin_width`` is the quantization step in data units. Images stored
as x = u / 127.5 - 1 (``wsgm.data.store``) have bins of width 2/255 (``BIN_8BIT``); uniform noise
over the bin is added to the pixels before the DWT and the bound -log2 P(bin) ≤ -log2 p(x + u) -
log2(bin_width) per dimension is reported (for 2/255 the bin term adds log2(127.5) ≈ 7.0 bits/dim).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pywt
import torch

from wsgm import sde as sde_lib
from wsgm import wavelets
from wsgm.bands import band_pair, normalize
from wsgm.data import split
from wsgm.data.store import StoreError, open_group
from wsgm.decompose import read_stats
from wsgm.errors import UserError
from wsgm.metrics.gaussian import log_density
from wsgm.nets.load import load_model
from wsgm.ode_likelihood import ESTIMATORS, log_likelihood
from wsgm.runtime import derive_seed

BIN_8BIT = 2 / 255  # the spacing of x = u / 127.5 - 1 for 8-bit u


class LikelihoodError(UserError, ValueError):
    """A likelihood request that cannot be honoured (shown as one line by the CLI)."""


def check_orthonormal(wavelet: str, shape: tuple[int, ...], J: int) -> None:
    """Refuse a DWT whose Jacobian is not 1: a non-orthogonal wavelet, or one that loses energy."""
    if J == 0:
        return
    w = pywt.Wavelet(wavelet)
    if not w.orthogonal or abs(sum(c * c for c in w.dec_lo) - 1) > 1e-10:
        raise LikelihoodError(f"wavelet {wavelet!r} is not orthonormal, so the WSGM factorization has a "
                              "Jacobian this likelihood does not count; use an orthogonal wavelet (haar, dbN, symN)")
    x = torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    low, details = wavelets.wavedec2(x, wavelet, J)
    energy = float(low.square().sum() + sum(d.square().sum() for d in details))
    if abs(energy - float(x.square().sum())) > 1e-9 * energy:
        raise LikelihoodError(f"the {wavelet!r} DWT of {J} levels does not preserve energy on "
                              f"{tuple(shape[1:])} images, so its Jacobian is not 1")


def _eps_fn(model, cond: torch.Tensor | None, device: torch.device):
    """Model j as the float64 CPU ε-predictor ``log_likelihood`` integrates (gradients pass through)."""
    dtype = next((p.dtype for p in model.parameters()), torch.float64)
    c = None if cond is None else cond.to(device, dtype)
    return lambda x, t: model(x.to(device, dtype), t.to(device, dtype), c).to("cpu", torch.float64)


def scale_log_likelihoods(models: list, stats: dict, J: int, wavelet: str, sde: sde_lib.SDE,
                          x: torch.Tensor, device: torch.device = torch.device("cpu"), *,
                          estimator: str = "rademacher", probes: int = 1,
                          generator: torch.Generator | None = None, rtol: float = 1e-5,
                          atol: float = 1e-5) -> list[dict]:
    """Per-scale terms of log p(x) (nats per image, data units), scales J..0.

    Each entry: ``scale``, ``band``, ``log_p`` (N,) = the model's log-density of the normalized band
    plus ``log_jacobian`` (the normalization's), ``nfe``, ``wall_time_s``. Their ``log_p`` sum to
    log p(x). ``models[j](x, t, cond)`` is model j's ε-predictor, as in ``wsgm.cascade``.
    """
    if len(models) != J + 1:
        raise ValueError(f"need J+1 = {J + 1} models (scales 0..J), got {len(models)}")
    check_orthonormal(wavelet, tuple(x.shape), J)
    lows, details = [x.double().cpu()], []
    for _ in range(J):
        low, d = wavelets.dwt2(lows[-1], wavelet)
        lows.append(low)
        details.append(d)
    terms = []
    for j in range(J, -1, -1):
        target, cond_name = band_pair(J, j)
        band = lows[J] if j == J else details[j]  # detail{j+1}: the details of low{j}
        cond = None if cond_name is None else normalize(lows[j + 1], stats[cond_name])
        z = normalize(band, stats[target])
        log_jac = -band.shape[-2] * band.shape[-1] * float(np.log(stats[target]["std"]).sum())
        info = {}
        t0 = time.perf_counter()
        logp = log_likelihood(_eps_fn(models[j], cond, device), sde, z, estimator=estimator, probes=probes,
                              generator=generator, rtol=rtol, atol=atol, info=info)
        terms.append({"scale": j, "band": target, "log_p": logp + log_jac, "log_jacobian": log_jac,
                      "nfe": info["nfe"], "wall_time_s": time.perf_counter() - t0})
    return terms


def bits_per_dim(models: list, stats: dict, J: int, wavelet: str, sde: sde_lib.SDE, x: torch.Tensor,
                 device: torch.device = torch.device("cpu"), *, bin_width: float | None = None,
                 generator: torch.Generator | None = None, **kw) -> tuple[torch.Tensor, list[dict]]:
    """(bits/dim per image, per-scale terms with ``bits_per_dim`` = their share of it).

    ``bin_width`` (data units): dequantize and return the bound on -log2 P(bin) per dimension.
    """
    x = x.detach().double().cpu()
    dim = x[0].numel()
    if bin_width is not None:
        if not bin_width > 0:
            raise LikelihoodError(f"bin width must be > 0, got {bin_width}")
        x = x + bin_width * (torch.rand(x.shape, generator=generator, dtype=torch.float64) - 0.5)
    terms = scale_log_likelihoods(models, stats, J, wavelet, sde, x, device, generator=generator, **kw)
    bits = torch.zeros(x.shape[0], dtype=torch.float64)
    for term in terms:
        term["bits_per_dim"] = -term["log_p"] / (dim * math.log(2))
        bits = bits + term["bits_per_dim"]
    if bin_width is not None:
        bits = bits - math.log2(bin_width)
    return bits, terms


def likelihood_of_images(spec: dict, data: Path, store: Path, model_paths: list[Path],
                         device: torch.device) -> dict:
    """Bits/dim of images offset..offset+n of the dataset ``data`` (the result as a JSON-able dict).

    ``spec['likelihood']``: n, offset (within the held-out floor rows; None: 0), estimator, probes, bin_width (data units or
    None), batch_size (None: all n in one ODE solve), rtol, atol.
    """
    J, opts = spec["J"], spec["likelihood"]
    n, offset, batch = opts["n"], opts["offset"], opts["batch_size"] or opts["n"]
    if n < 1 or opts["probes"] < 1 or batch < 1:
        raise LikelihoodError(f"need n, probes and batch size >= 1, got {n}, {opts['probes']}, {batch}")
    if opts["estimator"] not in ESTIMATORS:
        raise LikelihoodError(f"unknown trace estimator {opts['estimator']!r}; use one of {ESTIMATORS}")
    if len(model_paths) != J + 1:
        raise LikelihoodError(f"need J+1 = {J + 1} model files (scales 0..J), got {len(model_paths)}")
    attrs = dict(open_group(store).attrs)
    if attrs.get("J") != J or attrs.get("wavelet", spec["wavelet"]) != spec["wavelet"]:
        raise StoreError(f"{store} was decomposed with J={attrs.get('J')}, wavelet {attrs.get('wavelet')!r}; "
                         f"this experiment has J={J}, wavelet {spec['wavelet']!r}. Fix: pass its own --store")
    group = open_group(data, "x")
    source = group["x"]
    rows = split.rows(group, "floor", data)  # held-out images: never trained on
    held_out = rows.stop - rows.start
    spectrum = group["spectrum"][:] if "spectrum" in group else None  # a simulated Gaussian field
    if offset is None:  # the first n held-out floor images
        offset = 0
    if held_out < offset + n or offset < 0 or tuple(source.shape[1:]) != tuple(spec["shape"][1:]):
        raise StoreError(f"{data} holds {held_out} held-out floor images of shape {tuple(source.shape[1:])}; "
                         f"this needs images {offset}..{offset + n - 1} of them, of shape "
                         f"{tuple(spec['shape'][1:])}. Fix: lower --n or --offset, raise the dataset's "
                         "n_floor, or use the experiment's dataset")
    stats = read_stats(store)
    models = [load_model(p, device)[0].requires_grad_(False) for p in model_paths]
    sde = sde_lib.build(spec["sde"])
    gen = torch.Generator().manual_seed(derive_seed(spec["seed"], "likelihood", spec["experiment"], offset, n))
    kw = {k: opts[k] for k in ("estimator", "probes", "rtol", "atol")}
    bits, truth, scales = [], [], {}
    t0 = time.perf_counter()
    for begin in range(0, n, batch):
        x = torch.from_numpy(np.asarray(source[rows.start + offset + begin:rows.start + offset + min(n, begin + batch)]))
        b, terms = bits_per_dim(models, stats, J, spec["wavelet"], sde, x, device,
                                bin_width=opts["bin_width"], generator=gen, **kw)
        bits.append(b)
        if spectrum is not None:
            truth.append(-log_density(spectrum, x.numpy()) / (x[0].numel() * math.log(2)))
        for term in terms:
            acc = scales.setdefault(term["scale"], {"band": term["band"], "bits": [], "nfe": 0, "wall_time_s": 0.0})
            acc["bits"].append(term["bits_per_dim"])
            acc["nfe"] += term["nfe"]
            acc["wall_time_s"] += term["wall_time_s"]
            acc["normalization_bits_per_dim"] = -term["log_jacobian"] / (x[0].numel() * math.log(2))
    wall = time.perf_counter() - t0
    bits = torch.cat(bits)
    per_scale = []
    for j in sorted(scales, reverse=True):
        acc = scales[j]
        per_scale.append({"scale": j, "band": acc["band"], "bits_per_dim": float(torch.cat(acc["bits"]).mean()),
                          "normalization_bits_per_dim": acc["normalization_bits_per_dim"],
                          "nfe": acc["nfe"], "wall_time_s": acc["wall_time_s"]})
    batches = -(-n // batch)
    return {"experiment": spec["experiment"], "J": J, "wavelet": spec["wavelet"],
            "bits_per_dim": float(bits.mean()), "bits_per_dim_sem": float(bits.std() / math.sqrt(n)) if n > 1 else 0.0,
            "per_scale": per_scale,
            "exact_bits_per_dim": float(np.concatenate(truth).mean()) if truth else None,
            "dequantization": None if opts["bin_width"] is None else
            {"bin_width": opts["bin_width"], "bits_per_dim": -math.log2(opts["bin_width"]),
             "note": "bin width in data units; bits/dim bound -log2 P(bin) per dimension"},
            "nfe": sum(s["nfe"] for s in per_scale), "batches": batches, "wall_time_s": wall,
            "images": {"source": str(data), "part": "floor", "offset": offset, "n": n,
                       "rows": [rows.start + offset, rows.start + offset + n]},
            "estimator": opts["estimator"], "probes": opts["probes"], "device": str(device),
            "per_image_bits_per_dim": [float(v) for v in bits]}
