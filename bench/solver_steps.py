"""Steps to the paper's target (spectral error 0.1 against the continuous law from the prior, exact
theory, ``wsgm.theory``) for SGM (J = 0) and WSGM (J = log2(L/4), steps per scale) with each
solver and grid, on critical Gaussian fields (xi = L, eta = 2), VP with T = 1, eps = 1e-3 (the
``gaussian`` section of config/paper.yaml). Seconds on a laptop core; no Monte Carlo.

    python bench/solver_steps.py [--sizes 32 64 128] [--target 0.1]

Prints a Markdown table: steps (per scale for WSGM) and network evaluations per step.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsgm import sde as sde_lib  # noqa: E402
from wsgm import theory  # noqa: E402
from wsgm.solvers import REGISTRY  # noqa: E402

VP = {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}
CASES = [("em", "uniform"), ("pf_ode", "uniform"), ("heun", "uniform"), ("ddim", "uniform"), ("ddim", "logsnr"),
         ("dpmpp_2m", "uniform"), ("dpmpp_2m", "logsnr"), ("edm", "uniform"), ("edm", "karras")]


def steps_needed(models, stats, sde, sampler, grid, target, max_steps=2048):
    """Doubling sweep from 2 steps, stopped at the first count below target, log-log interpolated."""
    steps, errs, n = [], [], 2
    while n <= max_steps:
        steps.append(n)
        errs.append(theory.errors(models, stats, sde, n, sampler, grid)["spectrum"])
        if errs[-1] <= target:
            break
        n *= 2
    return theory.steps_to_target(steps, errs, target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--target", type=float, default=0.1)
    args = ap.parse_args()
    sde = sde_lib.build(VP)
    print("| L | sampler | grid | SGM steps | WSGM steps/scale | NFE/step |\n|---|---|---|---|---|---|")
    for size in args.sizes:
        J = int(math.log2(size // 4))
        fields = {j: theory.field_models(size, float(size), 2.0, j, sde) for j in (0, J)}
        for sampler, grid in CASES:
            got = [steps_needed(*fields[j], sde, sampler, grid, args.target) for j in (0, J)]
            cells = ["—" if v is None else f"{v:.0f}" for v in got]
            print(f"| {size} | {sampler} | {grid} | {cells[0]} | {cells[1]} | {REGISTRY[sampler].nfe_per_step} |",
                  flush=True)


if __name__ == "__main__":
    main()
