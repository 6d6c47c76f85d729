"""φ⁴ energy/magnetization metrics: closed forms, real vs real, and clearly-wrong samples."""

import json

import numpy as np
import pytest
import torch
import yaml
import zarr

from wsgm.data import split

from wsgm import config as config_lib
from wsgm import specs
from wsgm.cli import main
from wsgm.provenance import run_stage
from wsgm.data import phi4
from wsgm.metrics import phi4 as phi4_metrics
from wsgm.wavelets import lowpass

BETA = 0.9


def _fields(values, size=8, checker=False):
    """N×1×L×L fields: constant c (or the checkerboard ±c) for each c in ``values``."""
    sign = (-1.0) ** np.add.outer(np.arange(size), np.arange(size)) if checker else np.ones((size, size))
    return np.asarray(values, dtype=np.float64)[:, None, None, None] * sign


@pytest.mark.parametrize("k", [0, 1])
def test_observables_closed_form_at_every_resolution(k):
    c = np.array([0.5, -1.0, 2.0])
    # constant field c: no gradient energy, e = (c² − 1)², m = c; its normalized low-pass is c again
    x = lowpass(torch.from_numpy(_fields(c)), k, "haar").numpy()
    e, m = phi4_metrics.observables(x, BETA, k)
    assert np.allclose(e, (c**2 - 1) ** 2) and np.allclose(m, c)
    # checkerboard ±c: 2 bonds per site of (2c)², e = (β/2)·8c² + (c² − 1)², m = 0 ...
    e, m = phi4_metrics.observables(_fields(c, checker=True), BETA, 0)
    assert np.allclose(e, 4 * BETA * c**2 + (c**2 - 1) ** 2) and np.allclose(m, 0)
    # ... and its Haar low-pass is the zero field: e = 1 at k = 1
    low = lowpass(torch.from_numpy(_fields(c, checker=True)), 1, "haar").numpy()
    assert np.allclose(phi4_metrics.observables(low, BETA, 1)[0], 1)


def test_compare_closed_form():
    # data: constant fields at ±1 (e = 0, |m| = 1); samples: constant fields at ±c
    data = _fields(np.repeat([1.0, -1.0], 500))
    level = phi4_metrics.summarize(*phi4_metrics.observables(data, BETA, 0), BETA, 0)
    assert level["phi4_moments"] == pytest.approx([0, 0, 1, 2 / 3])
    same = phi4_metrics.compare(data, level)
    assert same["energy_w1"] == 0 and same["magnetization_w1"] == 0
    c = 1.5
    m = phi4_metrics.compare(_fields(np.repeat([c, -c], 500)), level)
    assert m["energy_w1"] == pytest.approx((c**2 - 1) ** 2, rel=1e-4)
    assert m["magnetization_w1"] == pytest.approx(c - 1, rel=1e-4)  # quantile interpolation
    assert m["abs_magnetization"] == pytest.approx(c) and m["abs_magnetization_data"] == pytest.approx(1)
    assert m["binder"] == pytest.approx(2 / 3) and m["energy_std"] == pytest.approx(0)


def _config(tmp_path, beta=BETA):
    cfg = {"seed": 0, "device": "cpu",
           "datasets": {"phi": {"kind": "phi4", "size": 8, "n": 1024, "beta": beta, "chains": 128, "chunk": 256,
                                "n_test": 512, "n_floor": 256}},
           "experiments": {"e": {"dataset": "phi", "J": 1, "net": {"channel_mult": [1]},
                                 "metrics": ["spectrum", "marginal", "phi4"],
                                 "sampling": {"n_samples": 256, "batch_size": 256}}}}
    path = tmp_path / f"c{beta}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _store(path, x):
    """A sample store holding x (N×1×L×L) and its Haar low-pass, as the cascade writes them (J = 1)."""
    x = torch.as_tensor(x, dtype=torch.float32)

    def work(t):
        g = zarr.open_group(str(t["samples"]), mode="w-")
        for k in range(2):
            g.create_array(f"x{k}", data=lowpass(x, k, "haar").numpy().copy())
        g.attrs.update({"J": 1, "wavelet": "haar", "cost": {}})

    run_stage("sample", {"stage": "sample", "note": "test samples"}, {}, {"samples": (path, True)}, work)
    return path


def _same_spectrum_gaussian(x, rng):
    """Gaussian fields with the per-frequency power of x (random phases): same spectrum, wrong law."""
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(0)
    noise = np.fft.fft2(rng.standard_normal(x.shape)) / np.sqrt(x.shape[-1] * x.shape[-2])  # white, unit power
    return np.fft.ifft2(noise * np.sqrt(power)).real


@pytest.mark.slow
def test_phi4_metric_through_reference_and_evaluate(tmp_path):
    cfg_path = _config(tmp_path)
    cfg = config_lib.load(cfg_path)
    data, ref = tmp_path / "data.zarr", tmp_path / "ref.npz"
    assert main(["dataset", "--config", str(cfg_path), "--dataset", "phi", "--out", str(data)]) == 0
    assert main(["reference", "--config", str(cfg_path), "--experiment", "e", "--data", str(data),
                 "--out", str(ref)]) == 0
    src = zarr.open_group(str(data), mode="r")
    real, floor = src["x"][:], src["x"][src.attrs["split"]["floor"][0]:]  # floor: the held-out floor rows
    from wsgm import reference as ref_lib
    assert all("phi4_m" in level for level in ref_lib.load(ref)[1].values())  # the data's ⟨m⟩, ⟨m²⟩, ⟨m⁴⟩
    rng = np.random.default_rng(0)
    other, _ = phi4.sample(0.5, 8, 256, 128, seed=1)  # disordered phase
    cases = {"real": floor, "gauss": _same_spectrum_gaussian(real[:256], rng),
             "beta0.5": other[:, None].numpy()}
    spec = specs.evaluate(cfg, "e", 4)
    out = {}
    for name, x in cases.items():
        samples = _store(tmp_path / f"{name}.zarr", x)
        path = tmp_path / f"{name}.json"
        assert main(["evaluate", "--spec", json.dumps(spec), "--samples", str(samples), "--data", str(data),
                     "--reference", str(ref), "--out", str(path)]) == 0
        out[name] = json.loads(path.read_text())["scales"]
    for k in "01":
        r, g, b = (out[n][k]["metrics"] for n in ("real", "gauss", "beta0.5"))
        # the held-out floor images as samples: equal to the floor, and small
        assert r["energy_w1"] == pytest.approx(r["energy_w1_data_floor"])
        assert r["magnetization_w1"] == pytest.approx(r["magnetization_w1_data_floor"])
        assert r["energy_w1"] < 0.1 * abs(r["energy_mean_data"]) + 0.02
        # a Gaussian field with the data's spectrum misses the energy law (φ⁴ potential), a field
        # at another coupling misses both
        assert g["energy_w1"] > 10 * r["energy_w1"], k  # measured (held-out real set): ~19x at k=1
        assert b["energy_w1"] > 10 * r["energy_w1"] and b["magnetization_w1"] > 5 * r["magnetization_w1"], k
        assert b["abs_magnetization"] < r["abs_magnetization_data"]
        assert g["spectrum_log_error"] < 0.2  # the Gaussian really has the data's spectrum
        # real images match the data's G(r) (measured: 0.017 at k = 0, 0.023 at k = 1); the Gaussian with the
        # spectrum of 256 real images roughly (measured 0.20, 0.26: the DC mode of 256 images is noisy at
        # criticality); the field at β = 0.5 (disordered) misses it and has a much shorter ξ₂
        assert r["two_point_error_max"] < 0.1 and g["two_point_error_max"] < 0.5
        assert b["two_point_error_max"] > 10 * r["two_point_error_max"]
        assert r["correlation_length"] == pytest.approx(r["correlation_length_data"], rel=0.2)
        assert r["susceptibility"] == pytest.approx(r["susceptibility_data"], rel=0.2)
        assert b["correlation_length"] < 0.5 * r["correlation_length_data"]
    real_json = json.loads((tmp_path / "real.json").read_text())
    assert {"energy_w1", "susceptibility", "correlation_length", "two_point_error_max"} <= set(real_json["definitions"])
    assert len(real_json["spectra"]["two_point_samples"]) == len(real_json["spectra"]["two_point_data"]) == 8 // 2 + 1


def test_beta_enters_the_specs_of_phi4_datasets_only(tmp_path):
    cfg = config_lib.load(_config(tmp_path))
    other = config_lib.load(_config(tmp_path, beta=1.1))
    assert specs.reference(cfg, "phi", "haar", 1)["physics"] == {"beta": BETA}
    assert specs.evaluate(cfg, "e", 4)["physics"] == {"beta": BETA}
    assert specs.evaluate(cfg, "e", 4) != specs.evaluate(other, "e", 4)
    assert specs.reference(cfg, "phi", "haar", 1) != specs.reference(other, "phi", "haar", 1)
    gauss = config_lib.load(specs.__file__.replace("wsgm/specs.py", "config/test.yaml"))
    assert "physics" not in specs.reference(gauss, "tiny", "haar", 2)
    assert "physics" not in specs.evaluate(gauss, "wsgm", 4)


def test_reference_with_another_beta_is_refused(tmp_path, capsys):
    cfg_path = _config(tmp_path)
    data, ref = tmp_path / "data.zarr", tmp_path / "ref.npz"
    x = _fields(np.repeat([1.0, -1.0], 16)).astype(np.float32)

    def work(t):
        g = zarr.open_group(str(t["data"]), mode="w-")
        g.create_array("x", data=x, chunks=(32, 1, 8, 8))
        g.attrs["split"] = split.layout(len(x), 8, 8)

    run_stage("dataset", {"stage": "dataset", "note": "constant fields"}, {}, {"data": (data, True)}, work)
    assert main(["reference", "--config", str(cfg_path), "--experiment", "e", "--data", str(data),
                 "--out", str(ref)]) == 0
    samples = _store(tmp_path / "s.zarr", x)
    spec = specs.evaluate(config_lib.load(_config(tmp_path, beta=1.1)), "e", 4)
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--spec", json.dumps(spec), "--samples", str(samples), "--data", str(data),
               "--reference", str(ref), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert len(err) == 1 and "β=0.9" in err[0] and "β=1.1" in err[0] and "Fix:" in err[0]


# --- set-level observables: ⟨m⟩, χ₂, G(r), ξ₂, Binder (closed forms, bootstrap coverage) ---

def _level(data, k=0, beta=BETA):
    """The reference level of ``data`` (N×1×L×L level-k low-passes) as ``wsgm reference`` stores it."""
    x = np.asarray(data, dtype=np.float64)
    power2d = (np.abs(np.fft.fft2(x)) ** 2).sum(1).mean(0) / (x.shape[-1] * x.shape[-2] * x.shape[1])
    return phi4_metrics.summarize(*phi4_metrics.observables(x, beta, k), beta, k) | {"power2d": power2d}


def _gaussian(n, size=16, xi=3.0, eta=2.0, seed=0):
    from wsgm.data import gaussian
    p = gaussian.power_spectrum(size, xi, eta)
    return gaussian.sample(p, n, 1, np.random.default_rng(seed)).astype(np.float64), p


def _exact(p):
    """χ₂, ξ₂ and G(r) (r = 0..L/2, axes averaged) of the zero-mean stationary field with spectrum p."""
    size = p.shape[0]
    g = np.fft.ifft2(p).real
    f = 0.5 * (p[1, 0] + p[0, 1])
    xi = np.sqrt(p[0, 0] / f - 1) / (2 * np.sin(np.pi / size))
    return p[0, 0], xi, 0.5 * (g[: size // 2 + 1, 0] + g[0, : size // 2 + 1])


def _bootstrap(x, level, names, b=200, seed=0):
    """95 % percentile intervals of the phi4 metrics ``names`` over b resamples of the rows of x."""
    from wsgm.metrics.physics import PHYSICS
    rng = np.random.default_rng(seed)
    vals = np.array([[PHYSICS["phi4"](x[rng.integers(0, len(x), len(x))], level)[0][n] for n in names]
                     for _ in range(b)])
    return dict(zip(names, np.percentile(vals, [2.5, 97.5], axis=0).T))


def test_white_noise_closed_forms():
    s, size, n = 0.7, 16, 4000
    x = s * np.random.default_rng(1).standard_normal((n, 1, size, size))
    m, curves = phi4_metrics.score(x, _level(x))
    # G(r) = s² δ_r0, χ₂ = V Var(m) = s², ξ₂ = 0, Gaussian m: U = 0, ⟨m⟩ = 0
    g = np.array(curves["two_point_samples"])
    assert g.shape == (size // 2 + 1,)
    assert g[0] == pytest.approx(s**2, rel=0.01) and np.abs(g[1:]).max() < 0.01 * s**2
    assert m["susceptibility"] == pytest.approx(s**2, rel=5 * np.sqrt(2 / n))
    # χ₂/F − 1 has mean 0 and std ≈ sqrt(2.5/N) (χ₂: 2s⁴/N, F over two modes: s⁴/(2N)); ξ₂ is its root
    assert m["correlation_length"] < np.sqrt(5 * np.sqrt(2.5 / n)) / (2 * np.sin(np.pi / size))
    assert abs(m["binder"]) < 5 * np.sqrt(8 / 3 / n)  # U of Gaussian m: std ≈ sqrt(8/(3N))
    assert abs(m["magnetization_mean"]) < 5 * s / size / np.sqrt(n)


def test_gaussian_field_closed_forms():
    x, p = _gaussian(4000)
    chi, xi, g_exact = _exact(p)
    assert xi == pytest.approx(3.0 * (2 * np.pi / 16) / (2 * np.sin(np.pi / 16)))  # P ∝ 1/(ξ⁻² + |w|²)
    m, curves = phi4_metrics.score(x, _level(x))
    assert m["susceptibility"] == pytest.approx(chi, rel=5 * np.sqrt(2 / 4000))
    assert m["correlation_length"] == pytest.approx(xi, rel=0.1)
    assert np.abs(np.array(curves["two_point_samples"]) - g_exact).max() < 0.05 * g_exact[0]
    # the closed forms themselves, from the exact spectrum
    from wsgm.metrics import correlations
    obs, g = correlations.observables(correlations.from_full(p), 0.0)
    assert obs["susceptibility"] == pytest.approx(chi) and obs["correlation_length"] == pytest.approx(xi)
    assert g == pytest.approx(g_exact) and g.sum() + g[1:-1].sum() > 0


def test_bootstrap_intervals_cover_the_exact_values():
    """A bootstrap over the rows (as evaluate does) covers the exact χ₂, ξ₂, ⟨m⟩ about 95 % of the time."""
    _, p = _gaussian(1, size=8, xi=2.0)
    chi, xi, _ = _exact(p)
    truth = {"susceptibility": chi, "correlation_length": xi, "magnetization_mean": 0.0}
    level = _level(_gaussian(2000, size=8, xi=2.0, seed=99)[0])
    hits = {name: 0 for name in truth}
    reps = 20
    for rep in range(reps):
        x, _ = _gaussian(256, size=8, xi=2.0, seed=rep + 1)
        ci = _bootstrap(x, level, list(truth), b=60, seed=rep)  # b = 60 keeps the test under ~5 s
        for name, v in truth.items():
            hits[name] += ci[name][0] <= v <= ci[name][1]
    assert all(h >= 16 for h in hits.values()), hits  # Bin(20, 0.95): P(≤ 15) ≈ 0.3 %


def test_z2_broken_samples_show_it_and_ordered_fields():
    data, _ = _gaussian(1000)
    level = _level(data)
    c = 0.5
    m = phi4_metrics.compare(data + c, level)
    assert m["magnetization_mean"] == pytest.approx(c + data.mean())
    assert abs(m["magnetization_mean_data"]) < 0.05
    assert m["susceptibility"] == pytest.approx(m["susceptibility_data"])  # a shift is no fluctuation
    # ordered (Ising-like) fields: ±1 plus small noise, U ≈ 2/3, χ₂ ≈ V, G(r) ≈ 1 at every r
    rng = np.random.default_rng(3)
    sign = rng.choice([-1.0, 1.0], 2000)[:, None, None, None]
    ordered = sign + 0.05 * rng.standard_normal((2000, 1, 8, 8))
    m, curves = phi4_metrics.score(ordered, level | {"power2d": level["power2d"][:8, :8]})
    assert m["binder"] == pytest.approx(2 / 3, abs=0.01)
    assert m["susceptibility"] == pytest.approx(64, rel=0.1)
    assert np.array(curves["two_point_samples"]) == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize("k", [0, 1])
def test_data_against_itself_equals_the_data_values(k):
    x, _ = _gaussian(500)
    low = lowpass(torch.from_numpy(x), k, "haar").numpy()
    m, curves = phi4_metrics.score(low, _level(low, k))
    names = [n[: -len("_data")] for n in m if n.endswith("_data")]
    assert {"magnetization_mean", "susceptibility", "correlation_length", "binder", "abs_magnetization"} <= set(names)
    for n in names:
        assert m[n] == pytest.approx(m[f"{n}_data"], rel=1e-9, abs=1e-12), n
    assert m["two_point_error_max"] < 1e-9
    assert curves["two_point_samples"] == pytest.approx(curves["two_point_data"])
    # V = sites at resolution k: χ₂ of the normalized low-pass 2^-k x_k
    assert m["susceptibility"] == pytest.approx(low[0].size * np.var(low.mean((1, 2, 3)) / 2**k))


def test_reference_without_phi4_m_still_compares():
    data, _ = _gaussian(500)
    level = _level(data)
    old = {n: v for n, v in level.items() if n != "phi4_m"}  # a reference file written before phi4_m
    m = phi4_metrics.compare(data, old)
    assert m["magnetization_mean_data"] == pytest.approx(data.mean(), abs=1e-3)
    assert m["susceptibility_data"] == pytest.approx(m["susceptibility"], rel=0.01)
