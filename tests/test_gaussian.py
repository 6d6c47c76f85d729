import numpy as np

from wsgm.data import gaussian
from wsgm.metrics.spectrum import power_spectrum, radial_average


def test_spectrum_normalized_and_power_law():
    p = gaussian.power_spectrum(64, xi=1000.0, eta=2.0)
    assert np.isclose(p.mean(), 1.0)
    # far above 1/xi the spectrum is a power law |w|^-eta
    w = 2 * np.pi * np.fft.fftfreq(64)
    assert np.isclose(p[0, 4] / p[0, 8], (w[8] / w[4]) ** 2, rtol=1e-3)


def test_empirical_spectrum_matches_within_sampling_error():
    spectrum = gaussian.power_spectrum(32, xi=8.0, eta=2.0)
    rng = np.random.default_rng(0)
    x = gaussian.sample(spectrum, 2000, 1, rng)
    emp = power_spectrum(x)[1:]
    exact = radial_average(spectrum)[1:]
    # each shell averages >= 4 modes x 2000 images of a chi-square(1 or 2): relative std <= 1/sqrt(4000)
    assert np.max(np.abs(emp / exact - 1)) < 5 / np.sqrt(4000)
    assert abs(x.var() - 1) < 0.05


def test_simulation_is_seeded(tmp_path, tiny_config):
    from wsgm import specs

    spec = specs.dataset(tiny_config, "tiny")
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    gaussian.simulate(spec, a)
    gaussian.simulate(spec, b)
    import zarr

    xa, xb = zarr.open_group(str(a))["x"][:], zarr.open_group(str(b))["x"][:]
    # n = 128 training images, then n_test + n_floor held-out ones (tiny_config: the defaults)
    held_out = tiny_config["datasets"]["tiny"]["n_test"] + tiny_config["datasets"]["tiny"]["n_floor"]
    assert xa.shape == (128 + held_out, 1, 16, 16) and np.array_equal(xa, xb)
    assert zarr.open_group(str(a)).attrs["split"] == {"train": [0, 128], "reference": [128, 128 + held_out - tiny_config["datasets"]["tiny"]["n_floor"]],
                                                      "floor": [128 + held_out - tiny_config["datasets"]["tiny"]["n_floor"], 128 + held_out]}
    spec["seed"] = 1
    gaussian.simulate(spec, tmp_path / "c.zarr")
    assert not np.array_equal(xa, zarr.open_group(str(tmp_path / "c.zarr"))["x"][:])
