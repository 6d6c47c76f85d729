"""wsgm.gao: exact W2 of circulant Gaussians, the step search, the power-law fit, the section end to end."""

import json
import math

import numpy as np
import pytest
import yaml

from wsgm import gao, paper, theory
from wsgm.cli import main


def _sqrtm(a):
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _bures_w2(a, b):  # W2 of N(0, a), N(0, b) for any covariances (closed form)
    ra = _sqrtm(a)
    return math.sqrt(max(np.trace(a) + np.trace(b) - 2 * np.trace(_sqrtm(ra @ b @ ra)), 0.0))


def test_w2_of_one_dimensional_gaussians_is_the_std_difference():
    assert gao.w2_stationary([4.0], [1.0]) == pytest.approx(1.0)
    assert gao.w2_stationary([0.25, 9.0], [1.0, 4.0]) == pytest.approx(math.sqrt(0.5**2 + 1.0))
    assert gao.w2_stationary([1.0, np.inf], [1.0, 1.0]) == math.inf


def test_w2_of_circulant_gaussians_matches_the_dense_closed_form():
    n = 8
    w = 2 * np.pi * np.fft.fftfreq(n)
    p, q = 1 / (0.1 + w**2), 1 / (0.3 + np.abs(w) ** 1.5)  # even symbols: real circulant covariances

    def circulant(s):
        col = np.fft.ifft(s).real
        return np.array([[col[(i - j) % n] for j in range(n)] for i in range(n)])

    assert gao.w2_stationary(p, q) == pytest.approx(_bures_w2(circulant(p), circulant(q)), rel=1e-9)


@pytest.mark.parametrize("J", [0, 2])
def test_w2_is_zero_for_the_exact_continuous_law(J):
    sde = paper.build_sde({"name": "vp", "T": 1.0, "eps": 0.0, "beta_min": 0.1, "beta_max": 20.0})
    prob = gao.Problem(16, 8.0, 2, J, sde)
    exact = theory.sampled_law(prob.models, prob.stats, sde, 1, reference=True, against="forward")
    assert gao.w2_stationary(exact["spectrum"], prob.data) < 1e-9  # x_0 of the forward process = data
    assert prob.floor() < 1e-3  # from the prior at T: only the (tiny) initialization error is left
    assert prob.w2(256) < prob.w2(64) < prob.w2(16)


def test_step_search_finds_the_first_count_below_eps():
    assert gao.steps_to(lambda n: 10.0 / n, 1.0, 1000, rtol=0.0) == 10
    assert gao.steps_to(lambda n: 10.0 / n, 0.37, 1000, rtol=0.0) == 28
    assert gao.steps_to(lambda n: 10.0 / n, 0.001, 1000) is None
    n = gao.steps_to(lambda n: 10.0 / n, 0.05, 10_000, rtol=0.05)
    assert 200 <= n <= 200 * 1.06


def test_fit_recovers_a_known_power_law():
    eps = [0.1, 0.3, 1.0] * 3
    d = [256] * 3 + [1024] * 3 + [4096] * 3
    steps = [7 * e**-1.5 * n**0.75 for e, n in zip(eps, d)]
    fit = gao.fit_power_law(eps, d, steps)
    assert fit["eps_exponent"] == pytest.approx(1.5) and fit["d_exponent"] == pytest.approx(0.75)
    assert fit["rms_log_residual"] < 1e-9 and fit["n_points"] == 9
    noisy = [s * (1.1 if i % 2 else 0.9) for i, s in enumerate(steps)]
    fit = gao.fit_power_law(eps, d, noisy + [None])
    lo, hi = fit["eps_ci95"]
    assert lo < 1.5 < hi and fit["n_points"] == 9


def test_gao_section_end_to_end(tmp_path, capsys):
    cfg = {
        "gaussian": {"sizes": [8], "xi": ["critical"], "eta": 2, "coarsest": 4, "wavelet": "haar",
                     "sampler": "em", "time_grid": "uniform", "sde": {"name": "vp"}, "steps": [4, 16],
                     "error": "spectrum", "target": {"spectrum": 0.3, "kl": 0.01}},
        "cost": {"sizes": [8], "xi": "critical", "steps_per_scale": 4, "n_images": 2, "repeats": 1, "threads": 1},
        "processes": {"size": 8, "xi": "critical",
                      "sdes": {"vp_linear": {"name": "vp"}, "ve_rho_power": {"name": "ve_power", "sigma_min": 0.01,
                                                                            "sigma_max": 50.0, "rho": 7.0}}},
        "gao": {"sizes": [8, 16], "xi": 4, "eta": 2, "coarsest": 4, "wavelet": "haar", "sampler": "em",
                "time_grid": "uniform", "eps": 0.0, "eps_values": [0.3, 1.0], "max_steps": 512, "rtol": 0.1},
    }
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["paper", "--config", str(path), "--outdir", str(tmp_path / "out"), "--only", "gao"]) == 0
    res = json.loads((tmp_path / "out" / "paper_gao.json").read_text())
    assert res["machine"] and res["date"] and res["runtime_s"] > 0
    assert (tmp_path / "out" / "paper_gao.png").stat().st_size > 0
    assert not (tmp_path / "out" / "paper_gaussian.json").exists()
    row = res["rows"]["vp_linear"]
    assert [r["J"] for r in row["wsgm"]["grid"]] == [1, 1, 2, 2] and all(r["J"] == 0 for r in row["sgm"]["grid"])
    for r in row["sgm"]["grid"] + row["wsgm"]["grid"]:
        assert r["steps"] is not None and r["w2"] <= r["eps"]
    assert row["sgm"]["fit"]["eps_exponent"] > 0
    assert res["rows"]["ve_rho_power"]["predicted"]["eps_exponent"] == pytest.approx(2 + 1 / 14)
    out = capsys.readouterr().out
    assert "| vp_linear | SGM |" in out and "O(d √log(d/ε) / ε²)" in out
