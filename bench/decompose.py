"""Out-of-core wavelet decomposition: peak memory and throughput against dataset size.

For each size (default 2 and 8 GB of float32 64×64 images) this writes a synthetic dataset Zarr,
then measures, each in a fresh process (wall time and peak RSS from os.wait4):
  - copy:      Dask read + write of the same Zarr (the machine's read+write limit here),
  - decompose: `python -m wsgm decompose` (Dask, haar, J levels, stats in the same pass),
  - naive:     a single-process loop calling pywt.wavedec2 image by image, written per chunk.
Results go to results/bench/decompose.json; a Markdown table is printed.

    python bench/decompose.py [--sizes-gb 2 8] [--workdir /tmp/wsgm-bench] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

IMAGE = 64
CHUNK = 1024  # images per chunk: 16 MiB of float32


def _measure(cmd: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed:\n{err[-2000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def worker(mode: str, src: str, dst: str, levels: int, threads: int) -> None:
    import dask
    import dask.array as da
    import numpy as np
    import zarr

    if mode == "make":
        n = int(dst)
        group = zarr.open_group(src, mode="w")
        arr = group.create_array("x", shape=(n, 1, IMAGE, IMAGE), chunks=(CHUNK, 1, IMAGE, IMAGE),
                                 dtype="float32")
        x = da.random.default_rng(0).standard_normal((n, 1, IMAGE, IMAGE), chunks=(CHUNK, 1, IMAGE, IMAGE),
                                                      dtype=np.float32)
        with dask.config.set(scheduler="threads", num_workers=threads):
            da.to_zarr(x, arr)
    elif mode == "copy":
        x = zarr.open_group(src, mode="r")["x"]
        out = zarr.open_group(dst, mode="w").create_array("x", shape=x.shape, chunks=x.chunks, dtype=x.dtype)
        with dask.config.set(scheduler="threads", num_workers=threads):
            da.to_zarr(da.from_zarr(x), out)
    elif mode == "naive":
        import pywt

        x = zarr.open_group(src, mode="r")["x"]
        group = zarr.open_group(dst, mode="w")
        shapes = {f"detail{k}": (3, IMAGE >> k) for k in range(1, levels + 1)} | {f"low{levels}": (1, IMAGE >> levels)}
        outs = {name: group.create_array(name, shape=(x.shape[0], c, s, s), chunks=(CHUNK, c, s, s),
                                         dtype="float32") for name, (c, s) in shapes.items()}
        for start in range(0, x.shape[0], CHUNK):
            block = x[start:start + CHUNK]
            bufs = {name: np.empty((len(block), c, s, s), np.float32) for name, (c, s) in shapes.items()}
            for i, img in enumerate(block[:, 0]):
                coeffs = pywt.wavedec2(img, "haar", mode="periodization", level=levels)
                bufs[f"low{levels}"][i, 0] = coeffs[0]
                for k, bands in zip(range(levels, 0, -1), coeffs[1:]):
                    bufs[f"detail{k}"][i] = np.stack(bands)
            for name, buf in bufs.items():
                outs[name][start:start + len(block)] = buf


def _record(data: Path) -> None:
    """A real provenance record for the synthetic dataset (the decompose stage verifies its input
    against it, as it does in the pipeline)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from wsgm.provenance import Stage

    Stage("dataset", {"stage": "dataset", "bench": "synthetic"}, {}).finish(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[2, 8])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--workdir", default="/tmp/wsgm-bench")
    parser.add_argument("--out", default="results/bench/decompose.json")
    parser.add_argument("--skip-naive-above-gb", type=float, default=100.0)
    args = parser.parse_args()
    work = Path(args.workdir)
    me = [sys.executable, __file__, "--worker"]
    rows = []
    for gb in args.sizes_gb:
        n = int(gb * 2**30 / (IMAGE * IMAGE * 4)) // CHUNK * CHUNK
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        data = work / "data.zarr"
        _measure([*me, "make", str(data), str(n), str(args.levels), str(args.threads)])
        _record(data)
        row = {"size_gb": n * IMAGE * IMAGE * 4 / 2**30, "images": n, "image": IMAGE, "levels": args.levels}
        mb = n * IMAGE * IMAGE * 4 / 2**20
        runs = {
            "copy": [*me, "copy", str(data), str(work / "copy.zarr"), str(args.levels), str(args.threads)],
            "decompose": [sys.executable, "-m", "wsgm", "decompose", "--threads", str(args.threads),
                          "--spec", json.dumps({"stage": "decompose", "wavelet": "haar", "J": args.levels,
                                                "code": "bench"}),
                          "--data", str(data), "--out", str(work / "wsgm.zarr")],
        }
        if gb <= args.skip_naive_above_gb:
            runs["naive"] = [*me, "naive", str(data), str(work / "naive.zarr"), str(args.levels), "1"]
        for name, cmd in runs.items():
            m = _measure(cmd)
            row[name] = {**m, "mb_per_s": mb / m["wall_s"], "images_per_s": n / m["wall_s"]}
            shutil.rmtree(work / f"{'wsgm' if name == 'decompose' else name}.zarr", ignore_errors=True)
            print(f"{gb} GB {name}: {m['wall_s']:.1f} s, {mb / m['wall_s']:.0f} MB/s, "
                  f"peak RSS {m['peak_rss_mb']:.0f} MB", flush=True)
        row["decompose_vs_copy_time"] = row["decompose"]["wall_s"] / row["copy"]["wall_s"]
        rows.append(row)
    shutil.rmtree(work, ignore_errors=True)
    result = {"machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})",
              "date": dt.date.today().isoformat(), "threads": args.threads, "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| dataset | method | wall (s) | MB/s | images/s | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for row in rows:
        for name in ("copy", "decompose", "naive"):
            if name in row:
                r = row[name]
                print(f"| {row['size_gb']:.1f} GB | {name} | {r['wall_s']:.1f} | {r['mb_per_s']:.0f} | "
                      f"{r['images_per_s']:.0f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
