"""Inverse problems with exact Gaussian scores (no training): the projection inside the sampler,
SGM (J = 0) and WSGM scale by scale (J = 2), against the closed-form Gaussian conditional."""

import json

import numpy as np
import pytest
import torch
import yaml
import zarr

from wsgm import config as config_lib
from wsgm import inverse, specs
from wsgm import sde as sde_lib
from wsgm.cascade import cascade
from wsgm.data import gaussian
from wsgm.nets.exact import exact_models

from .helpers import REPO

SIZE = 16
SDE = {"name": "vp", "beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "eps": 1e-3}


def _stats(channels: int, equal: bool) -> dict:
    """Arbitrary normalization stats (the exact models use the same ones, so any are valid);
    unequal per-channel stds make the gray axis of colorization tilt in normalized coordinates."""
    def std(base, k):
        return [base] * k * channels if equal else [base * (1 + 0.3 * c) for c in range(k * channels)]
    out = {"low0": {"mean": [0.1] * channels, "std": std(1.3, 1)}}
    for k in (1, 2):
        out[f"low{k}"] = {"mean": [0.2 * k] * channels, "std": std(1.0 + 0.3 * k, 1)}
        out[f"detail{k}"] = {"mean": [0.05, -0.05, 0.0] * channels, "std": std(0.4 + 0.1 * k, 3)}
    return out


def _solve(tiny_config, task, truth, J, stats, sampler="em", steps=100):
    spectrum = gaussian.power_spectrum(SIZE, xi=8.0, eta=2.0)
    n, channels = truth.shape[:2]
    models = exact_models(spectrum, stats, J, "haar", sde_lib.build(SDE), channels)
    spec = specs.sample(tiny_config, "wsgm" if J else "sgm", steps)
    spec.update(sde=SDE, J=J, shape=[n, channels, SIZE, SIZE])
    spec["sampling"] = {**spec["sampling"], "sampler": sampler}
    index = np.zeros(n, dtype=int)
    bands = task.bands(task.measure(truth, index), index, J, "haar", stats)
    xs = cascade(models, stats, spec, n, torch.Generator().manual_seed(0), torch.device("cpu"), bands=bands)
    return xs[0].double(), spectrum


@pytest.mark.parametrize("J,sampler", [(0, "em"), (2, "em"), (0, "pc"), (2, "ancestral")])
def test_inpainting_matches_the_gaussian_conditional(tiny_config, J, sampler):
    """One 16x16 Gaussian field with a centred 8x8 hole, 400 completions: the known pixels are
    the truth's, the unknown ones scatter around the closed-form conditional mean with about the
    conditional variance. Measured (this test's settings): conditional-mean error 0.29 (SGM em),
    0.40 (WSGM em), 0.30 (SGM pc), 0.40 (WSGM ancestral) conditional stds, variance ratio 1.22 /
    1.31 / 1.08 / 1.21 (replacement is approximate); without the projection inside the loop
    (hard projection only) they are 1.01 and 2.2."""
    n = 400
    task = inverse.build({"kind": "inpaint", "mask": "center", "side": 8}, 1, SIZE, 0)
    spectrum = gaussian.power_spectrum(SIZE, xi=8.0, eta=2.0)
    one = torch.from_numpy(gaussian.sample(spectrum, 1, 1, np.random.default_rng(1))).double()
    truth = one.expand(n, 1, SIZE, SIZE).contiguous()
    x, _ = _solve(tiny_config, task, truth, J, _stats(1, equal=False), sampler, 100 if sampler == "em" else 30)
    known = task.mask(np.zeros(1, dtype=int))[0, 0].bool().reshape(-1).numpy()
    flat, t = x.reshape(n, -1).numpy(), one.reshape(-1).numpy()
    assert np.abs(flat[:, known] - t[known]).max() < 1e-5
    f = np.fft.fft(np.eye(SIZE), axis=0)
    F = np.kron(f, f)
    cov = np.real(np.linalg.inv(F) @ np.diag(spectrum.ravel()) @ F)
    K, U = known, ~known
    gain = cov[np.ix_(U, K)] @ np.linalg.inv(cov[np.ix_(K, K)])
    cond_mean, cond_var = gain @ t[K], np.diag(cov[np.ix_(U, U)] - gain @ cov[np.ix_(K, U)])
    mean_err = np.sqrt(((flat[:, U].mean(0) - cond_mean) ** 2 / cond_var).mean())
    var_ratio = (flat[:, U].var(0) / cond_var).mean()
    assert mean_err < 0.55, mean_err
    assert 0.85 < var_ratio < 1.5, var_ratio


@pytest.mark.parametrize("J,levels", [(0, 2), (2, 2), (1, 2), (2, 1)])
def test_super_resolution_matches_the_gaussian_conditional(tiny_config, J, levels):
    """Known: the level-2 (or 1) Haar low-pass of one field; 400 solutions. SGM projects onto the
    low-pass subspace, WSGM with J >= L starts from the real low-pass (no draw at the known
    scales), J < L projects inside the low-pass band. The solutions' mean must be the closed-form
    conditional mean and their variance the conditional one. Measured: mean error 0.085 / 0.047 /
    0.083 / 0.045 conditional stds (Monte Carlo: 0.05), variance ratio 1.02 / 1.00 / 1.03 / 1.00."""
    from wsgm import wavelets

    n = 400
    task = inverse.build({"kind": "superres", "levels": levels, "wavelet": "haar"}, 1, SIZE, 0)
    spectrum = gaussian.power_spectrum(SIZE, xi=8.0, eta=2.0)
    one = torch.from_numpy(gaussian.sample(spectrum, 1, 1, np.random.default_rng(1))).double()
    truth = one.expand(n, 1, SIZE, SIZE).contiguous()
    stats = _stats(1, equal=False)
    models = exact_models(spectrum, stats, J, "haar", sde_lib.build(SDE), 1)
    spec = specs.sample(tiny_config, "wsgm" if J else "sgm", 100)
    spec.update(sde=SDE, J=J)
    index = np.zeros(n, dtype=int)
    y = task.measure(truth, index)
    nfe = {}
    xs = cascade(models, stats, spec, n, torch.Generator().manual_seed(0), torch.device("cpu"), nfe=nfe,
                 bands=task.bands(y, index, J, "haar", stats))
    assert set(nfe) == set(range(min(J, levels)) if J >= levels else range(J + 1))
    x = xs[0].double()
    assert (task.measure(x, index) - y).abs().max() < 1e-5
    f = np.fft.fft(np.eye(SIZE), axis=0)
    F = np.kron(f, f)
    cov = np.real(np.linalg.inv(F) @ np.diag(spectrum.ravel()) @ F)
    eye = torch.eye(SIZE * SIZE, dtype=torch.float64).reshape(-1, 1, SIZE, SIZE)
    A = wavelets.wavedec2(eye, "haar", levels)[0].reshape(SIZE * SIZE, -1).T.numpy()  # orthonormal rows
    gain = cov @ A.T @ np.linalg.inv(A @ cov @ A.T)
    cond_mean, cond_var = gain @ (A @ one.reshape(-1).numpy()), np.diag(cov - gain @ A @ cov)
    flat = x.reshape(n, -1).numpy()
    mean_err = np.sqrt(((flat.mean(0) - cond_mean) ** 2 / cond_var).mean())
    assert mean_err < 0.15, mean_err
    assert 0.9 < (flat.var(0) / cond_var).mean() < 1.12


@pytest.mark.slow
@pytest.mark.parametrize("J", [0, 2])
def test_colorization_keeps_the_gray_and_samples_the_chroma(tiny_config, J):
    """3-channel field with i.i.d. channels: the gray component is the truth's exactly (also with
    unequal per-channel normalization, where the gray axis tilts); with equal stds the chroma is
    independent of the gray, so it must have the prior spectrum (2/3 of the dimensions) and be
    uncorrelated with the truth's chroma."""
    n = 300
    task = inverse.build({"kind": "colorize"}, 3, SIZE, 0)
    spectrum = gaussian.power_spectrum(SIZE, xi=8.0, eta=2.0)
    truth = torch.from_numpy(gaussian.sample(spectrum, n, 3, np.random.default_rng(2))).double()
    index = np.zeros(n, dtype=int)
    from wsgm.metrics.spectrum import power_spectrum, radial_average

    for equal in (False, True):
        x, _ = _solve(tiny_config, task, truth, J, _stats(3, equal))
        assert (task.measure(x, index) - task.measure(truth, index)).abs().max() < 1e-5
    chroma, true_chroma = x - task.known(x, index), truth - task.known(truth, index)
    ratio = power_spectrum(chroma.numpy())[1:] / (2 / 3 * radial_average(spectrum)[1:])
    assert np.allclose(ratio, 1.0, atol=0.08), ratio
    assert abs(float((chroma * true_chroma).mean() / (chroma.std() * true_chroma.std()))) < 0.05


def test_misaligned_masks_and_ode_samplers_are_refused():
    center = inverse.build({"kind": "inpaint", "mask": "center", "side": 4}, 1, SIZE, 0)
    center.check(1, "haar")  # hole rows/columns 6..9: on 2x2 blocks, across 4x4 ones
    with pytest.raises(inverse.InverseError, match="not constant on the 4x4 Haar blocks"):
        center.check(2, "haar")
    blocks = inverse.build({"kind": "inpaint", "mask": "blocks", "block": 2, "fraction": 0.5}, 1, SIZE, 0)
    blocks.check(1, "haar")
    with pytest.raises(inverse.InverseError, match="blocks of side 2"):
        blocks.check(2, "haar")
    inverse.build({"kind": "inpaint", "mask": "center", "side": 5}, 1, SIZE, 0).check(0, "db2")  # SGM: any
    with pytest.raises(inverse.InverseError, match="needs Haar"):
        blocks.check(1, "db2")
    with pytest.raises(inverse.InverseError, match="3-channel"):
        inverse.build({"kind": "colorize"}, 1, SIZE, 0)
    from wsgm.samplers import sample

    sde = sde_lib.build(SDE)
    with pytest.raises(ValueError, match="cannot project"):
        sample(lambda x, t: x, sde, (1, 1, 4, 4), 2, "pf_ode", project=lambda x, t: x)


def test_block_masks_are_seeded_per_image_and_shared_across_experiments():
    task = inverse.build({"kind": "inpaint", "mask": "blocks", "block": 4, "fraction": 0.5}, 1, SIZE, 7)
    a, b = task.mask(np.array([3, 4])), task.mask(np.array([4]))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    assert 0.2 < float(1 - a.mean()) < 0.8


def test_cli_solves_and_scores_an_inverse_problem(tmp_path, tiny_config, tiny_store):
    """`wsgm sample --inverse` then `wsgm evaluate --inverse` on the tiny config with briefly
    trained models: the store holds truth and measurement, the known part is exact, the record
    names the task; a mask across the Haar blocks of J = 2 is one clear error and no output."""
    from .helpers import train_tiny_models
    from wsgm.cli import main

    data, store = tiny_store
    models = [str(p) for p in train_tiny_models(tiny_config, store, tmp_path, steps=3)]
    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["experiments"]["wsgm"]["sampling"].update(n_samples=6, batch_size=4)
    raw["experiments"]["wsgm"]["metrics"] = ["spectrum", "marginal"]
    raw["inverse"] = {"block": 4, "fraction": 0.5}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    common = ["--config", str(config), "--experiment", "wsgm", "--steps", "3"]
    out, metrics, ref = tmp_path / "inv.zarr", tmp_path / "inv.json", tmp_path / "ref.npz"
    assert main(["sample", *common, "--inverse", "inpaint_blocks", "--store", str(store), "--models", *models,
                 "--truth", str(data), "--offset", "4", "--out", str(out)]) == 0
    g = zarr.open_group(str(out), mode="r")
    src = zarr.open_group(str(data), mode="r")
    f0 = src.attrs["split"]["floor"][0]  # measured images: held-out floor rows, from --offset on
    truth = src["x"][f0 + 4:f0 + 10]
    assert np.array_equal(g["truth"][:], truth)
    mask = inverse.build(specs.inverse_task(config_lib.load(config), "wsgm", "inpaint_blocks"), 1, 16, 0).mask(
        np.arange(4, 10)).numpy()
    assert np.array_equal(g["y"][:], truth * mask)
    assert np.abs((g["x0"][:] - truth) * mask).max() < 1e-5 and g.attrs["mode"] == "inverse"
    assert main(["reference", "--config", str(config), "--experiment", "wsgm", "--data", str(data),
                 "--out", str(ref)]) == 0
    assert main(["evaluate", *common, "--inverse", "inpaint_blocks", "--samples", str(out), "--data", str(data),
                 "--reference", str(ref), "--out", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    inv = result["inverse"]["metrics"]
    assert inv["known_max_abs_error"] < 1e-5 and 0.2 < inv["unknown_fraction"] < 0.8
    assert inv["unknown_mse"] > 0 and "spectrum_log_error" in result["metrics"]
    record = json.loads((tmp_path / "inv.json.prov.json").read_text())
    assert "inpaint_blocks" in json.dumps(record)
    raw["inverse"]["block"] = 2
    config.write_text(yaml.safe_dump(raw))
    bad = tmp_path / "bad.zarr"
    assert main(["sample", *common, "--inverse", "inpaint_blocks", "--store", str(store), "--models", *models,
                 "--truth", str(data), "--out", str(bad)]) == 2
    assert not bad.exists()


def test_config_refuses_colorization_of_gray_data_and_unknown_experiments(tiny_config):
    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    for inv, message in (({"tasks": ["colorize"]}, "colorize needs 3-channel images, experiment 'sgm' has 1"),
                         ({"experiments": ["nope"]}, "experiment 'nope' is not defined")):
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.check({**raw, "inverse": inv})
    cfg = config_lib.check({**raw, "inverse": {"hole": 0.3}})
    assert specs.inverse_task(cfg, "sgm", "inpaint_center") == {  # 16 px images, J up to 2: 8-px steps
        "name": "inpaint_center", "kind": "inpaint", "mask": "center", "side": 8}
    assert specs.inverse_task(cfg, "wsgm", "inpaint_blocks")["block"] == 4
    assert specs.inverse_task(cfg, "sgm", "superres") == {
        "name": "superres", "kind": "superres", "levels": 2, "wavelet": "haar"}
    assert specs.all_inverse(cfg) == [f"results/inverse/{e}/{t}_steps4.json" for e in ("sgm", "wsgm")
                                      for t in ("inpaint_center", "inpaint_blocks", "superres")]


def test_colorization_stage_writes_gray_measurement_and_keeps_it(tmp_path, tiny_config):
    """The sample stage on a 3-channel dataset (J = 2, briefly trained models): y is the gray
    image, the solutions have exactly that gray at the finest scale and its low-pass at x2."""
    from .helpers import train_tiny_models
    from wsgm.cascade import sample_to_store
    from wsgm.provenance import run_stage
    from wsgm.wavelets import lowpass
    from wsgm.decompose import decompose
    from wsgm.evaluate_inverse import errors

    cfg = json.loads(json.dumps(tiny_config))
    cfg["datasets"]["tiny"]["channels"] = 3
    data, store = tmp_path / "data.zarr", tmp_path / "haar_J2.zarr"
    dspec = specs.dataset(cfg, "tiny")
    run_stage("dataset", dspec, {}, {"data": (data, True)}, lambda t: gaussian.simulate(dspec, t["data"]))
    cspec = specs.decompose(cfg, "haar", 2)
    run_stage("decompose", cspec, {"data": data}, {"store": (store, True)},
              lambda t: decompose(cspec, data, t["store"]))
    models = train_tiny_models(cfg, store, tmp_path, steps=2)
    spec = specs.inverse(cfg, "wsgm", "colorize", 2)
    spec["sampling"] = {**spec["sampling"], "n_samples": 5, "batch_size": 4}
    sample_to_store(spec, store, models, tmp_path / "c.zarr", torch.device("cpu"), truth=data, offset=7)
    g = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    task = inverse.build(spec["inverse"], 3, 16, 0)
    truth, x = (torch.from_numpy(g[k][:]) for k in ("truth", "x0"))
    index = np.arange(7, 12)
    assert g["y"].shape == (5, 1, 16, 16) and torch.allclose(torch.from_numpy(g["y"][:]), task.measure(truth, index))
    assert errors(task, x, truth, index)["known_max_abs_error"] < 1e-5
    gray2 = task.measure(torch.from_numpy(g["x2"][:]), index)
    assert torch.allclose(gray2, lowpass(task.measure(truth, index), 2, "haar"), atol=2e-4)
