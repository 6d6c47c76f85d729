"""Bootstrap intervals: the fast draws are the metrics recomputed on resamples, intervals cover a
known answer at about their level, and "reaches the floor" separates a right law from a wrong one."""

import numpy as np
import pytest
import torch

from wsgm.data.gaussian import power_spectrum as field_spectrum
from wsgm.data.gaussian import sample as field_sample
from wsgm.evaluate import score, with_intervals
from wsgm.metrics import fid as fid_lib
from wsgm.metrics import intervals
from wsgm.metrics.marginal import quantiles
from wsgm.metrics.physics import DRAWS, PHYSICS
from wsgm.metrics.spectrum import power_spectrum

L = 8
SPECTRUM = field_spectrum(L, 4.0, 2.0)


def _fields(n, seed, scale=1.0):
    return scale * field_sample(SPECTRUM, n, 1, np.random.default_rng(seed))


def _level(x):
    return {"power": power_spectrum(x), "quantiles": quantiles(x), "exact2d": SPECTRUM}


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_fast_draws_equal_the_metric_on_each_resample(name):
    x, ref = _fields(40, 0), _fields(400, 1)
    level = _level(ref)
    idx = intervals.indices(len(x), 6, seed=3)
    fast = DRAWS[name](x, level, intervals.counts(idx, len(x)))
    slow = intervals.metric_draws(lambda xb: PHYSICS[name](xb, level)[0], x, idx, list(fast))
    # (the metric functions take float32 means: agreement to float32 rounding)
    assert fast and all(np.allclose(fast[m], slow[m], rtol=1e-6, atol=1e-7) for m in fast)


@pytest.mark.parametrize("n,d", [(60, 5), (6, 9)])  # the batched d ≤ n path and the n×n path
def test_fid_draws_equal_the_frechet_distance_of_each_resample(n, d):
    rng = np.random.default_rng(0)
    feats = torch.from_numpy(rng.normal(size=(n, d)))
    ref = rng.normal(0.3, 1.2, size=(200, d))
    stats = {"mu": ref.mean(0), "sigma": np.cov(ref, rowvar=False)}
    idx = intervals.indices(n, 4, seed=1)
    got = intervals.fid_draws(feats, stats["mu"], stats["sigma"], idx)
    want = [fid_lib.closed_form_frechet(feats[r].numpy().mean(0), np.cov(feats[r].numpy(), rowvar=False),
                                        stats["mu"], stats["sigma"]) for r in idx]
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9)


def test_kid_draws_at_the_identity_resample_are_the_unbiased_mmd():
    rng = np.random.default_rng(0)
    x, r = torch.from_numpy(rng.normal(size=(30, 4))), torch.from_numpy(rng.normal(0.5, 1, size=(50, 4)))

    def k(a, b):
        return (a @ b.T / 4 + 1) ** 3

    def offdiag_mean(m):
        return float((m.sum() - torch.trace(m)) / (len(m) * (len(m) - 1)))

    want = offdiag_mean(k(x, x)) + offdiag_mean(k(r, r)) - 2 * float(k(x, r).mean())
    got = intervals.kid_draws(x, r, np.arange(30)[None])
    assert got[0] == pytest.approx(want, rel=1e-10)


def test_interval_covers_a_known_answer_at_about_its_level():
    """Pixel std of a Gaussian field whose pixel variance is exactly 1 (the simulated spectrum has
    mean 1): over 60 independent data sets of 48 fields, the 95% interval holds 1 in ≥ 85% (an
    interval that ignored the sampling noise would almost never hold it)."""
    level = _level(_fields(64, 99))
    spec = {"metrics": ["marginal"]}
    hits = widths = 0
    for rep in range(60):
        x = _fields(48, 1000 + rep)
        metrics, _, draws = score(x, level, spec, "cpu", 0, intervals.indices(len(x), 200, seed=rep))
        lo, hi = intervals.interval(draws["std"])
        hits += lo <= 1.0 <= hi
        widths += hi - lo
    assert 51 <= hits <= 60, hits
    assert 0.01 < widths / 60 < 0.5


def test_reaches_floor_is_decided_from_the_intervals():
    """Samples from the data's law reach the held-out floor; samples 50% too large do not (the pixel law of
    smooth 8×8 fields is noisy: W1 needs a large error to be significant at n = 128)."""
    ref = _fields(512, 0)
    level = _level(ref)
    spec = {"metrics": ["spectrum", "marginal"]}
    floor_x = _fields(128, 1)
    floor, _, floor_draws = score(floor_x, level, spec, "cpu", 0, intervals.indices(128, 200, seed=5))
    decided = {}
    for name, x in (("right", _fields(128, 2)), ("wrong", _fields(128, 3, scale=1.5))):
        metrics, _, draws = score(x, level, spec, "cpu", 0, intervals.indices(128, 200, seed=6))
        decided[name] = with_intervals(metrics, draws, floor, floor_draws, 0.95)
        lo, hi = metrics["spectrum_log_error_excess_ci"]
        assert lo <= metrics["spectrum_log_error"] - metrics["spectrum_log_error_data_floor"] <= hi
    assert decided["right"]["reaches_floor"]["marginal_w1"]
    assert decided["right"]["reaches_floor"]["spectrum_log_error"]
    assert not decided["wrong"]["reaches_floor"]["marginal_w1"]
    assert not decided["wrong"]["reaches_floor"]["spectrum_log_error"]
    assert decided["right"]["agrees_with_data"]["std"] and not decided["wrong"]["agrees_with_data"]["std"]


def test_difference_interval_of_shifted_draws_is_the_shift():
    a = np.random.default_rng(0).normal(size=200)
    assert intervals.difference_interval(a + 1.0, a) == pytest.approx([1.0, 1.0])
    assert intervals.interval(np.r_[np.arange(101.0), np.nan]) == pytest.approx([2.5, 97.5])
