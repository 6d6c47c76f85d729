import numpy as np
import pytest
import yaml
import zarr

from wsgm import provenance
from wsgm.cli import main


def _config(tmp_path, **dataset):
    cfg = {"datasets": {"mine": {"kind": "npz", "size": 8, "channels": 1, "chunk": 4, "n_test": 2, "n_floor": 2,
                                 **dataset}},
           "experiments": {"e": {"dataset": "mine", "J": 1, "net": {"channel_mult": [1]}, "sampling": {"n_samples": 2}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_own_npz_becomes_the_dataset_store(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, size=(10, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "imgs.npz", images=imgs)
    cfg = _config(tmp_path, path=str(tmp_path / "imgs.npz"), key="images", offset=127.5, scale=1 / 127.5)
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "mine", "--out", str(out)]) == 0
    x = zarr.open_group(str(out), mode="r")["x"][:]
    assert x.shape == (10, 1, 8, 8) and x.dtype == np.float32
    assert np.allclose(x[:, 0], (imgs - 127.5) / 127.5)
    rec = provenance.read_record(out)
    assert rec["extra"]["source_sha256"] == provenance.content_hash(tmp_path / "imgs.npz")


@pytest.mark.parametrize("payload, dataset, message", [
    ({"images": np.zeros((4, 16, 16))}, {"key": "images"}, "config says channels=1, size=8"),
    ({"other": np.zeros((4, 8, 8))}, {"key": "images"}, "has no array 'images'"),
    ({"images": np.full((4, 8, 8), np.nan)}, {"key": "images"}, "NaN"),
])
def test_bad_npz_gives_one_clear_error_and_no_output(tmp_path, capsys, payload, dataset, message):
    np.savez(tmp_path / "imgs.npz", **payload)
    cfg = _config(tmp_path, path=str(tmp_path / "imgs.npz"), **dataset)
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "mine", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not provenance.record_path(out).exists()
    assert not list(tmp_path.glob(".data.zarr.tmp-*"))


def test_npz_needs_a_path(tmp_path):
    from wsgm.config import ConfigError, load

    with pytest.raises(ConfigError, match="datasets.mine.path"):
        load(_config(tmp_path))
