"""The paper's claims with exact Gaussian scores: steps vs size, cost vs pixels, forward processes.

Runs `wsgm paper` on config/paper.yaml (items 1, 3, 4 of issue 8; ~5 minutes on 2 cores) and
writes results/bench/paper_gaussian.json, paper_cost.json, paper_sde.json (machine, date and
runtime inside) and the figures paper_gaussian.png, paper_cost.png, paper_sde.png; prints the
Markdown tables shown in docs/results.md.

    python bench/paper.py [--config config/paper.yaml] [--outdir results/bench] [--sizes 16 32] [--steps 4 16 64]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's wsgm, not an installed one
from wsgm.cli import main  # noqa: E402

if __name__ == "__main__":
    t0 = time.perf_counter()
    rc = main(["paper", *sys.argv[1:]])
    print(f"\nbench/paper.py total runtime: {time.perf_counter() - t0:.0f} s")
    sys.exit(rc)
