"""Reference statistics, exact Gaussian metrics, evaluation at every resolution, and the report."""

import json

import numpy as np
import pytest
import torch
import zarr

from wsgm import specs
from wsgm.cli import main
from wsgm.provenance import run_stage
from wsgm.data import gaussian
from wsgm.metrics.gaussian import empirical_spectrum2d, kl_per_dim, lowpass_spectrum
from wsgm.reference import compute
from wsgm.wavelets import lowpass
from wsgm.metrics.spectrum import radial_average, shell_counts, spectrum_errors


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_exact_lowpass_spectrum_matches_the_empirical_one(wavelet):
    p = gaussian.power_spectrum(16, xi=8.0, eta=2.0)
    x = torch.from_numpy(gaussian.sample(p, 4000, 1, np.random.default_rng(0))).double()
    for k in (1, 2):
        emp = empirical_spectrum2d(lowpass(x, k, wavelet).numpy())
        exact = lowpass_spectrum(p, k, wavelet)
        # variance preserved by the orthonormal low-pass up to the detail energy; per-frequency χ² noise
        assert np.allclose(radial_average(emp), radial_average(exact), rtol=0.08), (wavelet, k)
        assert kl_per_dim(emp, exact) < 2e-3
    # a spectrum off by a factor 1.5 everywhere: ½(1/1.5 - 1 + log 1.5) per dimension
    assert kl_per_dim(empirical_spectrum2d(x.numpy()), 1.5 * p) == pytest.approx(
        0.5 * (1 / 1.5 - 1 + np.log(1.5)), rel=0.05)


def test_kl_per_dim_closed_form():
    p = np.full((4, 4), 2.0)
    assert kl_per_dim(p, p) == 0
    assert kl_per_dim(2 * p, p) == pytest.approx(0.5 * (2 - 1 - np.log(2)))


@pytest.fixture
def reference(tmp_path, tiny_config, tiny_store):
    data, _ = tiny_store
    spec = specs.reference(tiny_config, "tiny", "haar", 2)
    out = tmp_path / "ref.npz"
    run_stage("reference", spec, {"data": data}, {"reference": (out, False)},
              lambda t: compute(spec, data, t["reference"]))
    return out


def _samples(path, data, J=2, k_bad=None):
    """A 'sample' store holding real images and their low-passes (x_k exactly as the cascade writes)."""
    src = zarr.open_group(str(data), mode="r")
    f0 = src.attrs["split"]["floor"][0]  # the held-out floor images: the data floor's own set
    x = torch.from_numpy(src["x"][f0:f0 + 32])

    def work(t):
        g = zarr.open_group(str(t["samples"]), mode="w-")
        for k in range(J + 1):
            arr = lowpass(x, k, "haar").numpy().copy()
            if k == k_bad:
                arr[3] = np.nan
            g.create_array(f"x{k}", data=arr)
        g.attrs.update({"J": J, "wavelet": "haar", "cost": {"nfe_per_sample": 3, "steps_per_scale": [1, 1, 1]}})

    run_stage("sample", {"stage": "sample", "note": "real images as samples"}, {"data": data},
              {"samples": (path, True)}, work)
    return path


def test_evaluate_scores_every_resolution(tmp_path, tiny_config, tiny_store, reference):
    data, _ = tiny_store
    samples = _samples(tmp_path / "s.zarr", data)
    out = tmp_path / "m.json"
    spec = specs.evaluate(tiny_config, "wsgm", 4)
    rc = main(["evaluate", "--spec", json.dumps(spec), "--samples", str(samples), "--data", str(data),
               "--reference", str(reference), "--out", str(out)])
    assert rc == 0
    m = json.loads(out.read_text())
    assert m["extractor"]["name"] == "wsgm-fields" and len(m["extractor"]["definition_sha256"]) == 64
    assert set(m["scales"]) == {"0", "1", "2"}
    assert [m["scales"][k]["size"] for k in "012"] == [16, 8, 4]
    for k in "012":
        s = m["scales"][k]["metrics"]
        for key in ("fid", "kid", "kl_exact_per_dim", "spectrum_log_error", "marginal_w1",
                    "spectrum_log_error_exact", "fid_data_floor", "spectrum_log_error_unweighted",
                    "spectrum_log_error_unweighted_data_floor"):
            assert key in s, (k, key)
        # the "samples" are the held-out floor images: exactly the data floor, which they reach
        assert s["fid"] == pytest.approx(s["fid_data_floor"])
        for key in ("fid", "kid", "spectrum_log_error", "marginal_w1"):
            lo, hi = s[f"{key}_ci"]
            assert lo <= s[key] <= hi and lo < hi, (k, key)
            assert m["scales"][k]["reaches_floor"][key], (k, key)
            assert len(m["scales"][k]["bootstrap"][key]) == tiny_config["intervals"]["bootstrap"]
        assert len(s["spectrum_rel_error_shells"]) == (16 >> int(k)) // 2 + 1
    assert m["metrics"] == m["scales"]["0"]["metrics"]
    # the texture space at every side it takes (16, 8; not 4), named beside the field features
    assert "fid_texture" in m["scales"]["0"]["metrics"] and "fid_texture" in m["scales"]["1"]["metrics"]
    assert "fid_texture" not in m["scales"]["2"]["metrics"]
    assert m["extractors"] == {"fid": "wsgm-fields", "kid": "wsgm-fields", "fid_texture": "portilla-simoncelli"}
    assert m["held_out"]["floor"]["rows"][0] == zarr.open_group(str(data), mode="r").attrs["split"]["floor"][0]
    assert "lower end" in m["intervals"]["rule"]


def test_nan_samples_are_a_one_line_error(tmp_path, tiny_config, tiny_store, reference, capsys):
    data, _ = tiny_store
    samples = _samples(tmp_path / "s.zarr", data, k_bad=1)
    out = tmp_path / "m.json"
    spec = specs.evaluate(tiny_config, "wsgm", 4)
    rc = main(["evaluate", "--spec", json.dumps(spec), "--samples", str(samples), "--data", str(data),
               "--reference", str(reference), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert len(err) == 1 and "1 of 32 samples at resolution x1 contain NaN/inf" in err[0] and "Fix:" in err[0]


def test_missing_inception_weights_stops_evaluation_cleanly(tmp_path, tiny_config, tiny_store, reference, capsys):
    data, _ = tiny_store
    samples = _samples(tmp_path / "s.zarr", data)
    tiny_config["fid"] |= {"extractor": "inception-v3-compat", "weights": str(tmp_path / "no.pth")}
    spec = specs.evaluate(tiny_config, "wsgm", 4)
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--spec", json.dumps(spec), "--samples", str(samples), "--data", str(data),
               "--reference", str(reference), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists() and len(err) == 1
    assert "Inception weights not found" in err[0] and "fetch_inception" in err[0]


def test_spectrum_error_weights_shells_by_their_modes_and_includes_dc():
    # a 4×4 image: shells 0, 1, 2 hold 1, 8 and 6 Fourier modes (radius 2√2 is beyond L/2)
    assert shell_counts(4).tolist() == [1, 8, 6]
    ref = np.array([2.0, 1.0, 0.5])
    dc_off = spectrum_errors(ref * np.array([np.e, 1, 1]), ref)  # only the DC shell (the mean) is off
    assert dc_off["spectrum_log_error"] == pytest.approx(1 / 15)
    assert dc_off["spectrum_log_error_unweighted"] == pytest.approx(1 / 3)
    assert dc_off["spectrum_rel_error_max"] == pytest.approx(np.e - 1)
    high_off = spectrum_errors(ref * np.array([1, 1, np.e]), ref, "_exact", size=4)
    assert high_off["spectrum_log_error_exact"] == pytest.approx(6 / 15)
    assert high_off["spectrum_log_error_unweighted_exact"] == pytest.approx(1 / 3)
    assert shell_counts(16).sum() == np.sum(np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(16) * 16,
                                                                         np.fft.fftfreq(16) * 16))) <= 8)
    with pytest.raises(ValueError, match="shells"):
        spectrum_errors(ref, ref, size=8)
