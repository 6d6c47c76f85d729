"""`wsgm paper` end to end on a tiny paper config, and its config errors."""

import json

import pytest
import yaml

from wsgm import paper
from wsgm.cli import main
from wsgm.config import ConfigError

TINY = {
    "gaussian": {"sizes": [8, 16], "xi": ["critical"], "eta": 2, "coarsest": 4, "wavelet": "haar",
                 "sampler": "em", "time_grid": "uniform", "sde": {"name": "vp"}, "steps": [4, 16, 64],
                 "error": "spectrum", "target": {"spectrum": 0.3, "kl": 0.01}},
    "cost": {"sizes": [8, 16], "xi": "critical", "steps_per_scale": 4, "n_images": 2, "repeats": 1, "threads": 1},
    "processes": {"size": 8, "xi": "critical",
                  "sdes": {"vp_linear": {"name": "vp"}, "vp_constant": {"name": "ou", "beta": 10.0}}},
}


@pytest.mark.slow
def test_theory_writes_results_with_machine_and_date(tmp_path, capsys):
    cfg = tmp_path / "paper.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    assert main(["paper", "--config", str(cfg), "--outdir", str(tmp_path / "out")]) == 0
    g = json.loads((tmp_path / "out" / "paper_gaussian.json").read_text())
    c = json.loads((tmp_path / "out" / "paper_cost.json").read_text())
    s = json.loads((tmp_path / "out" / "paper_sde.json").read_text())
    for res in (g, c, s):
        assert res["machine"] and res["date"] and res["runtime_s"] > 0
    assert [r["size"] for r in g["runs"]] == [8, 16]
    assert [r["wsgm"]["J"] for r in g["runs"]] == [1, 2] and all(r["sgm"]["J"] == 0 for r in g["runs"])
    for r in g["runs"]:  # the recorded steps-to-target is the interpolation of the recorded curve
        for name in ("sgm", "wsgm"):
            curve = r[name]["spectrum"]
            assert r[name]["steps_to_target"]["spectrum"] == paper.theory.steps_to_target([4, 16, 64], curve, 0.3)
    # SGM in the cost table runs at the steps it needed in the gaussian section
    assert c["rows"][1]["sgm_steps"] >= g["runs"][1]["sgm"]["steps_to_target"]["spectrum"]
    assert c["wsgm_slope"] is not None and all(r["wsgm_s_per_image"] > 0 for r in c["rows"])
    assert set(s["vp_order_sgm"]) == {"vp_linear", "vp_constant"}
    for png in ("paper_gaussian.png", "paper_cost.png", "paper_sde.png"):
        assert (tmp_path / "out" / png).stat().st_size > 0
    assert "| critical |" in capsys.readouterr().out


def test_incomplete_paper_config_is_one_clear_error(tmp_path):
    bad = {k: v for k, v in TINY.items() if k != "cost"}
    cfg = tmp_path / "paper.yaml"
    cfg.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="section 'cost' lacks sizes"):
        paper.load(cfg)
    bad = {**TINY, "processes": {**TINY["processes"], "sdes": {"x": {"name": "nope"}}}}
    cfg.write_text(yaml.safe_dump(bad))
    assert main(["paper", "--config", str(cfg), "--outdir", str(tmp_path / "o"), "--only", "processes"]) == 2
