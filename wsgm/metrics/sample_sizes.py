"""What FID/KID need of the images and of the sample counts, computed from the config alone.

Torch-free (the config check runs at planning, before any job): the feature dimension of each
extractor of :mod:`wsgm.metrics.fid`, the image sides ``wsgm-fields`` and ``portilla-simoncelli``
accept (with the latter's pyramid geometry, :func:`ps_geometry`), and the sample
counts below which a metric is undefined (an error at planning) or statistically meaningless (a
warning). tests/test_config_checks.py checks :func:`feature_dim` and :func:`fields_side_ok`
against the real extractors' output on random input.

Thresholds (n = images on one side of a comparison: the samples, the reference statistics or the
data floor's real images; d = feature dimension):

- Every metric compares two distributions and needs n >= 2 on both sides (:data:`MIN_SAMPLES`):
  with one image the covariance estimate (ddof = 1) is 0/0 = NaN and the Fréchet distance's
  matrix square root raises ``LinAlgError``; the unbiased KID divides by m(m - 1); a spread, a
  standard deviation or a Binder cumulant of one sample means nothing. Error.
- FID with n <= d is still defined — the Fréchet (Wasserstein-2) distance between two Gaussians
  holds for singular covariances, and torch-fidelity computes it — but the covariance estimate
  then has rank <= n - 1 < d, and with d/n = γ > 1/2 its eigenvalues are spread over the
  Marchenko–Pastur range [(1 - √γ)², (1 + √γ)²] times the true ones: the FID is dominated by its
  estimation bias (which falls like 1/n, so values at different n are not comparable). Warning
  below n = 2d (γ = 1/2: the smallest eigenvalue still ~9 % of the true one). And, whatever d,
  below :data:`MIN_MEANINGFUL` = 50 images the mean alone is so noisy that the value (and its data
  floor) differs from run to run by as much as step settings differ: warning.
- KID is unbiased at any subset size m >= 2, but its spread over subsets grows like 1/m: warning
  when the subsets (kid_subset_size, capped at the counts of both sides) hold fewer than 50.
"""

from __future__ import annotations

FIELDS = "wsgm-fields"
IDENTITY = "wsgm-identity"
TEXTURE = "portilla-simoncelli"
INCEPTION = "inception-v3-compat"
INCEPTION_DIM = 2048  # torch-fidelity's Inception-v3 pool3 features
FIELDS_MIN_SIDE = 4  # FieldStatistics applies a Haar level while the side is at least this
PS_MIN_SIDE = 8  # plenoptic's steerable pyramid needs floor(log2 L) - 2 >= 1 levels
PS_MAX_SCALES = 4  # Portilla & Simoncelli's (and plenoptic's) default pyramid height
PS_ORIENTATIONS = 4
PS_CORR_WIDTH = 3  # spatial_corr_width: the 3x3 neighbourhood of every scale (the reason: ps_geometry)
MIN_SAMPLES = 2
MIN_MEANINGFUL = 50


def fields_levels(side: int) -> int | None:
    """Haar levels FieldStatistics applies to an image side (it halves while side >= 4, and each
    halving needs an even side); None when it meets an odd side >= 4 (``dwt2`` raises there): the
    sides it accepts are 2^a and 3·2^a (and any side below 4)."""
    levels = 0
    while side >= FIELDS_MIN_SIDE:
        if side % 2:
            return None
        side //= 2
        levels += 1
    return levels


def fields_side_ok(side: int) -> bool:
    return fields_levels(side) is not None


def ps_geometry(side: int) -> tuple[int, int, int] | None:
    """(n_scales, n_orientations, spatial_corr_width) of the ``portilla-simoncelli`` statistics of
    L×L images, or None where it cannot take the side.

    The rule: as many pyramid scales as plenoptic's steerable pyramid allows, floor(log2 L) - 2
    (coarsest band, the low-pass residual, 4×4 for L = 2^a, 6×6 for 3·2^a), capped at 4 (the
    model's default; from L = 128 on the residual grows to 8×8, 16×16); 4 orientations; the
    auto-correlations over a 3×3 neighbourhood at every scale — the widest window the 4×4 residual
    of L <= 64 admits, and kept at 3 for L >= 128 too, so the dimension stays 290 (n = 512 images
    then still estimate its covariance with d/n < 0.6; the default width 7 gives 710 at L = 128) —
    a 3×3 window at scale s spans 3·2^s pixels, so long-range structure is still measured, by the
    coarser scales. Accepted: L >= 8 divisible by 2^n_scales, i.e. the even sides >= 8 except those
    that meet an odd side before the coarsest scale (e.g. 18: n_scales 2, but 18/2 = 9 is odd)."""
    if side < PS_MIN_SIDE:
        return None
    scales = min(PS_MAX_SCALES, side.bit_length() - 1 - 2)
    if side % 2**scales:  # plenoptic needs side / 2^i even for every i < n_scales
        return None
    return scales, PS_ORIENTATIONS, PS_CORR_WIDTH


def ps_side_ok(side: int) -> bool:
    return ps_geometry(side) is not None


def ps_dim(side: int) -> int:
    """Width of one image's ``portilla-simoncelli`` statistics (plenoptic's non-redundant set):
    6 pixel statistics; per scale s and orientation o the (w² - 1)/2 unique entries of the w×w
    auto-correlation of the magnitudes and the magnitude std; per scale and the low-pass residual
    (S + 1) the skew, kurtosis, std and (w² - 1)/2 auto-correlation entries of the low-pass
    reconstruction; per scale the O(O - 1)/2 cross-orientation magnitude correlations; per pair of
    adjacent scales the O² magnitude and 2·O² real cross-scale correlations; the high-pass variance."""
    geometry = ps_geometry(side)
    if geometry is None:
        raise ValueError(f"{TEXTURE} cannot take {side}x{side} images (sides >= {PS_MIN_SIDE} divisible "
                         "by 2^n_scales only, n_scales = min(4, floor(log2 L) - 2))")
    s, o, w = geometry
    auto = (w * w - 1) // 2
    return (6 + auto * o * s + 3 * (s + 1) + auto * (s + 1) + o * (o - 1) // 2 * s + o * s
            + 3 * o * o * (s - 1) + 1)


def feature_dim(extractor: str, size: int, channels: int) -> int:
    """Width d of one image's features: wsgm-fields = C·(⌊L/2⌋ + 6·levels + 4) (radial spectrum
    shells 1..L/2, log energy and sparsity of 3 orientations per Haar level, 4 pixel moments, per
    channel); wsgm-identity = C·L²; inception-v3-compat = 2048; portilla-simoncelli =
    :func:`ps_dim` (L = 8, 16, 32, 64, >= 128: 47, 128, 209, 290, 290), whatever C (it takes the
    channel mean)."""
    if extractor == INCEPTION:
        return INCEPTION_DIM
    if extractor == IDENTITY:
        return channels * size * size
    if extractor == FIELDS:
        levels = fields_levels(size)
        if levels is None:
            raise ValueError(f"{FIELDS} cannot take {size}x{size} images (sides 2^a or 3·2^a only)")
        return channels * (size // 2 + 6 * levels + 4)
    if extractor == TEXTURE:
        return ps_dim(size)
    raise ValueError(f"unknown feature extractor {extractor!r}")


def nearest_fields_sides(size: int) -> tuple[int, int]:
    """The valid wsgm-fields sides just below and just above ``size``."""
    lo = next(s for s in range(size, 0, -1) if fields_side_ok(s))
    hi = next(s for s in range(size, 4 * size + 8) if fields_side_ok(s))
    return lo, hi


def frechet_warning(n: int, d: int) -> str | None:
    """Why a FID from n images in d dimensions is statistically meaningless, or None."""
    need = max(2 * d, MIN_MEANINGFUL)
    if n >= need:
        return None
    why = (f"n <= d: the covariance estimate is singular (rank <= {n - 1})" if n <= d else
           "n < 2d: the covariance estimate's eigenvalues are badly spread" if n < 2 * d else
           f"fewer than {MIN_MEANINGFUL} images: the value is dominated by sampling noise")
    return (f"FID from {n} images in the {d}-dimensional feature space is statistically meaningless "
            f"({why}; it needs n >= max(2d, {MIN_MEANINGFUL}) = {need})")


def kid_warning(m: int) -> str | None:
    """Why a KID over subsets of m images is too noisy to compare, or None."""
    if m >= MIN_MEANINGFUL:
        return None
    return (f"KID over subsets of {m} images is too noisy to compare (its spread over subsets grows "
            f"like 1/m; it needs subsets of at least {MIN_MEANINGFUL})")


def frechet_tolerance(scale: float, d: int) -> float:
    """How negative a computed Fréchet distance may come out from round-off alone.

    The distance is ‖Δμ‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½: terms of size ``scale`` = ‖Δμ‖² + tr Σ1
    + tr Σ2 cancel. The square roots of the d eigenvalues of Σ1 Σ2 that are round-off near zero
    (all but rank many when n <= d) each carry an error up to √ε·λmax ≈ 1.5e-8·scale (ε = float64
    precision); 1e-7·d·scale bounds their sum with a margin. Anything more negative is a bug.
    """
    return 1e-7 * max(d, 1) * scale + 1e-12


def metric_warnings(metrics, d: int, counts: dict[str, int], kid_subset_size: int) -> list[str]:
    """The FID/KID warnings of one evaluation: ``counts`` = images per side (samples, reference,
    data floor), d = the feature dimension at the finest resolution (the largest)."""
    n, label = min(counts.values()), ", ".join(f"{side} {c}" for side, c in counts.items())
    out = []
    if "fid" in metrics and (why := frechet_warning(n, d)):
        out.append(f"{why} ({label})")
    if "kid" in metrics and (why := kid_warning(min(kid_subset_size, n))):
        out.append(f"{why} ({label})")
    return out
