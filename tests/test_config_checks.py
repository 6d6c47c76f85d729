"""Config checks that stop a run at planning (or in `wsgm check-config`) instead of in a job:
real integers, image sides the FID extractor takes, enough images per metric, inverse masks on
the Haar blocks, YAML syntax errors with file and line; the warnings of meaningless metrics; the
Fréchet distance clamped at 0."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import yaml

from wsgm import cli
from wsgm import config as config_lib
from wsgm.config import ConfigError
from wsgm.metrics import fid as fid_lib
from wsgm.metrics import sample_sizes as sizes

from .helpers import make_project, snakemake

BASE = {"datasets": {"d": {"kind": "gaussian", "size": 16, "n": 256}},
        "experiments": {"e": {"dataset": "d", "J": 1, "sampling": {"n_samples": 128}}}}


def _set(path: str, value):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return mutate


CASES = {  # name: (mutations, key, what the message says, its fix)
    "float train.steps": ([_set("experiments.e.train.steps", 30.0)], "experiments.e.train.steps",
                          "30.0 is not an integer", "Fix: write an integer without a decimal point, e.g. 30"),
    "float seed": ([_set("seed", 3.0)], "seed", "3.0 is not an integer", "e.g. 3"),
    "float fid.kid_subsets": ([_set("fid.kid_subsets", 10.0)], "fid.kid_subsets", "10.0 is not an integer",
                              "e.g. 10"),
    "float dataset n": ([_set("datasets.d.n", 256.0)], "datasets.d.n", "256.0 is not an integer", "e.g. 256"),
    "float in a per-scale step list": ([_set("experiments.e.sampling.steps", [[2.0, 4]])],
                                       "experiments.e.sampling.steps.0.0", "2.0 is not an integer", "e.g. 2"),
    "float step count": ([_set("experiments.e.sampling.steps", [2.0, 4])], "experiments.e.sampling.steps.0",
                         "2.0 is not an integer", "e.g. 2"),
    "dataset of 1 image": ([_set("datasets.d.n", 1)], "datasets.d.n", "1 image(s) cannot be scored",
                           "Fix: set n to at least 2"),
    "cifar10 limit 1": ([_set("datasets.d", {"kind": "cifar10", "size": 32, "channels": 3, "path": "x.tar.gz",
                                             "limit": 1})], "datasets.d.limit",
                        "1 image(s) cannot hold out n_test + n_floor", "Fix: lower datasets.d.n_test / n_floor"),
    "floor smaller than the samples": ([_set("experiments.e.sampling.n_samples", 64), _set("datasets.d.n_floor", 32)],
                                       "datasets.d.n_floor", "holds out only n_floor = 32",
                                       "Fix: set datasets.d.n_floor to at least 64"),
    "1 sample": ([_set("experiments.e.sampling.n_samples", 1)], "experiments.e.sampling.n_samples",
                 "1 sample(s) cannot be scored", "Fix: set n_samples to at least 2"),
    "size 20 with J=2": ([_set("datasets.d.size", 20), _set("experiments.e.J", 2),
                          _set("experiments.e.net", {"channel_mult": [1]})], "datasets.d.size",
                         "wsgm-fields cannot take the 20x20 images", "Fix: set size to 16 or 24"),
    "size 40 at resolution 0": ([_set("datasets.d.size", 40)], "datasets.d.size", "sides must be 2^a or 3·2^a",
                                "Fix: set size to 32 or 48"),
    "inverse hole off the blocks": ([_set("datasets.d.size", 8), _set("experiments.e.J", 2),
                                     _set("experiments.e.net", {"channel_mult": [1]}), _set("inverse", {})],
                                    "inverse.hole", "has side 0, outside 1..7", "drop inpaint_center from inverse.tasks"),
    "inverse block": ([_set("inverse.block", 3)], "inverse.block", "blocks of side 3 must divide the image side 16",
                      "Fix: set inverse.block"),
    "inverse superres": ([_set("inverse.superres_levels", 5)], "inverse.superres_levels",
                         "a low-pass of 5 level(s) does not fit", "Fix: set inverse.superres_levels"),
    "inverse wavelet": ([_set("experiments.e.wavelet", "db2"), _set("inverse.tasks", ["inpaint_blocks"])],
                        "experiments.e.wavelet", "needs Haar blocks", "Fix: use wavelet: haar"),
}


def _config(mutations) -> dict:
    cfg = copy.deepcopy(BASE)
    for mutate in mutations:
        mutate(cfg)
    return cfg


def test_the_base_config_passes_without_warnings(capsys):
    assert config_lib.warnings(BASE) == []
    config_lib.check(BASE)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("case", CASES)
def test_bad_config_fails_in_load_and_in_check_config_with_one_message(tmp_path, capsys, case):
    mutations, key, what, fix = CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_config(mutations)))
    with pytest.raises(ConfigError) as err:
        config_lib.load(path)
    msg = str(err.value)
    assert msg.startswith(f"config error at '{key}': ") and what in msg and fix in msg and "\n" not in msg
    assert cli.main(["check-config", str(path)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines == [f"wsgm check-config: error: {msg}"]


def test_jsonschema_refuses_booleans_as_integers():
    with pytest.raises(ConfigError, match=r"'experiments\.e\.train\.steps': True has the wrong type.*Fix"):
        config_lib.check(_config([_set("experiments.e.train.steps", True)]))


def test_integer_check_covers_every_integer_key_of_the_schema():
    """Walk the schema: a float at every `type: integer` key (with an integer default) is refused."""
    found = []

    def walk(node, path):
        node = config_lib._resolve_ref(node)
        for key, sub in node.get("properties", {}).items():
            sub = config_lib._resolve_ref(sub)
            if sub.get("type") == "integer":
                found.append((*path, key))
            walk(sub, (*path, key))

    walk(config_lib.schema(), ())
    walk(config_lib.schema()["$defs"]["dataset"], ("datasets", "d"))
    walk(config_lib.schema()["$defs"]["experiment"], ("experiments", "e"))
    assert len(found) > 15
    for path in found:
        cfg = _config([])
        node = cfg
        for p in path[:-1]:
            node = node.setdefault(p, {})
        default = config_lib._fill_defaults(copy.deepcopy(cfg), config_lib.schema())
        for p in path:
            default = default[p]
        node[path[-1]] = float(default)
        key = ".".join(map(str, path))
        with pytest.raises(ConfigError) as err:
            config_lib.check(cfg)
        assert f"'{key}': {float(default)!r} is not an integer" in str(err.value), key


WARNING_CASES = {  # name: (mutations, key, text)
    "FID from 2 samples": ([_set("experiments.e.sampling.n_samples", 2)], "experiments.e.sampling.n_samples",
                           "FID from 2 images in the 30-dimensional feature space is statistically meaningless "
                           "(n <= d"),
    "FID from 40 samples, d = 30": ([_set("experiments.e.sampling.n_samples", 40)],
                                    "experiments.e.sampling.n_samples", "n < 2d"),
    "FID on a small held-out set": ([_set("datasets.d.n_test", 50)], "datasets.d.n_test", "FID from 50 images"),
    "FID, small n_reference": ([_set("fid.n_reference", 40)], "fid.n_reference", "FID from 40 images"),
    "KID subsets": ([_set("fid.kid_subset_size", 20)], "fid.kid_subset_size", "KID over subsets of 20 images"),
    "inverse not asked for": ([_set("datasets.d.size", 8), _set("experiments.e.J", 2),
                               _set("experiments.e.net", {"channel_mult": [1]})], "inverse.hole",
                              "only `snakemake inverse` needs it"),
}


@pytest.mark.parametrize("case", WARNING_CASES)
def test_meaningless_metrics_warn_in_load_and_in_check_config(tmp_path, capsys, case):
    mutations, key, text = WARNING_CASES[case]
    path = tmp_path / "warn.yaml"
    path.write_text(yaml.safe_dump(_config(mutations)))
    config_lib.check(_config(mutations))  # as at planning (workflow/rules/common.smk)
    err = capsys.readouterr().err
    assert f"wsgm: config warning at '{key}': " in err and text in err and "Fix" in err
    found = []
    config_lib.load(path, warn=found.append)
    assert capsys.readouterr().err == ""  # a stage job loading its config prints none
    assert any(m.startswith(f"config warning at '{key}': ") and text in m for m in found)
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert "ok" in out.out and f"config warning at '{key}'" in out.err
    assert any(text in w for w in config_lib.warnings(_config(mutations)))


def test_fid_threshold_is_max_of_2d_and_50():
    assert sizes.frechet_warning(60, 30) is None and "n < 2d" in sizes.frechet_warning(59, 30)
    assert "n <= d" in sizes.frechet_warning(30, 30)
    assert sizes.frechet_warning(49, 5) and sizes.frechet_warning(50, 5) is None
    assert sizes.kid_warning(49) and sizes.kid_warning(50) is None
    warnings = sizes.metric_warnings(["fid", "kid"], 30, {"samples": 16, "reference": 128, "data floor": 16}, 1000)
    assert len(warnings) == 2 and "(samples 16, reference 128, data floor 16)" in warnings[0]
    assert sizes.metric_warnings(["spectrum"], 30, {"samples": 2}, 1000) == []


@pytest.mark.parametrize("channels", [1, 3])
def test_feature_dim_and_accepted_sides_match_the_real_extractors(channels):
    """fields_side_ok/feature_dim (computed from the config, no net) against the extractors run on
    random input: wsgm-fields takes exactly the sides 2^a, 3·2^a (and 2, 3)."""
    fields = fid_lib.FieldStatistics(fid_lib.FIELDS, ["stats"])
    identity = fid_lib.Identity(fid_lib.IDENTITY, ["pixels"])
    for side in range(2, 41):
        x = torch.randn(3, channels, side, side)
        try:
            width = fields(x)[0].shape[1]
        except ValueError:
            width = None
        assert sizes.fields_side_ok(side) == (width is not None), side
        if width is not None:
            assert sizes.feature_dim(fid_lib.FIELDS, side, channels) == width, side
        assert sizes.feature_dim(fid_lib.IDENTITY, side, channels) == identity(x)[0].shape[1]
    assert sizes.feature_dim(fid_lib.INCEPTION, 32, 3) == 2048  # pool3, as extractor_identity records


def test_a_set_against_itself_gives_zero_not_a_negative_round_off():
    feats = fid_lib.features(torch.randn(10, 1, 16, 16), {"extractor": fid_lib.FIELDS})
    stats = fid_lib.statistics(feats)
    assert fid_lib.frechet(stats, stats) == 0.0  # torch-fidelity alone gives about -5e-8 here
    assert fid_lib.closed_form_frechet(stats["mu"], stats["sigma"], stats["mu"], stats["sigma"]) >= 0.0
    assert fid_lib.nonnegative(-1e-9, stats["mu"], stats["sigma"], stats["mu"], stats["sigma"]) == 0.0
    assert fid_lib.nonnegative(2.5, stats["mu"], stats["sigma"], stats["mu"], stats["sigma"]) == 2.5
    with pytest.raises(RuntimeError, match="not a distance"):
        fid_lib.nonnegative(-0.5, stats["mu"], stats["sigma"], stats["mu"], stats["sigma"])
    with pytest.raises(RuntimeError, match="not a distance"):
        fid_lib.nonnegative(float("nan"), stats["mu"], stats["sigma"], stats["mu"], stats["sigma"])


def test_inverse_checks_agree_with_the_real_tasks():
    """config.inverse_problems (arithmetic at planning) flags exactly the task/experiment pairs
    whose real wsgm.inverse task refuses to build its mask or its bands."""
    from wsgm import inverse, specs

    seen = {True: 0, False: 0}
    for size, J, hole, block, levels, wavelet in itertools.product(
            (8, 12, 16, 24), (0, 1, 2, 3), (0.3, 0.5), (0, 2, 3, 4), (0, 1, 3, 5), ("haar", "db2")):
        cfg = {"datasets": {"d": {"kind": "gaussian", "size": size}},
               "experiments": {"e": {"dataset": "d", "J": J, "wavelet": wavelet, "net": {"channel_mult": [1]}}},
               "fid": {"extractor": "wsgm-identity"}}
        try:
            cfg = config_lib.check(cfg, warn=None)
        except ConfigError:
            continue  # J too large for the size
        cfg["inverse"] |= {"hole": hole, "block": block, "superres_levels": levels}
        flagged = {p.split(": ")[1].split()[2] for p in config_lib.inverse_problems(cfg)}
        for task in cfg["inverse"]["tasks"]:
            real = inverse.build(specs.inverse_task(cfg, "e", task), 1, size, 0)
            try:
                if real.kind == "inpaint":
                    real.mask(np.arange(1))
                real.check(J, wavelet)
                fails = False
            except inverse.InverseError:
                fails = True
            assert (task in flagged) == fails, (size, J, hole, block, levels, wavelet, task)
            seen[fails] += 1
    assert seen[True] > 20 and seen[False] > 20


def test_yaml_syntax_error_names_file_and_line_and_an_empty_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  d: {kind: gaussian\n  x: 1\n")
    with pytest.raises(ConfigError) as err:
        config_lib.load(bad)
    assert str(err.value).startswith(f"config file {bad}:3:4: not valid YAML (")
    assert "flow mapping at line 2" in str(err.value) and "Fix" in str(err.value)
    assert "\n" not in str(err.value)
    for text in ("", "# nothing but a comment\n"):
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        with pytest.raises(ConfigError, match=r"config file .*empty\.yaml is empty \(or only comments\)\. Fix"):
            config_lib.load(empty)
        assert cli.main(["check-config", str(empty)]) == 2


@pytest.mark.workflow
def test_a_float_step_count_stops_the_dry_run_before_any_job(tmp_path):
    root = make_project(tmp_path / "p")
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["experiments"]["wsgm"]["train"]["steps"] = 30.0
    (root / "bad.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(root, "--dry-run", "--configfile", "bad.yaml", check=False)
    assert "config error at 'experiments.wsgm.train.steps': 30.0 is not an integer" in out
    assert "Fix: write an integer without a decimal point, e.g. 30" in out
    assert not (root / "results").exists()
