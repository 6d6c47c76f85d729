"""Verified downloads: a URL, local path or ``file://`` URL to one file, checksum-pinned, atomic.

pooch does the checksum, the temporary file and the final atomic move (``pooch.retrieve``: a file
whose hash does not match is deleted, never moved into place; an existing file with the right hash
is not downloaded again). What pooch lacks is written here, small: resuming a partial download
(HTTP ``Range`` on a persistent ``<out>.part``, kept across failed attempts and reruns), bounded
retries with exponential back-off, and local sources for clusters that stage data by hand.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pooch
import requests
from tqdm import tqdm

from wsgm.errors import UserError

log = logging.getLogger(__name__)

HASH_LENGTHS = {"sha256": 64, "md5": 32}
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class FetchError(UserError, RuntimeError):
    """A download failed or its checksum did not match; the message names cause and fix."""


def known_hash(sha256: str | None = None, md5: str | None = None) -> str:
    """pooch's ``alg:hex`` form of the pinned checksum (sha256 preferred)."""
    for alg, value in (("sha256", sha256), ("md5", md5)):
        if value:
            value = value.strip().lower().removeprefix(f"{alg}:")
            if not re.fullmatch(f"[0-9a-f]{{{HASH_LENGTHS[alg]}}}", value):
                raise FetchError(f"{alg} {value!r} is not {HASH_LENGTHS[alg]} hex digits. Fix: copy "
                                 f"the published checksum, or compute it with `{alg}sum FILE`")
            return f"{alg}:{value}"
    raise FetchError("no checksum given: every download is pinned. Fix: pass the published sha256 "
                     "(or md5), or compute it on a trusted copy with `sha256sum FILE`")


def local_source(source: str) -> Path | None:
    """The local file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise FetchError(f"{source}: unsupported URL scheme {parsed.scheme!r}. Fix: use an "
                         "http(s):// or file:// URL, or a local path")
    return Path(source)


def part_path(out: Path) -> Path:
    return out.with_name(out.name + ".part")


class ResumingDownloader:
    """A pooch downloader that resumes ``<out>.part`` with HTTP Range and retries with back-off."""

    def __init__(self, part: Path, retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
                 progress: bool | None = None, chunk: int = 1 << 16) -> None:
        self.part, self.retries, self.backoff, self.timeout = part, retries, backoff, timeout
        self.progress, self.chunk = progress, chunk

    def __call__(self, url: str, output_file: str, _pooch=None) -> None:
        for attempt in range(self.retries + 1):
            try:
                if self._attempt(url):
                    os.replace(self.part, output_file)
                    return
                error = "the transfer ended early"
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    _Retryable) as exc:
                error = str(exc)
            if attempt == self.retries:
                break
            wait = self.backoff * 2**attempt
            log.warning("download of %s failed (%s); retry %d/%d in %.1fs, resuming from %d bytes",
                        url, error, attempt + 1, self.retries, wait, self._have())
            time.sleep(wait)
        raise FetchError(f"could not download {url} after {self.retries + 1} attempts ({error}). The "
                         f"partial file {self.part} is kept: rerun to resume, or stage the file by "
                         "hand and give its local path")

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _attempt(self, url: str) -> bool:
        """One request; True when ``part`` holds the whole file."""
        have = self._have()
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416:  # nothing left to send: complete, or a stale part
                total = r.headers.get("Content-Range", "").rpartition("/")[2]
                if total.isdigit() and int(total) == have:
                    return True
                self.part.unlink(missing_ok=True)
                raise _Retryable("stale partial file discarded")
            if r.status_code in RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {r.status_code}")
            if r.status_code >= 400:
                raise FetchError(f"{url}: HTTP {r.status_code} {r.reason}. Fix: check the URL")
            if r.status_code == 206:
                mode, total = "ab", int(r.headers.get("Content-Range", "/0").rpartition("/")[2] or 0)
            else:  # the server ignored Range: start over
                mode, have, total = "wb", 0, int(r.headers.get("Content-Length", 0))
            quiet = None if self.progress is None else not self.progress  # None: only on a tty
            with open(self.part, mode) as f, tqdm(total=total or None, initial=have, unit="B", unit_scale=True,
                                                  disable=quiet, desc=self.part.name[:-5]) as bar:
                for block in r.iter_content(self.chunk):
                    f.write(block)
                    bar.update(len(block))
        return not total or self._have() == total


class _Retryable(Exception):
    pass


def _copier(source: Path):
    def copy(_url: str, output_file: str, _pooch=None) -> None:
        shutil.copyfile(source, output_file)
    return copy


def fetch(source: str, out: str | Path, sha256: str | None = None, md5: str | None = None,
          retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
          progress: bool | None = None) -> dict:
    """Put the file at ``source`` (http(s) URL, file:// URL or path) at ``out``, verified.

    Returns {'source', 'bytes', 'sha256', 'md5'}. Raises FetchError with nothing left at ``out``.
    """
    out = Path(out)
    pinned = known_hash(sha256, md5)
    local = local_source(source)
    if local is not None:
        if not local.is_file():
            raise FetchError(f"{source}: no such file. Fix: correct the path, or stage the file there")
        url, downloader = local.resolve().as_uri(), _copier(local)
    else:
        url = source
        downloader = ResumingDownloader(part_path(out), retries, backoff, timeout, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(url, known_hash=pinned, fname=out.name, path=out.parent, downloader=downloader)
    except ValueError as exc:  # pooch: hash mismatch (the temporary file is already deleted)
        part_path(out).unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        raise FetchError(f"checksum mismatch for {source}: {' '.join(str(exc).split())} Nothing was "
                         "kept. Fix: check the URL; if the file really changed, pin its published "
                         "checksum (or `sha256sum FILE` of a copy you trust)") from None
    except OSError as exc:
        raise FetchError(f"could not write {out}: {exc}") from None
    return {"source": source, "bytes": out.stat().st_size, "sha256": pooch.file_hash(str(out), "sha256"),
            "md5": pooch.file_hash(str(out), "md5")}
