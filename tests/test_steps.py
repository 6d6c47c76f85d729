"""The step-setting value type: parsing, path labels, per-scale lists, costs, refusals."""

import copy

import numpy as np
import pytest

from wsgm import specs
from wsgm.steps import Steps


@pytest.mark.parametrize("setting, label, spec_value", [
    (8, "8", 8),
    ("8", "8", 8),
    ([8, 8, 32], "8-8-32", [8, 8, 32]),
    ((8, 8, 32), "8-8-32", [8, 8, 32]),
    ("8-8-32", "8-8-32", [8, 8, 32]),
    (np.int64(16), "16", 16),
    ([np.int64(2), 4], "2-4", [2, 4]),
    ([3], "3", [3]),  # a one-entry list stays a list in the spec, as it always was
])
def test_parse_label_and_spec_value(setting, label, spec_value):
    steps = Steps(setting)
    assert steps.label == label and str(steps) == label
    assert steps.spec_value == spec_value and type(steps.spec_value) is type(spec_value)
    value = steps.spec_value
    assert all(type(s) is int for s in (value if isinstance(value, list) else [value]))  # plain ints (JSON)
    assert Steps(steps) == steps


@pytest.mark.parametrize("label", ["2", "64", "8-8-32", "1-2-3-4"])
def test_labels_round_trip(label):
    assert Steps(label).label == label
    assert Steps(Steps(label).spec_value) == Steps(label)


def test_per_scale_broadcast_and_length():
    assert Steps(4).per_scale(2) == [4, 4, 4]
    assert Steps(4).per_scale(0) == [4]
    assert Steps("1-2-3").per_scale(2) == [1, 2, 3]
    with pytest.raises(ValueError, match=r"J\+1 = 3 entries, got 2"):
        Steps([1, 2]).per_scale(2)
    with pytest.raises(ValueError, match=r"J\+1 = 1 entries, got 3"):
        Steps("8-8-32").per_scale(0)


def test_costs():
    assert Steps(8).max == 8 and Steps("8-8-32").max == 32
    assert Steps(8).cost == 8 and Steps([8, 8, 32]).cost == 48  # J-free: how settings are compared
    assert Steps(8).total(2) == 24 and Steps([8, 8, 32]).total(2) == 48
    assert not Steps(8).is_per_scale and Steps("8-8").is_per_scale


def test_hashable_and_equal():
    assert Steps("8") == Steps(8) and hash(Steps("8")) == hash(Steps(8))
    assert Steps("8-8-32") == Steps([8, 8, 32]) and Steps(8) != Steps([8, 8, 8]) and Steps(8) != 8
    assert len({Steps(8), Steps("8"), Steps([1, 2]), Steps("1-2")}) == 2
    with pytest.raises(AttributeError):
        Steps(8)._value = 9


@pytest.mark.parametrize("bad", [30.0, [2.0, 4], "2.0", "x", "", "8-", "-8", "8--8", True, [True, 2], None,
                                 [], "8,8"])
def test_refuses_non_integers_naming_the_value(bad):
    with pytest.raises(ValueError) as err:
        Steps(bad)
    assert repr(bad) in str(err.value) or (isinstance(bad, list) and repr(bad[0]) in str(err.value))


def test_specs_and_paths_use_the_labels(tiny_config):
    assert specs.samples_path("wsgm", [8, 8, 32]) == "results/samples/wsgm/steps8-8-32.zarr"
    assert specs.samples_path("wsgm", "8-8-32") == specs.samples_path("wsgm", Steps("8-8-32"))
    assert specs.metrics_path("sgm", 4) == "results/metrics/sgm/steps4.json"
    assert specs.inverse_metrics_path("w", "superres", "2-2") == "results/inverse/w/superres_steps2-2.json"
    assert specs.sample(tiny_config, "wsgm", "1-2-3")["steps"] == [1, 2, 3]
    assert specs.sample(tiny_config, "wsgm", Steps(4))["steps"] == 4
    assert specs.evaluate(tiny_config, "wsgm", "4")["steps"] == 4
    # the templates the rules use as outputs are the ones the path functions fill in
    assert specs.SAMPLES.format(experiment="wsgm", steps="8-8-32") == specs.samples_path("wsgm", [8, 8, 32])


def test_config_refuses_non_integer_steps(tiny_config):
    from wsgm import config as config_lib

    cfg = copy.deepcopy(tiny_config)
    cfg["experiments"]["wsgm"]["sampling"]["steps"] = [2, 30.0]  # the schema's "integer" accepts 30.0
    with pytest.raises(config_lib.ConfigError, match=r"sampling.steps.*30\.0"):
        config_lib.check(cfg)
