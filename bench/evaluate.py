"""Evaluation cost and FID sanity on the default config's data (4096 Gaussian fields, 32×32).

Measures, in this process with 1 thread: the reference statistics (J = 2: resolutions 32, 16, 8),
one `evaluate` of 512 samples at every resolution (all default metrics: spectrum, marginal, exact
KL, FID, KID with the wsgm-fields extractor), and the FID sanity numbers (identical sets; two
shifted Gaussian feature sets, computed vs closed form). Samples are stand-ins: real fields drawn
with another seed (so the FID is the sampling-noise level) and fields with a wrong exponent.
Results go to results/bench/evaluate.json; a summary is printed.

    python bench/evaluate.py [--workdir /tmp/wsgm-bench-eval]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from wsgm import config as config_lib
from wsgm import specs
from wsgm.provenance import run_stage
from wsgm.data import gaussian
from wsgm.evaluate import evaluate
from wsgm.metrics import fid as fid_lib
from wsgm.reference import compute
from wsgm.wavelets import lowpass

REPO = Path(__file__).resolve().parents[1]


def _store(path: Path, x: np.ndarray, J: int) -> Path:
    def work(t):
        g = zarr.open_group(str(t["samples"]), mode="w-")
        for k in range(J + 1):
            g.create_array(f"x{k}", data=lowpass(torch.from_numpy(x), k, "haar").numpy())
        g.attrs.update({"J": J, "wavelet": "haar", "cost": {}})
    run_stage("sample", {"stage": "sample", "bench": True}, {}, {"samples": (path, True)}, work)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/wsgm-bench-eval")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = config_lib.load(REPO / "config" / "config.yaml")
    data = work / "data.zarr"
    dspec = specs.dataset(cfg, "gauss32")
    run_stage("dataset", dspec, {}, {"data": (data, True)}, lambda t: gaussian.simulate(dspec, t["data"]))
    out: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(), "host": platform.node(),
                 "cpu_threads": 1, "n_data": cfg["datasets"]["gauss32"]["n"]}
    ref = work / "ref.npz"
    rspec = specs.reference(cfg, "gauss32", "haar", 2)
    t0 = time.perf_counter()
    run_stage("reference", rspec, {"data": data}, {"reference": (ref, False)},
              lambda t: compute(rspec, data, t["reference"]))
    out["reference_s"] = time.perf_counter() - t0
    d = cfg["datasets"]["gauss32"]
    rng = np.random.default_rng(123)
    good = gaussian.sample(gaussian.power_spectrum(32, d["xi"], d["eta"]), 512, 1, rng)
    bad = gaussian.sample(gaussian.power_spectrum(32, d["xi"], 1.5), 512, 1, rng)
    espec = specs.evaluate(cfg, "wsgm", 8)
    for name, x in (("independent_real_fields", good), ("wrong_exponent_1.5", bad)):
        s = _store(work / f"{name}.zarr", x, 2)
        t0 = time.perf_counter()
        m = evaluate(espec, s, data, ref)
        out[name] = {"evaluate_s": time.perf_counter() - t0,
                     **{f"x{k}": {key: v["metrics"][key] for key in
                                  ("fid", "fid_data_floor", "kid", "kl_exact_per_dim", "spectrum_log_error")}
                        for k, v in m["scales"].items()}}
    fid = {"extractor": "wsgm-identity", "kid_subsets": 100, "kid_subset_size": 1000}
    x = np.random.default_rng(0).standard_normal((512, 1, 1, 8)).astype(np.float32)
    s = fid_lib.statistics(fid_lib.features(x, fid))
    out["fid_identical_sets"] = fid_lib.frechet(s, s)
    d_, n = 8, 20000
    r2 = np.random.default_rng(2)
    a = r2.standard_normal((d_, d_))
    cov1, cov2 = a @ a.T / d_ + 0.1 * np.eye(d_), np.diag(np.linspace(0.5, 2, d_))
    x1 = r2.multivariate_normal(np.zeros(d_), cov1, n).reshape(n, 1, 1, d_)
    x2 = r2.multivariate_normal(np.full(d_, 0.7), cov2, n).reshape(n, 1, 1, d_)
    s1, s2 = (fid_lib.statistics(fid_lib.features(v.astype(np.float32), fid)) for v in (x1, x2))
    out["fid_shifted_gaussians"] = {
        "computed_torch_fidelity": fid_lib.frechet(s1, s2),
        "closed_form_population": fid_lib.closed_form_frechet(np.zeros(d_), cov1, np.full(d_, 0.7), cov2),
        "closed_form_empirical_moments": fid_lib.closed_form_frechet(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"]),
        "n": n, "dim": d_}
    dest = REPO / "results" / "bench" / "evaluate.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
