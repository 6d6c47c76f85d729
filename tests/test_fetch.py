"""The fetch stage against a real local HTTP server: verified, atomic, resumable, retried."""

import hashlib
import os

import pytest

from tests.httpserve import serve
from wsgm import provenance
from wsgm.cli import main
from wsgm.data.fetch import FetchError, fetch

PAYLOAD = os.urandom(3 * 2**20 + 12345)  # a few MB so the transfer spans many reads
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with serve() as state:
        state.files["/data/archive.tar.gz"] = PAYLOAD
        yield state


def _left(folder):
    """Every file in the folder (there must be no temporaries or partial files)."""
    return sorted(p.name for p in folder.rglob("*"))


def test_good_file(server, tmp_path):
    out = tmp_path / "res" / "archive.tar.gz"
    info = fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, backoff=0)
    assert out.read_bytes() == PAYLOAD and info["sha256"] == SHA and info["md5"] == MD5
    assert _left(tmp_path / "res") == ["archive.tar.gz"]
    # already there with the right hash: not downloaded again
    fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, backoff=0)
    assert len(server.log) == 1


def test_md5_pinning(server, tmp_path):
    out = tmp_path / "a.tgz"
    assert fetch(server.url + "/data/archive.tar.gz", out, md5=MD5, backoff=0)["sha256"] == SHA


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    out = tmp_path / "archive.tar.gz"
    with pytest.raises(FetchError, match="checksum mismatch") as err:
        fetch(server.url + "/data/archive.tar.gz", out, sha256="0" * 64, backoff=0)
    assert "\n" not in str(err.value) and "sha256sum" in str(err.value)
    assert _left(tmp_path) == []


def test_truncated_transfer_resumes_with_range(server, tmp_path):
    cut = len(PAYLOAD) // 3
    server.truncate["/data/archive.tar.gz"] = [cut]
    out = tmp_path / "archive.tar.gz"
    fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, backoff=0)
    assert out.read_bytes() == PAYLOAD and _left(tmp_path) == ["archive.tar.gz"]
    (_, r1, c1), (_, r2, c2) = server.log
    assert (r1, c1) == (None, 200) and c2 == 206
    assert 0 < int(r2.removeprefix("bytes=").rstrip("-")) <= cut  # resumed, not restarted


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    out = tmp_path / "archive.tar.gz"
    (tmp_path / "archive.tar.gz.part").write_bytes(PAYLOAD[:1000])
    fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, backoff=0)
    assert out.read_bytes() == PAYLOAD and server.log == [("/data/archive.tar.gz", "bytes=1000-", 206)]
    assert _left(tmp_path) == ["archive.tar.gz"]


def test_server_error_then_retry(server, tmp_path):
    server.fail["/data/archive.tar.gz"] = [500, 503]
    out = tmp_path / "archive.tar.gz"
    fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, backoff=0)
    assert out.read_bytes() == PAYLOAD
    assert [c for *_, c in server.log] == [500, 503, 200]


def test_retries_are_bounded(server, tmp_path):
    server.fail["/data/archive.tar.gz"] = [500] * 10
    out = tmp_path / "archive.tar.gz"
    with pytest.raises(FetchError, match="after 3 attempts"):
        fetch(server.url + "/data/archive.tar.gz", out, sha256=SHA, retries=2, backoff=0)
    assert len(server.log) == 3 and not out.exists()


def test_missing_url_is_not_retried(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(server.url + "/nope.tgz", tmp_path / "x.tgz", sha256=SHA, backoff=0)
    assert len(server.log) == 1 and _left(tmp_path) == []


def test_local_path_and_file_url(tmp_path):
    src = tmp_path / "staged" / "archive.tar.gz"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    for i, source in enumerate([str(src), src.as_uri()]):
        out = tmp_path / f"res{i}" / "archive.tar.gz"
        fetch(source, out, sha256=SHA)
        assert out.read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch(str(src), tmp_path / "bad" / "a.tgz", sha256="1" * 64)
    assert _left(tmp_path / "bad") == []
    with pytest.raises(FetchError, match="no such file"):
        fetch(str(tmp_path / "absent.tgz"), tmp_path / "c.tgz", sha256=SHA)


@pytest.mark.parametrize("kwargs, message", [({}, "no checksum"), ({"sha256": "abc"}, "64 hex digits")])
def test_checksum_is_required_and_well_formed(tmp_path, kwargs, message):
    with pytest.raises(FetchError, match=message):
        fetch("http://127.0.0.1:9/x", tmp_path / "x", **kwargs)


def test_cli(server, tmp_path, capsys):
    out = tmp_path / "res" / "archive.tar.gz"
    url = server.url + "/data/archive.tar.gz"
    assert main(["fetch", "--url", url, "--sha256", "f" * 64, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists() or _left(tmp_path / "res") == []
    assert main(["fetch", "--url", url, "--sha256", SHA, "--out", str(out)]) == 0
    rec = provenance.read_record(out)
    assert rec["stage"] == "fetch" and rec["extra"]["sha256"] == SHA and rec["spec"]["url"] == url
