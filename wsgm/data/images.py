"""An image archive (zip/tar of PNG/JPEG, e.g. CelebA-HQ) or folder into the dataset Zarr.

Each image is center-cropped to a square (``crop: center``; ``crop: none`` requires square images),
resized to the configured L×L with an antialiasing filter and converted to the configured channels
(RGB or grayscale). Images smaller than L, unreadable files and modes that are not 8-bit images give
one clear error naming the file; the output is written to a temporary path, so nothing is left.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsgm.data import archive, split
from wsgm.data.store import StoreError, write_uint8_images
from wsgm.provenance import content_hash

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}


def sources(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every image file in an archive or folder (folders sorted by path)."""
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            if f.suffix.lower() in EXTENSIONS:
                yield str(f.relative_to(path)), f.read_bytes()
        return
    if not path.exists():
        raise StoreError(f"{path} does not exist. Fix: fetch it first or correct the dataset's path")
    for name, data in archive.members(path):
        if Path(name).suffix.lower() in EXTENSIONS and not Path(name).name.startswith("._"):
            yield name, data


def to_array(name: str, data: bytes, size: int, channels: int, crop: str) -> np.ndarray:
    """One image as uint8 C×L×L."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise StoreError(f"{name} is not a readable image ({exc}). Fix: remove it from the archive "
                         "or folder") from None
    if img.mode not in EIGHT_BIT_MODES:
        raise StoreError(f"{name} has image mode {img.mode!r}, not an 8-bit image (e.g. 16-bit or "
                         "float); refusing to guess its range. Fix: convert it to 8-bit PNG/JPEG")
    w, h = img.size
    if crop == "none" and w != h:
        raise StoreError(f"{name} is {w}x{h}, not square, and crop is 'none'. Fix: set crop: center")
    side = min(w, h)
    if side < size:
        raise StoreError(f"{name} is {w}x{h}, smaller than the configured size {size}; upsampling would "
                         "invent detail. Fix: lower the dataset's size or remove the small images")
    left, top = (w - side) // 2, (h - side) // 2
    img = img.convert("RGB" if channels == 3 else "L")
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def blocks(path: Path, size: int, channels: int, crop: str, limit: int, chunk: int) -> Iterator[np.ndarray]:
    buf: list[np.ndarray] = []
    count = 0
    for name, data in sources(path):
        buf.append(to_array(name, data, size, channels, crop))
        count += 1
        if len(buf) == chunk or count == limit:
            yield np.stack(buf)
            buf = []
        if count == limit:
            return
    if buf:
        yield np.stack(buf)


def convert(spec: dict, source: Path, out: Path) -> dict:
    d = spec["dataset"]
    if d["channels"] not in (1, 3):
        raise StoreError(f"dataset {spec['name']!r}: images have 1 or 3 channels, not {d['channels']}. "
                         f"Fix: set datasets.{spec['name']}.channels to 1 or 3")
    group = write_uint8_images(out, blocks(source, d["size"], d["channels"], d["crop"], d["limit"], d["chunk"]),
                               d["channels"], d["size"], d["chunk"])
    attrs = {"kind": "images", "size": d["size"], "channels": d["channels"], "n": int(group["x"].shape[0]),
             "crop": d["crop"], "source": d.get("url") or str(source), "license": d["license"],
             "source_sha256": content_hash(source)}
    attrs["split"] = split.layout(int(group["x"].shape[0]), d["n_test"], d["n_floor"], spec["name"])
    group.attrs.update(attrs)
    return attrs
