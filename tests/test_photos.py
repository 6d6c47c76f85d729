"""kind: photos — random crops of scikit-image's bundled photographs: deterministic from the seed,
train / reference / floor crops from disjoint regions of each photo, photographs only, gray and
RGB at 32² and 64², flipped; config/photos.yaml and the dataset CLI."""

import numpy as np
import pytest
import yaml
import zarr

from tests.helpers import REPO
from wsgm import config as config_lib
from wsgm import specs
from wsgm.cli import main
from wsgm.data import photos, split


def _cfg(seed=0, **ds):
    ds = {"kind": "photos", "size": 32, "channels": 3, "n": 48, "n_test": 16, "n_floor": 16, "chunk": 16, **ds}
    return config_lib.check({"seed": seed, "datasets": {"p": ds},
                             "experiments": {"e": {"dataset": "p", "J": 2, "sampling": {"n_samples": ds["n_floor"]}}}},
                            warn=None)


def _build(tmp_path, name="d.zarr", seed=0, **ds):
    out = tmp_path / name
    photos.simulate(specs.dataset(_cfg(seed, **ds), "p"), out)
    return zarr.open_group(str(out), mode="r")


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("rgb"))


def _boxes(group, part):
    """(photo, top, left) of the crops of one part."""
    rows = split.rows(group, part)
    return group["crops"][rows][:, :3]


def test_same_seed_same_store_other_seed_differs(tmp_path, rgb):
    again = _build(tmp_path, "again.zarr")
    assert np.array_equal(rgb["x"][:], again["x"][:])
    assert np.array_equal(rgb["crops"][:], again["crops"][:])
    assert dict(rgb.attrs) == dict(again.attrs)
    other = _build(tmp_path, "other.zarr", seed=1)
    assert not np.array_equal(rgb["x"][:], other["x"][:])
    # the train crops do not move when more images are held out
    more = _build(tmp_path, "more.zarr", n_test=24)
    assert np.array_equal(more["x"][:48], rgb["x"][:48])


def test_regions_disjoint_and_crops_inside_them(rgb):
    size = rgb.attrs["size"]
    regions = [p["regions"] for p in rgb.attrs["photos"]]
    for photo in regions:  # the three regions of a photo are disjoint rectangles
        for a, b in [("train", "reference"), ("train", "floor"), ("reference", "floor")]:
            (t1, l1, b1, r1), (t2, l2, b2, r2) = photo[a], photo[b]
            assert min(b1, b2) <= max(t1, t2) or min(r1, r2) <= max(l1, l2)
    for part in split.PARTS:
        for p, top, left in _boxes(rgb, part):
            t, l, b, r = regions[p][part]
            assert t <= top and top + size <= b and l <= left and left + size <= r
    for a, b in [("train", "reference"), ("train", "floor"), ("reference", "floor")]:
        pa, pb = _boxes(rgb, a), _boxes(rgb, b)
        same = pa[:, None, 0] == pb[None, :, 0]
        overlap = (np.abs(pa[:, None, 1] - pb[None, :, 1]) < size) & (np.abs(pa[:, None, 2] - pb[None, :, 2]) < size)
        assert not (same & overlap).any(), f"a {a} crop overlaps a {b} crop"


def test_crops_are_the_photo_pixels_flipped(rgb):
    crops = rgb["crops"][:]
    assert set(crops[:, 3]) == {0, 1} and set(crops[:, 4]) == {0}  # flips: horizontal
    used = [p["name"] for p in rgb.attrs["photos"]]
    images = {i: photos.load(name, 3, rgb.attrs["downscale"]) for i, name in enumerate(used)}
    x = rgb["x"][:]
    for i in (int(np.argmax(crops[:, 3] == 0)), int(np.argmax(crops[:, 3] == 1))):
        p, top, left, lr, _ = crops[i]
        want = images[p][:, top:top + 32, left:left + 32].astype(np.float32) / 127.5 - 1
        assert np.array_equal(x[i], want[:, :, ::-1] if lr else want)


def test_only_bundled_photographs(rgb):
    bundled = {f.name for f in photos.data_dir().iterdir()}
    assert not set(photos.PHOTOS) & (set(photos.EXCLUDED) | set(photos.NEEDS_DOWNLOAD))
    for name, (filename, _) in photos.PHOTOS.items():
        assert filename in bundled, f"{name} is not in the scikit-image wheel"
    used = [p["name"] for p in rgb.attrs["photos"]]
    assert used == [p for p, (_, colour) in photos.PHOTOS.items() if colour]
    assert rgb.attrs["skimage_version"] == photos.skimage_version()
    import skimage

    assert rgb.attrs["skimage_version"] == skimage.__version__


@pytest.mark.parametrize("channels,size,downscale", [(1, 32, 2), (3, 64, 1), (1, 64, 1)])
def test_gray_and_rgb_shapes(tmp_path, channels, size, downscale):
    kw = {"photos": ["camera", "astronaut"]} if channels == 1 else {"photos": ["chelsea"]}
    g = _build(tmp_path, channels=channels, size=size, downscale=downscale, flips="both", n=8, n_test=4,
               n_floor=4, **kw)
    x = g["x"][:]
    assert x.shape == (16, channels, size, size) and x.dtype == np.float32
    assert -1 <= x.min() and x.max() <= 1
    assert g.attrs["split"] == {"train": [0, 8], "reference": [8, 12], "floor": [12, 16]}
    assert set(g["crops"][:, 3]) == {0, 1} and set(g["crops"][:, 4]) == {0, 1}  # flips: both


def test_gray_takes_every_photograph_rgb_the_colour_ones():
    assert photos.names({"channels": 1, "photos": []}) == list(photos.PHOTOS)
    assert set(photos.PHOTOS) - set(photos.names({"channels": 3, "photos": []})) == {"camera", "coins", "moon"}


def test_refused_at_load():
    with pytest.raises(config_lib.ConfigError, match=r"\['camera'\] are grayscale"):
        _cfg(photos=["camera", "astronaut"])
    with pytest.raises(config_lib.ConfigError, match="region of chelsea .* smaller than a 64x64 crop"):
        _cfg(size=64)


def test_photos_config_is_fair_and_not_periodic():
    cfg = config_lib.load(REPO / "config" / "photos.yaml")
    (ds,) = cfg["datasets"].values()
    assert ds["kind"] == "photos" and "photos" not in config_lib.PERIODIC_KINDS
    sgm, wsgm = cfg["experiments"]["sgm"], cfg["experiments"]["wsgm"]
    assert (sgm["J"], wsgm["J"]) == (0, 2) and sgm["net"]["attn_resolutions"] == [8]
    assert sgm["sde"] == wsgm["sde"] and sgm["train"] == wsgm["train"]
    for e in (sgm, wsgm):
        assert e["net"]["padding"] == "zeros"
        assert e["metrics"] == ["spectrum", "marginal", "fid", "kid", "texture"]


def test_dataset_cli(tmp_path):
    raw = yaml.safe_load((REPO / "config" / "photos.yaml").read_text())
    ds = raw["datasets"]["photos32"]
    ds.update(n=32, n_test=8, n_floor=8, chunk=16)
    for e in raw["experiments"].values():
        e["sampling"]["n_samples"] = 8
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "d.zarr"
    assert main(["dataset", "--config", str(path), "--dataset", "photos32", "--out", str(out)]) == 0
    g = zarr.open_group(str(out), mode="r")
    assert g["x"].shape == (48, 3, 32, 32) and g.attrs["kind"] == "photos"
    assert g.attrs["split"] == {"train": [0, 32], "reference": [32, 40], "floor": [40, 48]}
