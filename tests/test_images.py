"""Real-data converters: CIFAR-10 tarball and image archives/folders, served and fetched locally,
through to the decomposition; unsafe or corrupt archives and bad images give one clear error."""

import hashlib
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import yaml
import zarr
from PIL import Image

from tests.httpserve import serve
from wsgm import provenance
from wsgm.cli import main
from wsgm.data import archive
from wsgm.data.archive import ArchiveError


def _tar(members: dict[str, bytes], mode="w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cifar_tarball(rng, per_batch=6):
    """The layout of cifar-10-python.tar.gz: pickled dicts with b'data' (uint8 N×3072), b'labels'."""
    members, batches = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        batches[name] = (data, labels)
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(
            {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [b"x.png"] * per_batch}, protocol=2)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"a"] * 10})
    return _tar(members), batches


def _config(tmp_path, ds, J=1):
    ds = {"n_test": 2, "n_floor": 2, **ds}  # a few images: hold out 2 + 2 of them
    cfg = {"datasets": {"d": ds}, "experiments": {"e": {"dataset": "d", "J": J, "net": {"channel_mult": [1]},
                                                         "sampling": {"n_samples": 2}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _png(size, mode="RGB", color=None, fmt="PNG"):
    buf = io.BytesIO()
    rng = np.random.default_rng(sum(size))
    if color is None:
        shape = (size[1], size[0]) + ((len(mode),) if mode in ("RGB", "RGBA") else ())
        img = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)
    else:
        img = Image.new(mode, size, color)
    img.save(buf, fmt)
    return buf.getvalue()


def test_cifar10_fetched_converted_and_decomposed(tmp_path):
    blob, batches = _cifar_tarball(np.random.default_rng(0))
    md5 = hashlib.md5(blob).hexdigest()
    with serve() as server:
        server.files["/~kriz/cifar-10-python.tar.gz"] = blob
        server.truncate["/~kriz/cifar-10-python.tar.gz"] = [len(blob) // 2]  # and resume
        url = server.url + "/~kriz/cifar-10-python.tar.gz"
        cfg = _config(tmp_path, {"kind": "cifar10", "url": url, "md5": md5, "size": 32, "channels": 3,
                                 "chunk": 8, "license": "test note"})
        res = tmp_path / "resources" / "cifar-10-python.tar.gz"
        assert main(["fetch", "--url", url, "--md5", md5, "--out", str(res)]) == 0
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--source", str(res), "--out", str(out)]) == 0
    g = zarr.open_group(str(out), mode="r")
    x, y = g["x"][:], g["y"][:]
    want = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert x.shape == (30, 3, 32, 32) and x.dtype == np.float32 and g["x"].chunks[0] == 8
    assert np.allclose(x, want / 127.5 - 1, atol=1e-6) and x.min() >= -1 and x.max() <= 1
    assert y.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert g.attrs["source"] == url and g.attrs["license"] == "test note"
    assert g.attrs["source_sha256"] == hashlib.sha256(blob).hexdigest()
    assert provenance.read_record(out)["inputs"]["source"]["stage"] == "fetch"
    dec = tmp_path / "haar_J1.zarr"
    assert main(["decompose", "--config", str(cfg), "--experiment", "e", "--data", str(out), "--out", str(dec)]) == 0
    stats = zarr.open_group(str(dec), mode="r").attrs["stats"]
    n_train = zarr.open_group(str(out), mode="r").attrs["split"]["train"][1]  # decompose reads these only
    assert np.allclose(stats["low1"]["mean"], [2 * want[:n_train, c].mean() / 127.5 - 2 for c in range(3)], atol=1e-4)


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    blob = _tar({f"cifar-10-batches-py/data_batch_{i}": pickle.dumps({b"data": Evil()}) for i in range(1, 6)})
    (tmp_path / "c.tgz").write_bytes(blob)
    cfg = _config(tmp_path, {"kind": "cifar10", "path": str(tmp_path / "c.tgz"), "size": 32, "channels": 3})
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--out", str(out)]) == 2
    assert not out.exists()


def test_image_archive_crop_resize_and_modes(tmp_path):
    members = {
        "faces/a.png": _png((40, 48), color=(200, 10, 30)),     # non-square: center crop
        "faces/b.jpg": _png((16, 16), mode="L", color=90, fmt="JPEG"),  # gray into RGB
        "faces/c.png": _png((32, 32), mode="RGBA", color=(0, 255, 0, 255)),
        "faces/notes.txt": b"not an image",
        **{f"more/{i}.png": _png((16, 16), color=(i, i, i)) for i in range(3)},  # held out (n_test + n_floor = 4)
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    (tmp_path / "imgs.zip").write_bytes(buf.getvalue())
    cfg = _config(tmp_path, {"kind": "images", "path": str(tmp_path / "imgs.zip"), "size": 16, "channels": 3,
                             "chunk": 2})
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--out", str(out)]) == 0
    x = zarr.open_group(str(out), mode="r")["x"][:]
    u8 = np.rint((x + 1) * 127.5)
    assert x.shape == (6, 3, 16, 16)  # faces/ first (sorted), then the 3 of more/
    assert np.allclose(u8[0, :, 8, 8], [200, 10, 30], atol=1)
    assert np.allclose(u8[1], 90, atol=2) and np.allclose(u8[2, :, 4, 4], [0, 255, 0], atol=1)
    # a folder works the same
    folder = tmp_path / "folder"
    for name, data in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    cfg = _config(tmp_path, {"kind": "images", "path": str(folder), "size": 16, "channels": 3, "chunk": 2})
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--out", str(tmp_path / "f.zarr")]) == 0
    assert np.array_equal(zarr.open_group(str(tmp_path / "f.zarr"), mode="r")["x"][:], x)


@pytest.mark.parametrize("bad, message", [
    (_png((8, 8)), "smaller than the configured size 16"),
    (b"\x89PNG\r\n\x1a\n garbage", "not a readable image"),
    (_png((32, 32), mode="I;16", color=1000), "not an 8-bit image"),
])
def test_bad_image_is_one_clear_error_and_no_output(tmp_path, capsys, bad, message):
    blob = _tar({"imgs/good.png": _png((32, 32)), "imgs/bad.png": bad}, mode="w")
    (tmp_path / "imgs.tar").write_bytes(blob)
    cfg = _config(tmp_path, {"kind": "images", "path": str(tmp_path / "imgs.tar"), "size": 16, "channels": 3})
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "imgs/bad.png" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".data.zarr.tmp-*"))


def _unsafe_tar(kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ok = tarfile.TarInfo("imgs/ok.png")
        data = _png((16, 16))
        ok.size = len(data)
        tf.addfile(ok, io.BytesIO(data))
        if kind in ("absolute", "dotdot"):
            info = tarfile.TarInfo("/tmp/evil.png" if kind == "absolute" else "imgs/../../evil.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        else:
            info = tarfile.TarInfo("imgs/link.png")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd" if kind == "symlink" else "../../outside.png"
            tf.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("kind, message", [("absolute", "absolute path"), ("dotdot", "'..'"),
                                           ("symlink", "is a link"), ("hardlink", "is a link")])
def test_members_escaping_the_target_are_refused(tmp_path, kind, message):
    src = tmp_path / "a.tar"
    src.write_bytes(_unsafe_tar(kind))
    with pytest.raises(ArchiveError, match=message):
        archive.extract(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
    assert not (tmp_path.parent / "evil.png").exists()


def test_zip_escapes_are_refused(tmp_path):
    for name, attr in [("../evil.png", 0), ("link.png", 0o120777 << 16)]:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            info = zipfile.ZipInfo(name)
            info.external_attr = attr
            zf.writestr(info, b"x")
        (tmp_path / "a.zip").write_bytes(buf.getvalue())
        with pytest.raises(ArchiveError):
            list(archive.members(tmp_path / "a.zip"))


def test_safe_extraction_of_a_good_archive(tmp_path):
    src = tmp_path / "a.tar.gz"
    src.write_bytes(_tar({"d/x.bin": b"123", "d/e/y.bin": b"45"}))
    out = archive.extract(src, tmp_path / "out")
    assert (out / "d" / "x.bin").read_bytes() == b"123" and (out / "d" / "e" / "y.bin").read_bytes() == b"45"


def test_corrupt_archive(tmp_path, capsys):
    blob, _ = _cifar_tarball(np.random.default_rng(1))
    (tmp_path / "c.tgz").write_bytes(blob[: len(blob) // 2])  # truncated
    cfg = _config(tmp_path, {"kind": "cifar10", "path": str(tmp_path / "c.tgz"), "size": 32, "channels": 3})
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--config", str(cfg), "--dataset", "d", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a readable tar or zip archive" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".data.zarr.tmp-*"))


def test_fetched_dataset_needs_a_checksum(tmp_path):
    from wsgm.config import ConfigError, load

    with pytest.raises(ConfigError, match="sha256sum FILE"):
        load(_config(tmp_path, {"kind": "images", "url": "https://example.org/x.zip", "size": 16, "channels": 3}))
    with pytest.raises(ConfigError, match="needs url"):
        load(_config(tmp_path, {"kind": "cifar10", "size": 32, "channels": 3}))


@pytest.mark.workflow
def test_snakemake_fetches_then_converts_a_served_cifar_archive(tmp_path, monkeypatch):
    """The real workflow: the local fetch rule downloads (ensure-checked), the dataset rule converts."""
    from .helpers import make_project, snakemake

    blob, batches = _cifar_tarball(np.random.default_rng(2))
    root = make_project(tmp_path / "p")
    with serve() as server:
        server.files["/cifar-10-python.tar.gz"] = blob
        ds = {"kind": "cifar10", "url": server.url + "/cifar-10-python.tar.gz", "size": 32, "channels": 3,
              "chunk": 16, "n_test": 2, "n_floor": 2}  # a small archive: hold out 2 + 2 images
        cfg = {"datasets": {"c": ds}, "experiments": {"e": {"dataset": "c", "J": 1, "net": {"channel_mult": [1]},
                                                            "sampling": {"n_samples": 2}}}}
        (root / "bad.yaml").write_text(yaml.safe_dump({**cfg, "datasets": {"c": {**ds, "sha256": "0" * 64}}}))
        out = snakemake(root, "results/data/c/data.zarr", "--configfile", "bad.yaml", check=False)
        assert "checksum mismatch" in (root / "results/logs/fetch/c.log").read_text()
        assert not (root / "resources/c/cifar-10-python.tar.gz").exists() and "Error" in out
        (root / "good.yaml").write_text(yaml.safe_dump({**cfg, "datasets": {"c": {**ds, "md5": hashlib.md5(blob).hexdigest()}}}))
        snakemake(root, "results/data/c/data.zarr", "--configfile", "good.yaml")
    x = zarr.open_group(str(root / "results/data/c/data.zarr"), mode="r")["x"][:]
    want = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert np.allclose(x, want / 127.5 - 1, atol=1e-6)
    monkeypatch.chdir(root)  # (record paths are relative to where the pipeline ran)
    lines = []
    assert provenance.audit("results/data/c/data.zarr", out=lines.append), lines
    assert "[fetch] resources/c/cifar-10-python.tar.gz" in "\n".join(lines)
