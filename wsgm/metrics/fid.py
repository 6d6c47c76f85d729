"""FID and KID through torch-fidelity, with feature extractors registered for fields.

torch-fidelity computes the statistics (``fid_features_to_statistics``), the Fréchet distance
(``fid_statistics_to_metric``) and the KID (``kid_features_to_metric``); this module supplies the
features. Its name-keyed cache is never used: reference features are an explicit artifact
(``wsgm reference``), computed once per dataset and decomposition.

Extractors (chosen by ``fid.extractor``):

- ``inception-v3-compat``: torch-fidelity's Inception-v3 (the FID of the literature), for natural
  images. Weights come from a local file (``fid.weights`` or the copy fetched into resources/);
  a missing file is a :class:`WeightsError`, never a download at evaluation time.
- ``wsgm-fields``: parameter-free multi-scale statistics for physical fields, where ImageNet
  features mean nothing: per image, the log radially averaged power spectrum (second order, every
  scale), for every Haar level and orientation the log energy and the sparsity ratio
  E|d|/sqrt(E d²) of the detail coefficients (second and low-order non-Gaussian statistics per
  scale, the wavelet statistics physicists use to validate field generators), and the pixel
  mean, std, skewness and excess kurtosis. No weights, so no download; its "weights hash" is the
  hash of its source code, so numbers made with another definition are never compared.
- ``portilla-simoncelli``: the Portilla–Simoncelli texture statistics of plenoptic
  (:mod:`wsgm.metrics.texture`): steerable-pyramid magnitude auto-, cross-orientation and
  cross-scale correlations and phase-doubled cross-scale correlations, which see geometry (edges,
  lines, their alignment across scales) that spectra and marginals cannot. Parameter-free: pyramid
  geometry fixed per side (``sample_sizes.ps_geometry``; sides >= 8), on the channel mean,
  variances logged; 47 / 128 / 209 / 290 features at L = 8 / 16 / 32 / >= 64. Identity: the hash
  of its source and plenoptic's version.
- ``wsgm-identity``: the flattened pixels (tests, and tiny images where pixels are the features).

Resolutions: x_k, the level-k orthonormal low-pass, has values in [−2^k, 2^k] for images in
[−1, 1] (each 2-D level multiplies a constant image by 2). Inception's input is bytes mapped from
``fid.range``, so it gets x_k / 2^k (:func:`inception_input`, used for samples and reference
alike, through :func:`features`' ``level``); fed x_k itself, 3.8% of the bytes of images spanning
[−1, 1] would clip at k = 1 and 25.5% at k = 2. The identity of the Inception feature space records
this (``input``), so a reference made without it is refused and recomputed. The own extractors
take x_k unscaled: they have no fixed input range (the field statistics are logs of energies and
scale-free ratios, the identity the pixels; the texture statistics correlations, moments, logged
variances and the pixel mean / min / max), so scaling would only shift or scale them, and the
numbers they give are unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from wsgm import wavelets
from wsgm.errors import UserError
from wsgm.metrics import texture
from wsgm.metrics.sample_sizes import feature_dim, fields_side_ok, frechet_tolerance, ps_geometry, ps_side_ok
from wsgm.metrics.spectrum import shell_index

INCEPTION = "inception-v3-compat"
FIELDS = "wsgm-fields"
IDENTITY = "wsgm-identity"
TEXTURE = texture.TEXTURE  # "portilla-simoncelli"


class WeightsError(UserError, RuntimeError):
    """The feature extractor's weights file is missing or is not the expected one."""


class _OwnExtractor(FeatureExtractorBase):
    """A wsgm feature extractor: one feature layer, ``LAYER``, used for every metric; not compiled."""

    LAYER = ""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @classmethod
    def get_provided_features_list(cls):
        return (cls.LAYER,)

    @classmethod
    def get_default_feature_layer_for_metric(cls, metric):
        return cls.LAYER

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 8, 8)


class FieldStatistics(_OwnExtractor):
    """Multi-scale statistics of N×C×L×L float fields (see the module docstring)."""

    LAYER = "stats"

    def forward(self, x):
        x = x.to(torch.float64)
        n, c = x.shape[0], x.shape[1]
        feats = [_log_radial_power(x)]
        low = x
        while low.shape[-1] >= 4:  # detail bands of at least 2×2 coefficients
            low, details = wavelets.dwt2(low, "haar")
            d = details.reshape(n, 3 * c, -1)
            energy = (d**2).mean(-1)
            feats += [torch.log(energy + 1e-12), d.abs().mean(-1) / torch.sqrt(energy + 1e-12)]
        flat = x.reshape(n, c, -1)
        mean, std = flat.mean(-1), flat.std(-1) + 1e-12
        z = (flat - mean[..., None]) / std[..., None]
        feats += [mean, torch.log(std), (z**3).mean(-1), (z**4).mean(-1) - 3]
        return (torch.cat([f.reshape(n, -1) for f in feats], dim=1).to(torch.float32),)


def _log_radial_power(x: torch.Tensor) -> torch.Tensor:
    """N×(C·S) log of each image's radially averaged periodogram over shells 1..L/2."""
    size = x.shape[-1]
    shells = torch.from_numpy(shell_index(size)).reshape(-1).to(x.device)
    n_shells = size // 2 + 1
    onehot = torch.nn.functional.one_hot(shells.clamp(max=n_shells), n_shells + 1)[:, :n_shells]
    onehot = onehot.to(torch.float64)
    power = torch.fft.fft2(x).abs().pow(2).reshape(*x.shape[:2], -1) / size**2
    radial = (power @ onehot) / onehot.sum(0)
    return torch.log(radial[..., 1:] + 1e-12)


class Identity(_OwnExtractor):
    """The flattened input as features."""

    LAYER = "pixels"

    def forward(self, x):
        return (x.reshape(x.shape[0], -1).to(torch.float32),)


class TextureStatistics(_OwnExtractor):
    """Portilla–Simoncelli statistics of the channel mean of N×C×L×L fields (:mod:`wsgm.metrics.texture`)."""

    LAYER = "ps"

    def forward(self, x):
        return (texture.ps_features(x).to(torch.float32),)


OWN = {FIELDS: FieldStatistics, IDENTITY: Identity, TEXTURE: TextureStatistics}
for _name, _cls in OWN.items():
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_name, _cls)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_weights(fid: dict) -> tuple[Path, str]:
    """(path, sha256) of the Inception weights; one clear WeightsError if unusable."""
    path = Path(fid["weights"])  # the specs resolve an empty fid.weights to the fetched copy
    if not fid["weights"] or not path.is_file():
        raise WeightsError(
            f"Inception weights not found at {path}. Fix: run `snakemake fetch_inception` (or "
            f"`python -m wsgm fetch --url {fid['url']} --sha256 {fid['sha256']} --out {path}`) on a "
            "machine with internet, or set fid.weights to a local copy, or use "
            f"fid.extractor: {FIELDS} (no weights)")
    digest = file_sha256(path)
    if fid["sha256"] and digest != fid["sha256"]:
        raise WeightsError(f"Inception weights {path} have sha256 {digest}, expected "
                           f"{fid['sha256']} (fid.sha256). Fix: delete the file and fetch it again")
    return path, digest


def extractor_identity(fid: dict) -> dict:
    """What the metric JSON records so numbers are compared only within one feature space."""
    name = fid["extractor"]
    if name == INCEPTION:
        _, digest = check_weights(fid)
        return {"name": name, "weights_sha256": digest, "layer": "2048", "input": INCEPTION_INPUT}
    source = (inspect.getsource(_OwnExtractor) + inspect.getsource(OWN[name])
              + inspect.getsource(_log_radial_power))
    if name == TEXTURE:  # its definition: texture.py, the geometry rule, and plenoptic's code
        source += (inspect.getsource(texture) + inspect.getsource(ps_geometry)
                   + f"plenoptic=={texture.plenoptic_version()}")
    return {"name": name, "definition_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "layer": OWN[name].get_default_feature_layer_for_metric("fid")}


@functools.cache
def _extractor(name: str, weights: str | None, device: str) -> FeatureExtractorBase:
    from torch_fidelity.utils import create_feature_extractor

    kwargs = {"feature_extractor_weights_path": weights} if weights else {}
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")
    model = create_feature_extractor(name, [layer], cuda=False, verbose=False, **kwargs)
    return model.to(device)


INCEPTION_INPUT = "x_k / 2^k, fid.range -> uint8"  # what Inception sees at resolution k (recorded)


def inception_input(x: torch.Tensor, level: int, value_range: list[float]) -> torch.Tensor:
    """The uint8 RGB images Inception sees for resolution ``level``: x_k / 2^k mapped from ``value_range``."""
    return _to_uint8_rgb(x / 2.0**level, value_range)


def _to_uint8_rgb(x: torch.Tensor, value_range: list[float]) -> torch.Tensor:
    lo, hi = value_range
    x = ((x - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]


def features(x, fid: dict, device: torch.device | str = "cpu", batch: int = 256,
             progress=None, level: int = 0) -> torch.Tensor:
    """N×D features of an N×C×H×W array (numpy, torch or Zarr, read batch by batch) of resolution
    ``level`` (x_k: Inception gets x_k / 2^k, the own extractors x_k; module docstring)."""
    name = fid["extractor"]
    weights = str(check_weights(fid)[0]) if name == INCEPTION else None
    model = _extractor(name, weights, str(device))
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            xb = torch.as_tensor(np.asarray(x[start:start + batch]), dtype=torch.float32).to(device)
            if name == INCEPTION:
                xb = inception_input(xb, level, fid["range"])
            out.append(model(xb)[0].cpu())
            if progress is not None:
                progress.update(len(xb))
    return torch.cat(out).to(torch.float64)


def statistics(feats: torch.Tensor) -> dict[str, np.ndarray]:
    return fid_features_to_statistics(feats.to(torch.float64))


def frechet(stats_a: dict, stats_b: dict) -> float:
    value = float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"])
    return nonnegative(value, stats_a["mu"], np.atleast_2d(stats_a["sigma"]), stats_b["mu"],
                       np.atleast_2d(stats_b["sigma"]))


def nonnegative(value: float, mu1, s1, mu2, s2) -> float:
    """A computed Fréchet distance clamped at 0 where round-off made it slightly negative (e.g.
    −5e-8 for a set against itself); more negative than :func:`frechet_tolerance` is a bug."""
    scale = float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2) + np.trace(s1) + np.trace(s2))
    tol = frechet_tolerance(scale, len(np.atleast_1d(mu1)))
    if not np.isfinite(value) or value < -tol:
        raise RuntimeError(f"Fréchet distance {value!r} is not a distance (round-off allows down to "
                           f"-{tol:.3g} at scale {scale:.3g}): a bug in the statistics, please report it")
    return max(value, 0.0)


def kid(feats_a: torch.Tensor, feats_b: torch.Tensor, fid: dict, seed: int) -> dict[str, float]:
    """Polynomial-kernel KID (mean, std over subsets) with subsets no larger than either set."""
    size = min(fid["kid_subset_size"], len(feats_a), len(feats_b))
    out = kid_features_to_metric(feats_a, feats_b, kid_subsets=fid["kid_subsets"],
                                 kid_subset_size=size, kid_kernel="poly", rng_seed=seed % 2**31, verbose=False)
    return {"kid": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"],
            "kid_subset_size": size}


def closed_form_frechet(mu1, s1, mu2, s2) -> float:
    """‖μ1-μ2‖² + tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½) by symmetric eigendecompositions (for tests)."""
    def sqrtm(a):
        w, v = np.linalg.eigh(a)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r = sqrtm(s1)
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(r @ s2 @ r)))
    return nonnegative(value, mu1, s1, mu2, s2)


__all__ = ["FIELDS", "IDENTITY", "INCEPTION", "INCEPTION_INPUT", "TEXTURE", "WeightsError", "check_weights",
           "closed_form_frechet", "extractor_identity", "feature_dim", "features", "fields_side_ok", "frechet",
           "inception_input", "kid", "nonnegative", "ps_side_ok", "statistics"]
