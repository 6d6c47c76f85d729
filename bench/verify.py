"""Cost of the integrity checks on a large store: input verification and chunk checksums.

Builds a ~2 GB Zarr store of random float32 images with ``wsgm.data.store.create_array`` (chunked
along N like a decomposed store: whole images per chunk, checksummed zstd) and the same data
without chunk checksums, then measures
  - hash:   ``wsgm.provenance.content_hash`` of the store (what every stage does to each input
            before it runs), in GB/s of stored bytes,
  - decode: a full chunk-by-chunk read of every array (what training does each epoch), with
            checksums on and off, in GB/s of decoded float32.
Random data does not compress, so stored ≈ decoded bytes (the worst case for hashing). Reads
run from the page cache (the store was just written; repeats take the best), i.e. they show
the CPU cost, not the disk's. Results go to results/bench/verify.json.

    python bench/verify.py [--size-gb 2] [--workdir /tmp/wsgm-bench-verify] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsgm.data.store import create_array, open_group  # noqa: E402
from wsgm.provenance import content_hash  # noqa: E402

IMAGE, CHANNELS, CHUNK = 64, 3, 256  # 256 × 3×64×64 float32 = 12 MiB per chunk
BANDS = {"low1": (CHANNELS, IMAGE, IMAGE), "detail1": (3 * CHANNELS, IMAGE, IMAGE)}  # 1:3, as J=1


def _build(path: Path, n: int, checksum: bool) -> None:
    group = zarr.open_group(str(path), mode="w-")
    rng = np.random.default_rng(0)
    for name, shape in BANDS.items():
        if checksum:
            arr = create_array(group, name, (n, *shape), CHUNK)
        else:
            arr = group.create_array(name, shape=(n, *shape), chunks=(CHUNK, *shape), dtype="float32",
                                     fill_value=0)  # zarr's default codec: zstd level 0, no checksum
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            arr[start:stop] = rng.standard_normal((stop - start, *shape), dtype=np.float32)


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _read_all(path: Path) -> None:
    group = open_group(path, *BANDS)
    for name in BANDS:
        arr = group[name]
        for start in range(0, arr.shape[0], CHUNK):
            arr[start:start + CHUNK]


def _codec_only(repeat: int = 20) -> dict:
    """Decode throughput of the zstd codec alone on one chunk (no Zarr, no file system)."""
    import numcodecs

    raw = np.random.default_rng(1).standard_normal(CHUNK * CHANNELS * IMAGE * IMAGE, dtype=np.float32).tobytes()
    out = {}
    for _ in range(2):  # twice, interleaved; the best of each
        for checksum in (False, True):
            codec = numcodecs.Zstd(level=0, checksum=checksum)
            frame = codec.encode(raw)
            t0 = time.perf_counter()
            for _ in range(repeat):
                codec.decode(frame)
            rate = len(raw) * repeat / (time.perf_counter() - t0) / 1e9
            key = "checksum_gb_s" if checksum else "no_checksum_gb_s"
            out[key] = max(out.get(key, 0.0), rate)
    out["overhead"] = out["no_checksum_gb_s"] / out["checksum_gb_s"] - 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gb", type=float, default=2.0)
    p.add_argument("--workdir", default="/tmp/wsgm-bench-verify")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="results/bench/verify.json")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    args = p.parse_args()

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    per_image = sum(int(np.prod(s)) for s in BANDS.values()) * 4
    n = int(args.size_gb * 1e9 / per_image)
    decoded = n * per_image
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), "cpus": os.cpu_count(), "images": n,
              "decoded_gb": decoded / 1e9, "chunk_images": CHUNK, "repeat": args.repeat}
    stores = {"checksum": work / "checksum.zarr", "no_checksum": work / "no_checksum.zarr"}
    try:
        for label, store in stores.items():
            t0 = time.perf_counter()
            _build(store, n, label == "checksum")
            result[label] = {"build_s": time.perf_counter() - t0, "stored_gb": _bytes(store) / 1e9,
                             "files": sum(1 for q in store.rglob("*") if q.is_file())}
        os.sync()  # no write-back of the fresh stores during the timings
        times: dict[str, list[float]] = {label: [] for label in stores}
        for _ in range(args.repeat):  # interleaved, best of each: the same machine load for both
            for label, store in stores.items():
                times[label].append(_best(lambda: _read_all(store), 1))
        for label in stores:
            result[label] |= {"decode_s": min(times[label]), "decode_gb_s": decoded / 1e9 / min(times[label]),
                              "decode_all_s": times[label]}
        on, off = result["checksum"], result["no_checksum"]
        on["hash_s"] = _best(lambda: content_hash(stores["checksum"]), args.repeat)
        on["hash_gb_s"] = on["stored_gb"] / on["hash_s"]
        result["codec_only"] = _codec_only()
        result["checksum_decode_overhead"] = on["decode_s"] / off["decode_s"] - 1
        result["verify_vs_one_epoch"] = on["hash_s"] / on["decode_s"]
        for label in stores:
            print(label, json.dumps(result[label]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    codec = result["codec_only"]
    print(f"codec alone: {codec['checksum_gb_s']:.2f} GB/s with checksums, {codec['no_checksum_gb_s']:.2f} "
          f"without ({100 * codec['overhead']:+.1f}%)")
    print(f"hash {on['hash_gb_s']:.2f} GB/s ({on['hash_s']:.2f} s for {on['stored_gb']:.2f} GB); decode "
          f"{on['decode_gb_s']:.2f} GB/s with checksums, {off['decode_gb_s']:.2f} GB/s without "
          f"({100 * result['checksum_decode_overhead']:+.1f}%); verification = "
          f"{result['verify_vs_one_epoch']:.2f} epochs of reading -> {out}")


if __name__ == "__main__":
    main()
