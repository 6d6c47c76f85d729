"""``portilla-simoncelli``: texture statistics that see geometry, as a parameter-free feature space.

The Portilla–Simoncelli (2000) statistics, as implemented by plenoptic (the Simoncelli lab's torch
library, pinned in requirements.txt / environment.yml): on a complex steerable pyramid, the
auto-correlations of the coefficient magnitudes, their cross-orientation and cross-scale
correlations, the cross-scale correlations of the phase-doubled coefficients (the statistics that
see edges, lines and their alignment across scales, which a power spectrum and a marginal cannot),
and the moments and auto-correlations of the low-pass reconstructions and of the pixels. A field
with the same spectrum and marginals but random phases (the surrogate of tests/test_texture_features.py)
keeps ``wsgm-fields`` almost unchanged and moves these far.

Choices (all fixed, so the space has no parameters; the definition hash covers this module):

- Geometry per side L: :func:`wsgm.metrics.sample_sizes.ps_geometry` — min(4, floor(log2 L) - 2)
  pyramid scales, 4 orientations, 3×3 auto-correlation windows; sides >= 8 divisible by
  2^n_scales. Dimension :func:`wsgm.metrics.sample_sizes.ps_dim`: 47, 128, 209, 290 at L = 8, 16,
  32, 64 and 290 from 128 on.
- Channels: the statistics of the channel mean (the luminance, up to the weights, for RGB). The
  dimension then does not grow with C (per channel, 3×290 features would need 1740+ images for a
  usable covariance); colour marginals and per-channel spectra are what ``wsgm-fields``, used
  beside this space, measures.
- Redundancy: plenoptic already returns only the non-redundant statistics (the symmetric halves
  of the auto- and cross-orientation correlation matrices and their unit diagonals are dropped);
  none of the rest is constant (checked on noise and textures by the tests), so nothing else is
  masked.
- Scale: the entries that are variances or standard deviations (pixel variance, low-pass
  reconstruction stds, magnitude stds, high-pass residual variance) are replaced by their logs
  (+1e-12), as ``wsgm-fields`` logs its energies: they span orders of magnitude across scales and
  would otherwise dominate the Fréchet distance, and a log turns an overall gain into a shift.
  Correlations (in [-1, 1]), skews, kurtoses, and the pixel mean / min / max are kept as they are.
  No standardization (it would need reference statistics: not parameter-free).
- Degenerate input (a constant image: correlations 0/0): non-finite entries become 0.
- Precision and batching: float64 (the statistics normalize by small variances), in chunks of at
  most :data:`CHUNK_PIXELS` pixels (256 images of 32×32, 16 of 256×256) to bound memory; the
  pyramids are built once per side and device.
"""

from __future__ import annotations

import functools

import torch

from wsgm.metrics.sample_sizes import TEXTURE, ps_dim, ps_geometry

CHUNK_PIXELS = 1 << 18
LOG_STATS = ("std_reconstructed", "magnitude_std", "var_highpass_residual")  # + pixel variance


@functools.cache
def _model(side: int, device: str):
    import warnings

    geometry = ps_geometry(side)
    if geometry is None:
        raise ValueError(f"{TEXTURE} cannot take {side}x{side} images (sides >= 8 divisible by "
                         "2^n_scales only, n_scales = min(4, floor(log2 L) - 2); see ps_geometry)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plenoptic's notices about its defaults
        from plenoptic.models import PortillaSimoncelli

        n_scales, n_orientations, width = geometry
        model = PortillaSimoncelli((side, side), n_scales=n_scales, n_orientations=n_orientations,
                                   spatial_corr_width=width)
    model = model.to(device=device, dtype=torch.float64).eval()
    return model, _log_mask(model).to(device)


def _log_mask(model) -> torch.Tensor:
    """Boolean mask over the model's output: the variance / std entries (logged)."""
    parts = []
    for key, necessary in model._necessary_stats_dict.items():
        n = int(torch.as_tensor(necessary).sum())
        if key == "pixel_statistics":  # mean, variance, skew, kurtosis, min, max
            parts.append(torch.tensor([False, True, False, False, False, False]))
        else:
            parts.append(torch.full((n,), key in LOG_STATS))
    mask = torch.cat(parts)
    assert len(mask) == len(model._necessary_stats_mask)
    return mask


def ps_features(x: torch.Tensor) -> torch.Tensor:
    """N×d float64 statistics of N×C×L×L fields (d = :func:`ps_dim` of L; see the module docstring)."""
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{TEXTURE} takes N×C×L×L fields, got shape {tuple(x.shape)}")
    side = x.shape[-1]
    model, log_mask = _model(side, str(x.device))
    lum = x.to(torch.float64).mean(1, keepdim=True)
    step = max(1, CHUNK_PIXELS // side**2)
    out = []
    for start in range(0, len(lum), step):
        stats = model(lum[start:start + step])[:, 0]
        stats = torch.where(log_mask, torch.log(stats.clamp(min=0) + 1e-12), stats)
        out.append(torch.nan_to_num(stats, nan=0.0, posinf=0.0, neginf=0.0))
    feats = torch.cat(out) if out else torch.zeros(0, ps_dim(side), dtype=torch.float64, device=x.device)
    return feats


def plenoptic_version() -> str:
    from importlib.metadata import version

    return version("plenoptic")


__all__ = ["CHUNK_PIXELS", "TEXTURE", "plenoptic_version", "ps_features"]
