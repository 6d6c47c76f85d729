"""Optimal per-scale steps of WSGM against equal steps at the same sampling budget, exactly.

Critical Gaussian fields (xi = L, eta = 2), WSGM with J = log2(L/4), VP (T = 1, eps = 1e-3: the
``gaussian`` section of config/paper.yaml), error = worst relative error over radial shells of the
power spectrum against the continuous law of the same sampler from the same prior (``wsgm.theory``).
Budget = network evaluations × pixels each network runs on (``wsgm.allocation``), shown in units of
one evaluation on the full L×L image ("NFE@L"). Budgets: those of equal steps n per scale for each
``--equal-steps`` n. For each: the best allocation (``best_allocation``), its error, equal steps'
error and their ratio; then the least budget reaching the target (0.1, config/paper.yaml
gaussian.target.spectrum) with equal steps (exact integer search) and with the optimal allocation
(bisection on the budget, 3 % tolerance).

    python bench/allocation.py [--sizes 32 64] [--out results/bench/allocation.json]

Prints a Markdown table; writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsgm import allocation  # noqa: E402
from wsgm import sde as sde_lib  # noqa: E402

VP = {"name": "vp", "T": 1.0, "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}
CASES = [("em", "logsnr"), ("dpmpp_2m", "logsnr")]


def _fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--equal-steps", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--target", type=float, default=0.1)
    ap.add_argument("--samplers", nargs="+", default=[c[0] for c in CASES], choices=[c[0] for c in CASES])
    ap.add_argument("--equal-steps-at", nargs="+", default=[], metavar="L:SAMPLER:N,N",
                    help="other equal-steps budgets for one case, e.g. 64:em:8,16 (the search is slower there)")
    ap.add_argument("--no-reach", nargs="+", default=[], metavar="L:SAMPLER",
                    help="cases without the budget-to-target search (its bisection runs ~8 searches)")
    ap.add_argument("--out", type=Path, default=Path("results/bench/allocation.json"))
    args = ap.parse_args()
    sde = sde_lib.build(VP)
    rows, reach = [], []
    for size in args.sizes:
        J = int(math.log2(size // 4))
        for sampler, grid in [c for c in CASES if c[0] in args.samplers]:
            t0 = time.perf_counter()
            counts = args.equal_steps
            for spec in args.equal_steps_at:
                at_size, at_sampler, ns = spec.split(":")
                if (int(at_size), at_sampler) == (size, sampler):
                    counts = [int(n) for n in ns.split(",")]
            problem = allocation.Problem.field(size, J, sde, sampler=sampler, grid=grid)
            full = problem.nfe_per_step * size * size  # budget of one evaluation on the L×L image
            for n in counts:
                budget = problem.cost([n] * (J + 1))
                r = allocation.best_allocation(budget, problem)
                rows.append({"size": size, "J": J, "sampler": sampler, "grid": grid, "budget": budget,
                             "budget_nfe_full": budget / full, **{k: r[k] for k in ("steps", "error", "cost", "gain")},
                             "equal": r["equal"]})
            eq = allocation.equal_budget_to_target(problem, args.target)
            if f"{size}:{sampler}" in args.no_reach:
                reach.append({"size": size, "J": J, "sampler": sampler, "grid": grid, "target": args.target,
                              "equal_budget": eq, "optimal_budget": None,
                              "equal_budget_nfe_full": None if eq is None else eq / full,
                              "optimal_budget_nfe_full": None,
                              "equal_steps": None if eq is None else problem.equal_steps(eq),
                              "optimal_steps": None, "saving": None, "optimal_searched": False,
                              "seconds": time.perf_counter() - t0, "evaluations": problem.evaluations})
                continue
            hi = eq if eq is not None else problem.cost([4096] * (J + 1))
            low = max(problem.cost([1] * (J + 1)), hi / 2)  # the optimum saves less than half here
            opt = allocation.optimal_budget_to_target(problem, args.target, low, hi, rtol=0.03)
            at = allocation.best_allocation(opt, problem) if opt is not None else None
            reach.append({"size": size, "J": J, "sampler": sampler, "grid": grid, "target": args.target,
                          "equal_budget": eq, "optimal_budget": opt,
                          "equal_budget_nfe_full": None if eq is None else eq / full,
                          "optimal_budget_nfe_full": None if opt is None else opt / full,
                          "equal_steps": None if eq is None else problem.equal_steps(eq),
                          "optimal_steps": None if at is None else at["steps"],
                          "saving": None if (eq is None or opt is None) else 1 - opt / eq,
                          "seconds": time.perf_counter() - t0, "evaluations": problem.evaluations})
            print(f"L={size} {sampler}/{grid}: {reach[-1]['seconds']:.1f} s, {problem.evaluations} allocations",
                  file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"sde": VP, "field": {"xi": "critical", "eta": 2.0}, "error": "spectrum",
                                    "scale_order": "models 0..J (finest first; J the coarsest)",
                                    "rows": rows, "reach": reach}, indent=1) + "\n")
    print("| L | J | sampler | budget (NFE@L) | equal steps | equal error | optimal steps | optimal error | gain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['J']} | {r['sampler']}/{r['grid']} | {r['budget_nfe_full']:.3g} | "
              f"{r['equal']['steps'][0]} | {_fmt(r['equal']['error'])} | {'-'.join(map(str, r['steps']))} | "
              f"{_fmt(r['error'])} | {r['gain']:.2f}× |")
    print(f"\nBudget (NFE@L) to reach spectral error {args.target}:\n")
    print("| L | sampler | equal steps | equal budget | optimal steps | optimal budget | saving |")
    print("|---|---|---|---|---|---|---|")
    for r in reach:
        steps = "—" if r["optimal_steps"] is None else "-".join(map(str, r["optimal_steps"]))
        saving = "—" if r["saving"] is None else f"{100 * r['saving']:.0f} %"
        print(f"| {r['size']} | {r['sampler']}/{r['grid']} | {_fmt(r['equal_steps'])} | "
              f"{_fmt(r['equal_budget_nfe_full'])} | {steps} | {_fmt(r['optimal_budget_nfe_full'])} | {saving} |")


if __name__ == "__main__":
    main()
