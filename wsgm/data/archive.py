"""Archives (tar, tar.gz/bz2/xz, zip) read or extracted safely.

Every member is checked before it is read (callers write into a temporary folder, so a refused
member leaves nothing behind): absolute paths, ``..`` components, symbolic and
hard links, devices and FIFOs are refused (a member that could write or point outside the target
folder is a sign of a broken or malicious archive), and a corrupt archive gives one clear error.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from wsgm.atomic import atomic_path
from wsgm.data.store import StoreError


class ArchiveError(StoreError):
    """An archive is corrupt, of an unknown format or holds an unsafe member."""


_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError)


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if not path.parts or path.is_absolute() or re.match("[A-Za-z]:", path.parts[0]):
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to read an "
                           "archive that could write outside its folder. Fix: use a trusted archive")
    if ".." in path.parts:
        raise ArchiveError(f"{archive}: member {name!r} climbs out of the target with '..'; refusing "
                           "it. Fix: use a trusted archive")


def _check_tar(archive: Path, member: tarfile.TarInfo) -> None:
    _check_name(archive, member.name)
    if member.issym() or member.islnk():
        raise ArchiveError(f"{archive}: member {member.name!r} is a link (to {member.linkname!r}); links "
                           "are refused because they can point outside the target. Fix: use an "
                           "archive of plain files")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"{archive}: member {member.name!r} is a device or FIFO; refused")


def _check_zip(archive: Path, info: zipfile.ZipInfo) -> None:
    _check_name(archive, info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; links are refused "
                           "because they can point outside the target. Fix: use an archive of plain files")


def _corrupt(archive: Path, exc: Exception) -> ArchiveError:
    return ArchiveError(f"{archive} is not a readable tar or zip archive ({type(exc).__name__}: {exc}). "
                        "Fix: delete it and fetch it again (or check that it is the right file)")


def is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def members(archive: str | Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every regular file in archive order (one streaming pass, one member in
    memory at a time); raises ArchiveError at the first unsafe member or corrupt block."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_zip(archive, info)
                for info in infos:
                    if not info.is_dir():
                        yield info.filename, zf.read(info)  # (checks each member's CRC)
            return
        with tarfile.open(archive, "r|*") as tf:
            for info in tf:
                _check_tar(archive, info)
                if info.isfile():
                    yield info.name, tf.extractfile(info).read()
    except ArchiveError:
        raise
    except _CORRUPT as exc:
        raise _corrupt(archive, exc) from None


def extract(archive: str | Path, target: str | Path) -> Path:
    """Extract every member into ``target`` (a fresh folder, written atomically)."""
    archive, target = Path(archive), Path(target)
    with atomic_path(target, directory=True) as tmp:
        tmp.mkdir()
        for name, data in members(archive):
            dest = tmp / PurePosixPath(name.replace("\\", "/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    return target
