"""Per-scale step allocation of WSGM at a fixed sampling budget, exactly on Gaussian fields.

Budget: network evaluations weighted by the pixels each network runs on,

    cost(n_0..n_J) = nfe_per_step · Σ_j n_j · pixels_j,

with ``pixels_j`` = (L / 2^(j+1))² for the conditional models j < J (they draw the three detail
bands of x_j on the grid of x_{j+1}, ``wsgm.cascade.cascade``) and (L / 2^J)² for the coarsest
model J (``wsgm.nets.receptive_field.model_side``); ``nfe_per_step`` is the solver's
(``wsgm.solvers``). Scale order is that of ``wsgm.steps.Steps``: models 0..J, the finest first.

The error of an allocation is exact (``wsgm.theory``: the sampled law of the whole cascade with
exact Gaussian scores, against the continuous-time law of the same sampler from the same prior),
by default the worst relative error over radial shells of the power spectrum (``"spectrum"``, the
paper's measure; ``"kl"``: per-pixel KL). ``best_allocation`` searches the integer steps
n_j ≥ 1 within the budget (greedy marginal gain, then coordinate descent by exchanges of budget
between pairs of scales, started from the best of equal steps, the greedy allocation and the best
allocation already evaluated within the budget); it is a local search: the spectral error is not monotone in
each n_j (the scales' errors can cancel in a shell), so it is checked against ``brute_force``,
which enumerates every feasible allocation (small cases, the tests).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from wsgm import solvers, theory
from wsgm.sde import SDE
from wsgm.nets.receptive_field import model_side

ERRORS = ("spectrum", "kl")


class Problem:
    """One field, cascade and sampler: the exact error of any per-scale steps, memoized.

    ``Problem.field(size, J, ...)`` builds it for the power-law fields of ``wsgm.data.gaussian``.
    """

    def __init__(self, models, stats: dict, sde: SDE, size: int, sampler: str = "em",
                 grid: str = "uniform", wavelet: str = "haar", against: str = "prior",
                 options: dict | None = None, error: str = "spectrum") -> None:
        if error not in ERRORS:
            raise ValueError(f"error must be one of {ERRORS}, not {error!r}")
        self.models, self.stats, self.sde, self.size = models, stats, sde, size
        self.J = len(models) - 1
        self.sampler, self.grid, self.wavelet = sampler, grid, wavelet
        self.against, self.options, self.error_name = against, options, error
        self.nfe_per_step = solvers.get(sampler).nfe_per_step
        if self.nfe_per_step < 1:
            raise ValueError(f"sampler {sampler!r} is adaptive: its cost is not set by steps")
        self.pixels = [model_side(size, self.J, j) ** 2 for j in range(self.J + 1)]
        self._cache: dict = {}
        self._memo: dict[tuple[int, ...], float] = {}
        self._reference = theory.sampled_law(models, stats, sde, 1, sampler, grid, wavelet, reference=True,
                                             against=against, options=options)["spectrum"]

    @classmethod
    def field(cls, size: int, J: int, sde: SDE, xi: float | None = None, eta: float = 2.0,
              **kwargs) -> Problem:
        """The normalized power-law field of side ``size`` (``xi`` None: critical, ξ = L)."""
        models, stats = theory.field_models(size, float(size if xi is None else xi), eta, J, sde,
                                            kwargs.get("wavelet", "haar"))
        return cls(models, stats, sde, size, **kwargs)

    @property
    def evaluations(self) -> int:
        """Distinct allocations whose error was computed."""
        return len(self._memo)

    def cost(self, steps) -> int:
        """Budget spent by per-scale steps (models 0..J): nfe_per_step · Σ n_j · pixels_j."""
        steps = list(steps)
        if len(steps) != self.J + 1:
            raise ValueError(f"need J+1 = {self.J + 1} per-scale steps, got {steps}")
        return self.nfe_per_step * sum(n * p for n, p in zip(steps, self.pixels))

    def equal_steps(self, budget: float) -> int:
        """The most steps at every scale within ``budget`` (0 if not even one)."""
        return int(budget // (self.nfe_per_step * sum(self.pixels)))

    def best_seen(self, budget: float) -> list[int] | None:
        """The allocation of least error (then cost) among those already evaluated within ``budget``."""
        best, best_key = None, None
        for steps, err in self._memo.items():
            key = (err, self.cost(steps))
            if key[1] <= budget and (best_key is None or _better(key, best_key)):
                best, best_key = list(steps), key
        return best

    def error(self, steps) -> float:
        """Exact error of per-scale steps (models 0..J)."""
        key = tuple(int(n) for n in steps)
        if key not in self._memo:
            law = theory.sampled_law(self.models, self.stats, self.sde, list(key), self.sampler, self.grid,
                                     self.wavelet, against=self.against, options=self.options,
                                     cache=self._cache)
            self._memo[key] = (law["kl"] if self.error_name == "kl"
                               else theory.spectrum_error(law["spectrum"], self._reference))
        return self._memo[key]


def feasible(problem: Problem, budget: float) -> Iterator[tuple[int, ...]]:
    """Every allocation n_j ≥ 1 (models 0..J) with cost ≤ budget."""
    unit = [problem.nfe_per_step * p for p in problem.pixels]
    J = problem.J

    def rec(j: int, left: float, head: tuple[int, ...]):
        rest = sum(unit[j + 1:])  # one step at every later scale
        n = 1
        while n * unit[j] + rest <= left:
            if j == J:
                yield head + (n,)
            else:
                yield from rec(j + 1, left - n * unit[j], head + (n,))
            n += 1

    yield from rec(0, budget, ())


def brute_force(problem: Problem, budget: float) -> tuple[list[int], float]:
    """(steps, error) of the best feasible allocation, by enumeration (ties: the cheaper, then the
    first in lexicographic order)."""
    best, best_key = None, None
    for steps in feasible(problem, budget):
        key = (problem.error(steps), problem.cost(steps))
        if best_key is None or key < best_key:
            best, best_key = list(steps), key
    if best is None:
        raise ValueError(f"budget {budget} does not afford one step at every scale "
                         f"(needs {problem.cost([1] * (problem.J + 1))})")
    return best, best_key[0]


def _better(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Lower error wins; a tie (to 1e-12 relative) goes to the cheaper allocation."""
    if a[0] < b[0] * (1 - 1e-12):
        return True
    return a[0] <= b[0] * (1 + 1e-12) and a[1] < b[1]


def _greedy(problem: Problem, budget: float) -> list[int]:
    """From one step at every scale, add steps where the error falls most per unit of budget
    (increments of ~25 % of a scale's count, at least one step) while the budget allows."""
    steps = [1] * (problem.J + 1)
    while True:
        err, spent = problem.error(steps), problem.cost(steps)
        best, best_rate = None, 0.0
        for j in range(problem.J + 1):
            for inc in sorted({max(1, steps[j] // 4), 1}):
                trial = steps.copy()
                trial[j] += inc
                extra = problem.cost(trial) - spent
                if spent + extra > budget:
                    continue
                rate = (err - problem.error(trial)) / extra
                if rate > best_rate:
                    best, best_rate = trial, rate
        if best is None:
            return steps
        steps = best


def _moves(problem: Problem, steps: list[int], budget: float) -> Iterator[list[int]]:
    """Neighbours: one scale ± 2^k steps; or 2^k steps (or none) off one scale and the budget left
    spent on another."""
    unit = [problem.nfe_per_step * p for p in problem.pixels]
    J = problem.J
    for a in range(J + 1):
        deltas = [0] + [2**k for k in range(int(math.log2(steps[a])) + 1) if 2**k < steps[a]]
        for d in deltas:
            if d:
                for sign in (-1, 1):
                    trial = steps.copy()
                    trial[a] += sign * d
                    if trial[a] >= 1 and problem.cost(trial) <= budget:
                        yield trial
            for b in range(J + 1):
                if b == a:
                    continue
                trial = steps.copy()
                trial[a] -= d
                left = budget - problem.cost(trial)
                add = int(left // unit[b])
                if add > 0:
                    trial[b] += add
                    yield trial


def _descend(problem: Problem, steps: list[int], budget: float) -> list[int]:
    """Steepest descent over ``_moves`` until no neighbour is better (error, then cost); each best
    move is repeated while it keeps improving (a line search: fewer rounds of neighbours)."""
    here = (problem.error(steps), problem.cost(steps))
    while True:
        best, best_key = None, here
        for trial in _moves(problem, steps, budget):
            key = (problem.error(trial), problem.cost(trial))
            if _better(key, best_key):
                best, best_key = trial, key
        if best is None:
            return steps
        while True:  # the same change again, where feasible and better
            step = [2 * b - s for b, s in zip(best, steps)]
            steps, here = best, best_key
            if min(step) < 1 or problem.cost(step) > budget:
                break
            key = (problem.error(step), problem.cost(step))
            if not _better(key, here):
                break
            best, best_key = step, key


def best_allocation(budget: float, problem: Problem) -> dict:
    """The per-scale steps (models 0..J) of least exact error within ``budget``, and equal steps.

    Returns {'budget', 'steps', 'error', 'cost', 'equal': {'steps', 'error', 'cost'}, 'gain'
    (equal error / optimal error), 'evaluations'}. ValueError if the budget does not afford one
    step at every scale.
    """
    n = problem.equal_steps(budget)
    if n < 1:
        raise ValueError(f"budget {budget} does not afford one step at every scale "
                         f"(needs {problem.cost([1] * (problem.J + 1))})")
    equal = [n] * (problem.J + 1)
    starts = [equal, _greedy(problem, budget)]
    seen = problem.best_seen(budget)  # e.g. the optimum of a smaller budget: feasible here too
    if seen is not None and seen not in starts:
        starts.append(seen)
    start = starts[0]
    for other in starts[1:]:
        if _better((problem.error(other), problem.cost(other)), (problem.error(start), problem.cost(start))):
            start = other
    best = _descend(problem, start, budget)  # from the best start: never worse than equal steps
    best_key = (problem.error(best), problem.cost(best))
    e_eq = problem.error(equal)
    return {"budget": budget, "steps": best, "error": best_key[0], "cost": best_key[1],
            "equal": {"steps": equal, "error": e_eq, "cost": problem.cost(equal)},
            "gain": e_eq / best_key[0] if best_key[0] > 0 else math.inf,
            "evaluations": problem.evaluations}


def budget_to_target(budgets: list[float], errs: list[float], target: float) -> float | None:
    """Budget at which an error curve first reaches ``target`` (log–log interpolation, as
    ``wsgm.theory.steps_to_target``); None if never within ``budgets``."""
    return theory.steps_to_target(list(budgets), list(errs), target)


def equal_budget_to_target(problem: Problem, target: float, max_steps: int = 4096) -> float | None:
    """Least budget of equal steps whose error is ≤ ``target`` (exact integer search over n, the
    error assumed to fall with n past the first count that reaches it); None beyond ``max_steps``."""
    lo, hi = 1, 1
    while problem.error([hi] * (problem.J + 1)) > target:
        lo, hi = hi, hi * 2
        if hi > max_steps:
            return None
    while hi - lo > 1:  # error(lo) > target >= error(hi), unless hi == 1
        mid = (lo + hi) // 2
        if problem.error([mid] * (problem.J + 1)) > target:
            lo = mid
        else:
            hi = mid
    return float(problem.cost([hi] * (problem.J + 1)))


def optimal_budget_to_target(problem: Problem, target: float, low: float, high: float,
                             rtol: float = 0.02) -> float | None:
    """Least budget (to ``rtol``) whose optimal allocation reaches ``target``, by bisection on
    log budget in [low, high] (the optimum's error does not increase with the budget: the feasible
    set grows); None if ``high`` does not reach it."""
    if best_allocation(high, problem)["error"] > target:
        return None
    if best_allocation(low, problem)["error"] <= target:
        return float(low)
    while high / low > 1 + rtol:
        mid = math.sqrt(low * high)
        if best_allocation(mid, problem)["error"] <= target:
            high = mid
        else:
            low = mid
    return float(high)
