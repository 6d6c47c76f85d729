"""The Inception weights are fetched once, by a local rule, only when the config needs them."""

import re

import pytest
import yaml

from .helpers import REPO, make_project, snakemake

pytestmark = pytest.mark.workflow


def test_inception_config_plans_one_checksummed_fetch_before_the_reference(tmp_path):
    root = make_project(tmp_path / "fetch")
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["fid"] = {"extractor": "inception-v3-compat"}
    (root / "inception.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(root, "--dry-run", "--printshellcmds", "--configfile", "inception.yaml")
    cmd = re.search(r"python -m wsgm fetch .*", out).group(0)
    assert ("--url https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth") in cmd
    assert "--sha256 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in cmd
    assert "--out resources/inception-v3-compat.pth" in cmd
    assert len(re.findall(r"rule fetch_inception:", out)) == 1
    # the default (field statistics) needs no download at all
    assert "fetch_inception" not in snakemake(root, "--dry-run")
    # a local copy named in the config replaces the fetch
    cfg["fid"]["weights"] = "/somewhere/inception.pth"
    (root / "local.yaml").write_text(yaml.safe_dump(cfg))
    assert "fetch_inception" not in snakemake(root, "--dry-run", "--configfile", "local.yaml")
