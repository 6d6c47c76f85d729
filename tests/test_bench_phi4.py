"""bench/phi4.py helpers on fabricated metric files: the φ⁴ observables table, with and without intervals."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_phi4", ROOT / "bench" / "phi4.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metric_file(chi, ci=False, floor=False):
    m = {"energy_mean": 0.5, "energy_std": 0.1, "magnetization_mean": 0.01, "abs_magnetization": 0.4,
         "susceptibility": chi, "correlation_length": 3.0, "binder": 0.6, "two_point_error_max": 0.02}
    m |= {f"{n}_data": v for n, v in m.items() if n != "two_point_error_max"}
    if ci:
        m |= {f"{n}_ci": [v - 0.5, v + 0.5] for n, v in list(m.items()) if not n.endswith("_data")}
    if floor:
        m |= {"susceptibility_data_floor": 11.0, "susceptibility_data_floor_ci": [10.0, 12.0]}
    return {"metrics": m, "spectra": {"two_point_samples": [1.0, 0.5], "two_point_data": [1.0, 0.4]}}


def _result(bench, rows):
    per = {"J": 1, "models": 2, "train_steps_per_model": 10, "batch_size": 4, "train_job_s": 1.0, "metrics": {}}
    return {"machine": "m", "date": "d", "pipeline_wall_s": 0.0,
            "experiments": {"wsgm": per | bench.observables(rows)}}


def test_observables_table_with_intervals(bench, capsys):
    result = _result(bench, {"4": _metric_file(12.0, ci=True, floor=True), "8": _metric_file(13.0, ci=True)})
    exp = result["experiments"]["wsgm"]
    assert exp["observables"]["4"]["susceptibility"] == {"value": 12.0, "ci": [11.5, 12.5]}
    assert exp["observables_data"]["susceptibility"] == {"data": 12.0, "data_floor": 11.0,
                                                         "data_floor_ci": [10.0, 12.0]}
    assert exp["two_point"]["8"] == [1.0, 0.5] and exp["two_point_data"] == [1.0, 0.4]
    bench.print_tables(result)
    out = capsys.readouterr().out
    assert "χ₂" in out and "ξ₂" in out and "⟨m⟩" in out and "G(r) err" in out
    assert "| wsgm | 4 | 0.5 ± 0.5 |" in out and "12 ± 0.5" in out and "13 ± 0.5" in out
    floor_row = next(line for line in out.splitlines() if line.startswith("| data (held-out"))
    assert "11 ± 1" in floor_row and floor_row.count("|") == out.splitlines()[-3].count("|")


def test_observables_table_without_intervals(bench, capsys):
    old = _metric_file(12.0)
    for n in ("magnetization_mean", "susceptibility", "correlation_length", "two_point_error_max"):
        old["metrics"].pop(n)  # a metric file from before these observables
    bench.print_tables(_result(bench, {"4": old}))
    out = capsys.readouterr().out
    assert "| wsgm | 4 | 0.5 | 0.1 | 0.4 | 0.6 |" in out and "χ₂" not in out
    assert "| data (reference) | | 0.5 | 0.1 | 0.4 | 0.6 |" in out and "held-out" not in out


def test_steps_to_floor_follow_the_pipelines_rule(bench, capsys):
    """The first setting (by cost) whose metric file says it reaches the floor; the table marks it."""
    assert bench.first_reaching({"4": False, "16": True, "8": True}) == "8"
    assert bench.first_reaching({"4": False, "8": False}) is None
    entry = {"values": {"4": 0.5, "8": 0.1}, "ci": {"4": [0.4, 0.6], "8": [0.05, 0.15]}, "floor": 0.08,
             "floor_ci": [0.06, 0.1], "reaches_floor": {"4": False, "8": True}, "steps_to_floor": "8",
             "steps_to_multiple": {"2x": "8", "5x": "8", "10x": "4"}, "plateau_steps": "8"}
    per = {"J": 1, "models": 2, "train_steps_per_model": 10, "batch_size": 4, "train_job_s": 1.0,
           "metrics": {"energy_w1": entry}}
    bench.print_tables({"machine": "m", "date": "d", "pipeline_wall_s": 0.0, "experiments": {"wsgm": per}})
    out = capsys.readouterr().out
    assert "| 4 | 0.5 ± 0.1 |" in out and "| 8 | 0.1 ± 0.05* |" in out
    assert "| data floor (held-out) | 0.08 ± 0.02 |" in out and "| steps to reach it | 8 |" in out
