"""FID/KID through torch-fidelity against closed forms, and the weights contract."""

import numpy as np
import pytest
import torch

from wsgm.metrics import fid as fid_lib

FID = {"extractor": "wsgm-identity", "kid_subsets": 20, "kid_subset_size": 200, "range": [-1, 1],
       "weights": "", "url": "https://example.invalid/w.pth", "sha256": ""}


def _stats(x):
    return fid_lib.statistics(fid_lib.features(x, FID))


def test_identical_sets_have_zero_fid_and_kid():
    x = np.random.default_rng(0).standard_normal((300, 1, 2, 3)).astype(np.float32)
    s = _stats(x)
    assert abs(fid_lib.frechet(s, s)) < 1e-8


def test_kid_is_unbiased_near_zero_for_one_law_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = (fid_lib.features(rng.standard_normal((400, 1, 1, 4)).astype(np.float32), FID) for _ in range(2))
    same = fid_lib.kid(a, b, FID, 0)
    shifted = fid_lib.kid(a, b + 0.5, FID, 0)
    assert same["kid_subset_size"] == 200
    assert abs(same["kid"]) < 0.05 * shifted["kid"]


def test_shifted_gaussian_features_give_the_closed_form_frechet_distance():
    rng = np.random.default_rng(1)
    d, n = 6, 4000
    a = rng.standard_normal((d, d))
    cov1 = a @ a.T / d + 0.1 * np.eye(d)
    cov2 = np.diag(np.linspace(0.5, 2.0, d))
    mu1, mu2 = np.zeros(d), np.full(d, 0.7)
    x1 = rng.multivariate_normal(mu1, cov1, n).reshape(n, 1, 1, d).astype(np.float32)
    x2 = rng.multivariate_normal(mu2, cov2, n).reshape(n, 1, 1, d).astype(np.float32)
    s1, s2 = _stats(x1), _stats(x2)
    computed = fid_lib.frechet(s1, s2)
    # exact on the empirical moments (torch-fidelity's eigenvalue route vs our symmetric sqrtm) ...
    assert computed == pytest.approx(fid_lib.closed_form_frechet(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"]),
                                     rel=1e-6)
    # ... and close to the population value (sampling error of 4000 draws)
    truth = fid_lib.closed_form_frechet(mu1, cov1, mu2, cov2)
    assert truth > 2.5 and computed == pytest.approx(truth, rel=0.05)
    # the pure shift part: equal covariances give exactly |Δμ|²
    s_shift = {"mu": s1["mu"] + 0.7, "sigma": s1["sigma"]}
    assert fid_lib.frechet(s1, s_shift) == pytest.approx(d * 0.49, rel=1e-6)


def test_field_extractor_separates_spectra_and_is_multiscale():
    from wsgm.data import gaussian

    rng = np.random.default_rng(0)
    fid = {**FID, "extractor": "wsgm-fields"}
    p_a = gaussian.power_spectrum(16, xi=16.0, eta=2.0)
    p_b = gaussian.power_spectrum(16, xi=16.0, eta=1.5)
    a1, a2 = (gaussian.sample(p_a, 400, 1, rng) for _ in range(2))
    b = gaussian.sample(p_b, 400, 1, rng)
    fa1, fa2, fb = (fid_lib.features(x, fid) for x in (a1, a2, b))
    # 8 shells + 3 Haar levels (16→8→4→2) × 3 orientations × 2 + 4 moments
    assert fa1.shape == (400, 8 + 18 + 4)
    same = fid_lib.frechet(fid_lib.statistics(fa1), fid_lib.statistics(fa2))
    other = fid_lib.frechet(fid_lib.statistics(fa1), fid_lib.statistics(fb))
    assert other > 10 * same
    ident = fid_lib.extractor_identity(fid)
    assert ident["name"] == "wsgm-fields" and len(ident["definition_sha256"]) == 64


def test_missing_inception_weights_is_one_clear_error(tmp_path):
    fid = {**FID, "extractor": "inception-v3-compat", "weights": str(tmp_path / "nope.pth")}
    with pytest.raises(fid_lib.WeightsError, match="Inception weights not found at .*nope.pth.*Fix:"):
        fid_lib.features(np.zeros((2, 3, 8, 8), np.float32), fid)


def test_wrong_inception_weights_checksum_is_an_error(tmp_path):
    bad = tmp_path / "w.pth"
    torch.save({}, bad)
    fid = {**FID, "extractor": "inception-v3-compat", "weights": str(bad), "sha256": "0" * 64}
    with pytest.raises(fid_lib.WeightsError, match="expected 0000"):
        fid_lib.extractor_identity(fid)


def _images_spanning_the_range(n=64, size=16, seed=0):
    """Images in [−1, 1] with smooth structure and saturated regions (as natural images have)."""
    from wsgm.data import gaussian

    x = gaussian.sample(gaussian.power_spectrum(size, xi=float(size), eta=2.0), n, 1, np.random.default_rng(seed))
    x = x / np.abs(x).max(axis=(1, 2, 3), keepdims=True)  # each image spans [−1, 1]
    return torch.from_numpy(np.clip(1.5 * x, -1, 1)).to(torch.float32)


@pytest.mark.parametrize("k", [1, 2])
def test_inception_input_at_resolution_k_does_not_clip(k):
    from wsgm import wavelets

    x = _images_spanning_the_range()
    low = wavelets.lowpass(x, k, "haar")
    assert float(low.abs().max()) > 1.2  # x_k exceeds [−1, 1]: unscaled, it would clip
    b = fid_lib.inception_input(low, k, [-1, 1])
    scaled = (low / 2**k + 1) / 2 * 255  # where each value lands before rounding
    clipped = ((scaled < -0.5) | (scaled > 255.5)).float().mean()
    assert float(clipped) == 0.0 and b.dtype == torch.uint8 and b.shape[1] == 3
    old = ((low + 1) / 2 * 255).round()  # the old input: x_k itself
    assert float(((old < 0) | (old > 255)).float().mean()) > 0.01


def test_inception_features_tell_brightness_above_one_apart_at_k1(monkeypatch):
    """Two sets of x_1 that differ only where the value exceeds 1 get different Inception inputs."""
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, xb):
            seen.append(xb.clone())
            return (xb.reshape(len(xb), -1).float(),)

    monkeypatch.setattr(fid_lib, "check_weights", lambda fid: ("w.pth", "0" * 64))
    monkeypatch.setattr(fid_lib, "_extractor", lambda *a: Recorder())
    fid = {**FID, "extractor": fid_lib.INCEPTION}
    a = torch.full((4, 1, 8, 8), 0.5)
    a[:, :, :4] = 1.2
    b = a.clone()
    b[:, :, :4] = 1.8  # brighter, only above 1
    fa, fb = (fid_lib.features(x, fid, level=1) for x in (a, b))
    assert not torch.equal(fa, fb)
    assert torch.equal(fid_lib.features(a, fid, level=1), fa)
    assert int(seen[0].max()) < 255  # nothing saturates
    ident = fid_lib.extractor_identity(fid)
    assert ident["input"] == fid_lib.INCEPTION_INPUT and "2^k" in ident["input"]


def test_own_extractors_see_x_k_unscaled():
    x = torch.randn(3, 1, 4, 4) * 2
    assert torch.equal(fid_lib.features(x, FID, level=2).float(), x.reshape(3, -1))
