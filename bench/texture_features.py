"""Does a feature space see geometry? Real texture crops against their IAAFT surrogates.

For each texture (scikit-image's bundled grass, gravel, brick photographs, no download), three
disjoint sets of N random 32×32 crops A, B, C (x_0, values in [-1, 1]) and their Haar low-passes
x_1 (16×16), x_2 (8×8) — the resolutions of the default cascade, unscaled as evaluate feeds them;
surrogates of C at each resolution keep its spectrum and marginal and randomize its phases
(:mod:`wsgm.metrics.surrogates`, IAAFT). In each space (portilla-simoncelli, wsgm-fields) this
reports Fréchet(A, B) (real vs real: the estimation floor), Fréchet(A, surrogates) and their
ratio, the separation. Plus each extractor's throughput (images/s, CPU, float32 input, batches of
256 as ``fid.features`` runs it) on 512 images at 32×32 and 8×8.

Writes results/bench/texture_features.json and prints a Markdown table.

    python bench/texture_features.py [--n 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsgm import wavelets  # noqa: E402
from wsgm.metrics import fid as fid_lib  # noqa: E402
from wsgm.metrics import sample_sizes as sizes  # noqa: E402
from wsgm.metrics import surrogates as su  # noqa: E402
from wsgm.metrics import texture  # noqa: E402

SPACES = (fid_lib.TEXTURE, fid_lib.FIELDS)
TEXTURES = ("grass", "gravel", "brick")


def lowpass(x: np.ndarray, level: int) -> np.ndarray:
    t = torch.as_tensor(x)
    for _ in range(level):
        t, _ = wavelets.dwt2(t, "haar")
    return t.numpy()


def throughput(space: str, side: int, n: int = 512, repeats: int = 2) -> float:
    x = torch.randn(n, 1, side, side)
    fid_lib.features(x[:8], {"extractor": space})  # build the pyramid once
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fid_lib.features(x, {"extractor": space})
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="crops per set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/bench/texture_features.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name in TEXTURES:
        image, rng = su.texture(name), np.random.default_rng(0)
        a, b, c = (su.random_crops(image, args.n, 32, rng) for _ in range(3))
        for level in range(3):
            ra, rb, rc = (lowpass(v, level) for v in (a, b, c))
            sur = su.surrogates(rc, rng)
            row = {"texture": name, "level": level, "side": ra.shape[-1], "n": args.n}
            for space in SPACES:
                stats = [fid_lib.statistics(fid_lib.features(v.astype(np.float32), {"extractor": space}))
                         for v in (ra, rb, sur)]
                rr, rs = fid_lib.frechet(stats[0], stats[1]), fid_lib.frechet(stats[0], stats[2])
                row[space] = {"dim": int(stats[0]["mu"].shape[0]), "real_real": rr, "real_surrogate": rs,
                              "separation": rs / rr}
            rows.append(row)
            print(json.dumps(row), flush=True)

    speed = {space: {str(side): throughput(space, side) for side in (32, 8)} for space in SPACES}
    out = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": args.threads, "torch": torch.__version__,
                    "plenoptic": texture.plenoptic_version()},
        "surrogates": f"IAAFT, {su.IAAFT_ITERATIONS} iterations (wsgm.metrics.surrogates)",
        "ps_geometry": {str(s): list(sizes.ps_geometry(s)) + [sizes.ps_dim(s)] for s in (8, 16, 32, 64, 128, 256)},
        "separation": rows,
        "throughput_images_per_s": speed,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")

    print(f"\n| texture | side | PS real-real | PS real-surr | PS ratio | fields real-real | fields real-surr "
          f"| fields ratio |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, f = r[fid_lib.TEXTURE], r[fid_lib.FIELDS]
        print(f"| {r['texture']} | {r['side']} | {p['real_real']:.3g} | {p['real_surrogate']:.3g} | "
              f"{p['separation']:.1f} | {f['real_real']:.3g} | {f['real_surrogate']:.3g} | {f['separation']:.1f} |")
    print("\nthroughput (images/s):", json.dumps(speed))


if __name__ == "__main__":
    main()
