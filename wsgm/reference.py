"""Reference statistics of the real data at every resolution (``wsgm reference``, one .npz).

For k = 0..J (the resolutions a cascade with this wavelet produces) the data's level-k low-pass is
summarized once, from the dataset's held-out reference rows (:mod:`wsgm.data.split`): FID features (mean, covariance and the features themselves, for KID), the
radially averaged and per-frequency power spectra, pixel quantiles, and the exact spectrum where
the dataset stores one, and for φ⁴ datasets (``spec["physics"]["beta"]``) the distributions of
energy per site and magnetization (:mod:`wsgm.metrics.phi4`). The data is streamed chunk by chunk; at most ``fid.n_reference`` images
are used. The extractor's identity is stored so evaluation refuses a mismatched reference.
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wsgm import wavelets
from wsgm.data import split
from wsgm.data.store import StoreError, open_group
from wsgm.metrics import fid as fid_lib
from wsgm.metrics import phi4 as phi4_lib
from wsgm.metrics.gaussian import lowpass_spectrum
from wsgm.metrics.marginal import quantiles
from wsgm.metrics.sample_sizes import ps_side_ok
from wsgm.metrics.spectrum import radial_average

log = logging.getLogger("wsgm.reference")
PIXELS_PER_IMAGE = 4096  # pixel values kept per image for the quantiles


def compute(spec: dict, data: Path, out: Path, device: torch.device | str = "cpu") -> dict:
    J, wavelet, fid = spec["J"], spec["wavelet"], spec["fid"]
    beta = spec.get("physics", {}).get("beta")
    group = open_group(data, "x")
    x = group["x"]
    rows = split.rows(group, "reference", data)  # held out: neither trained on nor used by a floor
    n = min(rows.stop - rows.start, fid["n_reference"])
    step = x.chunks[0]
    identity = fid_lib.extractor_identity(fid)
    feats: dict[int, list] = {k: [] for k in range(J + 1)}
    power: dict[int, np.ndarray] = {}
    pixels: dict[int, list] = {k: [] for k in range(J + 1)}
    obs: dict[int, list] = {k: [] for k in range(J + 1)}
    texture = bool(spec.get("texture"))
    tex: dict[int, list] = {k: [] for k in range(J + 1)}
    bar = tqdm(total=n, desc="reference", unit="img", disable=not sys.stderr.isatty())
    for start in range(0, n, step):
        block = torch.from_numpy(np.asarray(x[rows.start + start:rows.start + min(n, start + step)])).to(device)
        if not torch.isfinite(block).all():
            raise StoreError(f"{data}: images {rows.start + start}..{rows.start + start + len(block)} contain NaN/inf. "
                             "Fix: regenerate or clean the dataset")
        for k in range(J + 1):
            low = wavelets.lowpass(block, k, wavelet).to(torch.float64)
            feats[k].append(fid_lib.features(low, fid, device, level=k))
            if texture and ps_side_ok(low.shape[-1]):
                tex[k].append(fid_lib.features(low, {"extractor": fid_lib.TEXTURE}, device, level=k))
            p = (torch.fft.fft2(low).abs() ** 2).sum(dim=(0, 1)).cpu().numpy()
            power[k] = power.get(k, 0) + p / (low.shape[-1] * low.shape[-2] * low.shape[1])
            flat = low.reshape(len(low), -1)
            stride = max(1, flat.shape[1] // PIXELS_PER_IMAGE)
            pixels[k].append(flat[:, ::stride].cpu().numpy().ravel())
            if beta is not None:
                obs[k].append(phi4_lib.observables(low.cpu(), beta, k))
        bar.update(len(block))
        log.info("reference: %d/%d images", min(n, start + step), n)
    bar.close()
    arrays: dict[str, np.ndarray] = {}
    exact = np.asarray(group["spectrum"][:]) if "spectrum" in group else None
    for k in range(J + 1):
        f = torch.cat(feats[k])
        stats = fid_lib.statistics(f)
        p2d = power[k] / n
        arrays |= {f"features{k}": f.numpy().astype(np.float32), f"mu{k}": stats["mu"],
                   f"sigma{k}": np.atleast_2d(stats["sigma"]), f"power2d{k}": p2d,
                   f"power{k}": radial_average(p2d), f"quantiles{k}": quantiles(np.concatenate(pixels[k]))}
        if tex[k]:
            t = fid_lib.statistics(torch.cat(tex[k]))
            arrays |= {f"texture_mu{k}": t["mu"], f"texture_sigma{k}": np.atleast_2d(t["sigma"])}
        if exact is not None:
            arrays[f"exact2d{k}"] = lowpass_spectrum(exact, k, wavelet)
        if beta is not None:
            e, m = (np.concatenate(a) for a in zip(*obs[k]))
            arrays |= {f"{name}{k}": v for name, v in phi4_lib.summarize(e, m, beta, k).items()}
    meta = {"extractor": identity, "n": n, "J": J, "wavelet": wavelet, "dataset": spec["dataset"],
            "part": "reference", "rows": [rows.start, rows.start + n],
            "texture_extractor": fid_lib.extractor_identity({"extractor": fid_lib.TEXTURE}) if texture else None,
            "feature_dim": int(arrays["features0"].shape[1])}
    with open(out, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return meta


REQUIRED = ("features", "mu", "sigma", "power2d", "power", "quantiles")  # written at every level
OPTIONAL = ("texture_mu", "texture_sigma", "exact2d", "phi4", "energy", "magnetization", "phi4_moments", "phi4_m")


class ReferenceFileError(StoreError):
    """A reference statistics file that cannot be read (truncated, corrupt, incomplete)."""


def load(path: Path) -> tuple[dict, dict[int, dict]]:
    """(meta, {k: level dict}) of a reference file; a damaged or incomplete one is one
    :class:`ReferenceFileError` naming it and the fix (delete it and its record, rerun)."""
    from wsgm.errors import damaged

    path = Path(path)

    def error(reason: str) -> ReferenceFileError:
        return ReferenceFileError(damaged(path, f"is not a readable reference statistics file ({reason})",
                                      "rerun `snakemake` (or `wsgm reference`), which recomputes it"))

    if not path.is_file():
        raise ReferenceFileError(f"reference statistics file {path} does not exist. Fix: rerun `snakemake` "
                             "(or `wsgm reference`), which computes it")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise error("a bare .npy array, not the .npz `wsgm reference` writes")
        with npz:
            meta = json.loads(str(npz["meta"]))
            if not isinstance(meta, dict) or not isinstance(meta.get("J"), int):
                raise error("its meta entry is not the one `wsgm reference` writes")
            levels = {}
            for k in range(meta["J"] + 1):
                missing = [f"{name}{k}" for name in REQUIRED if f"{name}{k}" not in npz]
                if missing:
                    raise error(f"incomplete: no {', '.join(missing)}")
                levels[k] = {name: npz[f"{name}{k}"] for name in REQUIRED + OPTIONAL if f"{name}{k}" in npz}
    except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile,
            zlib.error) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        if isinstance(exc, KeyError):
            reason = f"no entry {reason}"
        raise error(f"truncated or corrupt: {reason}") from None
    return meta, levels
