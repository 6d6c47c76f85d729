"""Dataset stage speed: the φ⁴ sampler and the fetch + convert path.

  - phi4: end to end (`wsgm.data.phi4.sample`: warm-up, τ-driven burn-in, thinning) at β = 0.68 for
    L = 32, 64, 128 (one sample per chain), plus the default dataset (L = 32, n = 4096, 512 chains);
    samples/s, HMC chain-trajectories/s, τ_int, thinning, acceptance.
  - fetch + convert: a CIFAR-10-format tarball (random pixels, so gzip cannot shrink it) and a zip
    of PNGs, served from a local HTTP server on 127.0.0.1, fetched with checksum (wsgm.data.fetch)
    and converted to the dataset Zarr; MB/s of archive bytes.
Results go to results/bench/datasets.json.

    python bench/datasets.py [--threads 1] [--sizes 32 64 128] [--chains 64] [--skip-default]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import pickle
import platform
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.httpserve import serve  # noqa: E402
from wsgm.data import cifar, images, phi4  # noqa: E402
from wsgm.data.fetch import fetch  # noqa: E402


def bench_phi4(size: int, n: int, chains: int, beta: float = 0.68) -> dict:
    t0 = time.perf_counter()
    _, r = phi4.sample(beta, size, n, chains, seed=0)
    wall = time.perf_counter() - t0
    return {"L": size, "n": n, "chains": chains, "beta": beta, "wall_s": round(wall, 2),
            "samples_per_s": round(n / wall, 2), "chain_trajectories_per_s": round(r.trajectories * chains / wall, 1),
            "tau_int": round(r.tau_int, 2), "tau_window_found": r.tau_window_found, "burn_in": r.burn_in,
            "thin": r.thin, "acceptance": round(r.acceptance, 3), "step_size": round(r.step_size, 4)}


def _cifar_blob(per_batch: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = pickle.dumps({b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                                 b"labels": rng.integers(0, 10, per_batch).tolist()}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _png_zip(count: int, side: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            img = io.BytesIO()
            from PIL import Image

            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(img, "PNG")
            zf.writestr(f"imgs/{i:06d}.png", img.getvalue())
    return buf.getvalue()


def bench_fetch_convert(kind: str, blob: bytes, spec: dict, module, workdir: Path) -> dict:
    sha = hashlib.sha256(blob).hexdigest()
    with serve() as server:
        server.files["/a"] = blob
        t0 = time.perf_counter()
        fetch(server.url + "/a", workdir / f"{kind}.archive", sha256=sha, progress=False)
        t1 = time.perf_counter()
    attrs = module.convert(spec, workdir / f"{kind}.archive", workdir / f"{kind}.zarr")
    t2 = time.perf_counter()
    mb = len(blob) / 2**20
    return {"kind": kind, "archive_mb": round(mb, 1), "images": attrs["n"], "fetch_s": round(t1 - t0, 2),
            "convert_s": round(t2 - t1, 2), "fetch_mb_per_s": round(mb / (t1 - t0), 1),
            "convert_mb_per_s": round(mb / (t2 - t1), 1), "total_mb_per_s": round(mb / (t2 - t0), 1),
            "images_per_s": round(attrs["n"] / (t2 - t1), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "datasets.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), "threads": args.threads, "torch": torch.__version__, "phi4": []}
    for size in args.sizes:
        result["phi4"].append(bench_phi4(size, args.chains, args.chains))
        print(result["phi4"][-1], flush=True)
    if not args.skip_default:
        result["phi4_default"] = bench_phi4(32, 4096, 256)
        print(result["phi4_default"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = {"name": "bench", "seed": 0}
        c = {"size": 32, "channels": 3, "split": "all", "limit": 0, "chunk": 1000, "license": "", "url": ""}
        result["fetch_convert"] = [
            bench_fetch_convert("cifar10", _cifar_blob(2000), {**base, "dataset": c}, cifar, Path(tmp)),
            bench_fetch_convert("images", _png_zip(1000, 128),
                                {**base, "dataset": {"size": 64, "channels": 3, "crop": "center", "limit": 0,
                                                     "chunk": 256, "license": "", "url": ""}}, images, Path(tmp)),
        ]
        for r in result["fetch_convert"]:
            print(r, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
