"""Random crops of the photographs that scikit-image ships inside its package (no download).

The photographs (``PHOTOS``) are read from the files bundled in the installed scikit-image
(``skimage/data/``), each checked against the sha256 scikit-image's own registry pins, so the
data cannot silently differ between installs and nothing is ever fetched (several ``skimage.data``
images are downloaded by pooch on first use: those are excluded, see ``NEEDS_DOWNLOAD``).
Only photographs are used, not the synthetic images and textures the package ships as well
(``EXCLUDED`` says why each is left out).

Each photo is downscaled by ``downscale`` (Lanczos, antialiased: at factor 2 a 32×32 crop of the
512×512 astronaut holds a face or a flag, not a patch of skin), converted to RGB or to luminance
(``channels``: 3 uses the colour photographs only, 1 uses all, the colour ones as PIL's ITU-R 601
luma) and cut along its longer side into three disjoint regions:

    train      [0, A - 2b)      the first part of the long side
    reference  [A - 2b, A - b)  a band of b = round(held_out · A) pixels
    floor      [A - b, A)       the last band of b pixels

(A = the long side after downscaling; the short side is whole in every region.) The n training
crops come from the train regions, the n_test reference crops from the reference regions and the
n_floor floor crops from the floor regions, so no held-out crop shares a pixel with a training
crop, nor a reference crop with a floor crop: crops never cross a region's border. Each crop picks
a photo uniformly, a position uniformly within that photo's region, then flips (``flips``:
horizontal = left-right with probability 1/2; both = also upside-down with probability 1/2; none).
Every draw comes from the seed (one stream per part), so a store is reproducible, and the train
crops do not change when n_test or n_floor do. Values are x = u/127.5 − 1 in [-1, 1] as for the
image kinds. The store holds ``crops`` (N×5 int32: photo index, top, left, left-right flip,
upside-down flip, in the downscaled photo's pixels) beside ``x``; its attrs name the photos, their
regions and the scikit-image version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from wsgm.data import split
from wsgm.data.store import StoreError, save_array, write_uint8_images
from wsgm.runtime import derive_seed

# skimage.data name → (file in skimage/data/, colour). Photographs of real scenes taken with a
# camera, a telescope (hubble_deep_field), a fundus camera (retina) or a brightfield microscope
# (immunohistochemistry), bundled in the wheel.
PHOTOS = {
    "astronaut": ("astronaut.png", True),
    "camera": ("camera.png", False),
    "chelsea": ("chelsea.png", True),
    "coffee": ("coffee.png", True),
    "coins": ("coins.png", False),
    "hubble_deep_field": ("hubble_deep_field.jpg", True),
    "immunohistochemistry": ("ihc.png", True),
    "moon": ("moon.png", False),
    "motorcycle_left": ("motorcycle_left.png", True),
    "motorcycle_right": ("motorcycle_right.png", True),
    "retina": ("retina.jpg", True),
    "rocket": ("rocket.jpg", True),
}
# Bundled images that are not used, and why.
EXCLUDED = {
    "brick": "texture", "grass": "texture", "gravel": "texture",
    "checkerboard": "synthetic", "colorwheel": "synthetic", "binary_blobs": "synthetic",
    "shepp_logan_phantom": "synthetic", "logo": "graphic", "horse": "binary silhouette",
    "text": "graphic (text)", "page": "scanned text page",
    "clock": "photograph deliberately motion-blurred (a deblurring test image)",
    "cell": "quantitative phase image reconstructed from a hologram, not a photograph",
    "microaneurysms": "102×102 crop of a retinal image",
    "lfw_subset": "25×25 face crops, smaller than the crops",
}
# skimage.data images downloaded by pooch on first use (not in the wheel): never used here.
NEEDS_DOWNLOAD = ("eagle", "brain", "cells3d", "human_mitosis", "kidney", "lily", "nickel_solidification",
                  "palisades_of_vogt", "protein_transport", "skin", "vortex")
FLIPS = ("horizontal", "both", "none")


def data_dir() -> Path:
    """skimage/data/ of the installed scikit-image, found without importing it."""
    found = importlib.util.find_spec("skimage")
    if found is None or not found.submodule_search_locations:
        raise StoreError("scikit-image is not installed. Fix: pip install -r requirements.txt")
    return Path(list(found.submodule_search_locations)[0]) / "data"


def skimage_version() -> str:
    return importlib.metadata.version("scikit-image")


def names(ds: dict) -> list[str]:
    """The photographs a dataset uses: its ``photos`` list, or every photograph (colour ones only for
    channels 3), in PHOTOS order."""
    chosen = ds.get("photos") or [p for p, (_, colour) in PHOTOS.items() if colour or ds["channels"] == 1]
    return [p for p in PHOTOS if p in chosen]


def source_size(name: str) -> tuple[int, int]:
    """(width, height) of a bundled photograph, from its header."""
    with Image.open(data_dir() / PHOTOS[name][0]) as img:
        return img.size


def scaled_size(size: tuple[int, int], downscale: float) -> tuple[int, int]:
    w, h = size
    return max(1, round(w / downscale)), max(1, round(h / downscale))


def regions(width: int, height: int, held_out: float) -> dict[str, list[int]]:
    """{part: [top, left, bottom, right)} of one downscaled photo: three bands along its long side."""
    long = max(width, height)
    b = round(held_out * long)
    cuts = {"train": (0, long - 2 * b), "reference": (long - 2 * b, long - b), "floor": (long - b, long)}
    if width >= height:
        return {p: [0, a, height, z] for p, (a, z) in cuts.items()}
    return {p: [a, 0, z, width] for p, (a, z) in cuts.items()}


def problems(ds: dict) -> list[str]:
    """Why the dataset cannot be cut (gray photographs with channels 3, a region narrower than a
    crop); empty when it can. Read from the files' headers: cheap enough for config checks."""
    out = []
    if ds["channels"] not in (1, 3):
        out.append(f"channels must be 1 (luminance) or 3 (RGB), not {ds['channels']}")
        return out
    gray = [p for p in names(ds) if not PHOTOS[p][1]]
    if ds["channels"] == 3 and gray:
        out.append(f"{gray} are grayscale photographs and channels is 3")
    if not names(ds):
        out.append("no photographs are selected")
    for p in names(ds):
        w, h = scaled_size(source_size(p), ds["downscale"])
        for part, (top, left, bottom, right) in regions(w, h, ds["held_out"]).items():
            if min(bottom - top, right - left) < ds["size"]:
                out.append(f"the {part} region of {p} ({right - left}x{bottom - top} of its {w}x{h} pixels "
                           f"after downscale {ds['downscale']}) is smaller than a {ds['size']}x{ds['size']} crop")
    return out


def load(name: str, channels: int, downscale: float) -> np.ndarray:
    """One photograph as uint8 C×H×W, downscaled; its file checked against scikit-image's registry."""
    from skimage.data._registry import registry

    filename, _ = PHOTOS[name]
    path = data_dir() / filename
    if not path.is_file():
        raise StoreError(f"{path} is missing from the installed scikit-image {skimage_version()}. "
                         "Fix: reinstall it (pip install --force-reinstall -r requirements.txt)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if registry.get(f"data/{filename}") != digest:
        raise StoreError(f"{path} has sha256 {digest}, not the one scikit-image pins for it. Fix: reinstall "
                         "scikit-image (pip install --force-reinstall -r requirements.txt)")
    with Image.open(path) as img:
        img = img.convert("RGB" if channels == 3 else "L")
        size = scaled_size(img.size, downscale)
        if size != img.size:
            img = img.resize(size, Image.Resampling.LANCZOS)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def draw(ds: dict, boxes: list[dict], part: str, k: int, seed: int) -> np.ndarray:
    """k crops of one part as int32 k×5 rows (photo, top, left, left-right flip, upside-down flip)."""
    rng = np.random.default_rng(seed)
    size = ds["size"]
    photo = rng.integers(len(boxes), size=k)
    u = rng.random((k, 2))
    flips = rng.integers(2, size=(k, 2))
    if ds["flips"] == "none":
        flips[:] = 0
    elif ds["flips"] == "horizontal":
        flips[:, 1] = 0
    out = np.zeros((k, 5), dtype=np.int32)
    for i in range(k):
        top, left, bottom, right = boxes[photo[i]][part]
        rows, cols = bottom - top - size + 1, right - left - size + 1
        out[i] = (photo[i], top + int(u[i, 0] * rows), left + int(u[i, 1] * cols), *flips[i])
    return out


def cut(images: list[np.ndarray], crops: np.ndarray, size: int, chunk: int):
    """uint8 blocks of the crops, ``chunk`` at a time."""
    for start in range(0, len(crops), chunk):
        block = []
        for photo, top, left, lr, ud in crops[start:start + chunk]:
            c = images[photo][:, top:top + size, left:left + size]
            if lr:
                c = c[:, :, ::-1]
            if ud:
                c = c[:, ::-1, :]
            block.append(c)
        yield np.ascontiguousarray(np.stack(block))


def simulate(spec: dict, out: Path) -> dict:
    """Write the dataset store at ``out`` (a fresh path); returns attrs for the record."""
    d, name = spec["dataset"], spec["name"]
    if why := problems(d):
        raise StoreError(f"dataset {name!r}: " + "; ".join(why) + ". Fix: lower downscale or held_out, "
                         "a smaller size, or leave those photographs out (photos)")
    used = names(d)
    images = [load(p, d["channels"], d["downscale"]) for p in used]
    boxes = [regions(img.shape[2], img.shape[1], d["held_out"]) for img in images]
    counts = {"train": d["n"], "reference": d["n_test"], "floor": d["n_floor"]}
    crops = np.concatenate([draw(d, boxes, part, counts[part], derive_seed(spec["seed"], "dataset", name, part))
                            for part in split.PARTS])
    group = write_uint8_images(out, cut(images, crops, d["size"], d["chunk"]), d["channels"], d["size"], d["chunk"])
    save_array(group, "crops", crops)
    attrs = {"kind": "photos", "size": d["size"], "channels": d["channels"], "n": int(len(crops)),
             "downscale": d["downscale"], "held_out": d["held_out"], "flips": d["flips"],
             "source": f"scikit-image {skimage_version()} bundled photographs (skimage.data)",
             "skimage_version": skimage_version(),
             "photos": [{"name": p, "file": PHOTOS[p][0], "size": [int(img.shape[2]), int(img.shape[1])],
                         "regions": box} for p, img, box in zip(used, images, boxes)],
             "crops": "crops: N×5 int32 (photo index, top, left, left-right flip, upside-down flip) in "
                      "the downscaled photo's pixels; regions are [top, left, bottom, right)"}
    attrs["split"] = split.layout(int(group["x"].shape[0]), d["n_test"], d["n_floor"], name)
    group.attrs.update(attrs)
    return attrs
