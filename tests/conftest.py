"""Shared fixtures: tiny configs and a tiny decomposed store built by the real stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsgm import config as config_lib

from .helpers import REPO


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_config() -> dict:
    return config_lib.load(REPO / "config" / "test.yaml")


@pytest.fixture
def tiny_store(tmp_path, tiny_config):
    """(dataset store, decomposed store for J=2) written by the real dataset/decompose stages."""
    from wsgm import specs
    from wsgm.provenance import run_stage
    from wsgm.data import gaussian
    from wsgm.decompose import decompose

    data = tmp_path / "data.zarr"
    spec = specs.dataset(tiny_config, "tiny")
    run_stage("dataset", spec, {}, {"data": (data, True)}, lambda t: gaussian.simulate(spec, t["data"]))
    store = tmp_path / "haar_J2.zarr"
    dspec = specs.decompose(tiny_config, "haar", 2)
    run_stage("decompose", dspec, {"data": data}, {"store": (store, True)},
              lambda t: decompose(dspec, data, t["store"]))
    return data, store

