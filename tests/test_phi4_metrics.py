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
    assert "energy_w1" in json.loads((tmp_path / "real.json").read_text())["definitions"]


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
