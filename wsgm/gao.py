"""Gao, Nguyen & Zhu (2023) as stated: steps to reach W2 ≤ ε against ε and d, per forward process.

Data: the stationary Gaussian field of ``wsgm.data.gaussian`` (power spectrum P, mean pixel
variance 1, so E|x|² = d = L²), strongly log-concave for finite ``xi``. Sampler: ``em`` on a uniform
grid (the paper's constant step size), exact scores (``wsgm.nets.exact``), reverse run down to
t = ``eps`` (0 by default: for Gaussian data with λ_min > 0 the score is Lipschitz down to t = 0,
so no early stopping is needed and the sampled law is compared with the data law itself).

W2 against the data law N(0, P), total over the d pixels (the paper's ε is for the whole vector):
- SGM (J = 0): the sampled law is N(0, P̂) with P̂ circulant (one variance per Fourier mode,
  ``theory.propagate``), so both covariances share the Fourier eigenbasis and W2 is exact:
  W2² = Σ_ω (√P̂(ω) − √P(ω))² (means are 0).
- WSGM (J = log2(L / coarsest)): the sampled field is only cyclo-stationary (period 2^J), its
  covariance couples each frequency with its 4^J aliases, and the exact W2 would need the matrix
  square roots of (L/2^J)² blocks of size 4^J. What is computed instead is the same formula on the
  translation-averaged spectrum P̄ of the sampled field (``theory.sampled_law``). This is a rigorous
  lower bound on the exact W2: averaging the sampled law over the 4^J translations of its period
  gives a mixture whose W2 to the (translation-invariant) data law is at most the exact W2 (joint
  convexity of W2²), and by Gelbrich's bound the Gaussian with the mixture's covariance (circulant,
  symbol P̄) is no farther from the Gaussian data law than the mixture is. It is exact when the
  sampled law is stationary (e.g. in the continuous-time limit, where WSGM draws the data law).

Steps to ε (per scale for WSGM, the project's convention): doubling from 1 until W2 ≤ ε (or
``max_steps``), then integer bisection inside the last doubling interval down to a relative width
``rtol``; the count is the first one found with W2 ≤ ε (W2 need not be monotone at very few steps,
where EM is unstable, so this is the crossing of the first doubling bracket).

Fit: log steps = c − a log ε + b log d by least squares over the (ε, d) grid points reached; the
standard errors of a and b give 95% intervals (±1.96 se, normal approximation) and the RMS residual
in log-steps says how well a pure power law describes them (the paper's log factors included).

T is held fixed per process (``processes.sdes``, same as the ``processes`` section, with eps from
this section). The paper lets T grow like log(d/ε) (or a power of it); at the T used here the
initialization error ("floor", recorded per size) is far below every ε, so what is counted is the
discretization, which is where the paper's ε and d powers come from; the log factors from T are
not exercised.
"""

from __future__ import annotations

import math
import time

import numpy as np

from wsgm import theory

# Iteration complexity K per process as summarized by the authors (Gao, Nguyen, Zhu) in the table
# image assets/theory.jpg of their code repository github.com/HoangNguyenM/score-based-model-w-new-SDE
# (README: "The summary of our theoretical analysis"; it goes with arXiv:2311.11003 v1; v2 (2025)
# was not checked). (a, b): the ε and d powers of K with log factors dropped.
PREDICTED = {
    "vp_constant": ("O(d log(d/ε) / ε²)", 2.0, 1.0),
    "vp_linear": ("O(d √log(d/ε) / ε²)", 2.0, 1.0),
    "vp_polynomial": ("O(d log(d/ε)^(1/(ρ+1)) / ε²)", 2.0, 1.0),
    "vp_exponential": ("O(d log log(d/ε) / ε²)", 2.0, 1.0),
    "ve_geometric": ("O(d log(d/ε) / ε²)", 2.0, 1.0),
    "ve_constant_g": ("O(d^(3/2) log(d/ε) / ε³)", 3.0, 1.5),
    "ve_sqrt_t": ("O(d^(5/4) / ε^(5/2))", 2.5, 1.25),
    # g = (b + a t)^c with c = ρ − 1/2 for sigma(t) = (b' + a' t)^ρ: K = O(d^(1 + 1/(2(2c+1))) / ε^(2 + 1/(2c+1)))
    "ve_rho_power": ("O(d^(1+1/(4ρ)) / ε^(2+1/(2ρ))), c = ρ − 1/2", None, None),
}


def predicted(name: str, sde_cfg: dict) -> dict:
    """{'complexity', 'eps_exponent', 'd_exponent'} of the paper for a process of processes.sdes."""
    text, a, b = PREDICTED.get(name, ("not stated for this process", None, None))
    if name == "ve_rho_power":
        rho = float(sde_cfg["rho"])
        a, b = 2 + 1 / (2 * rho), 1 + 1 / (4 * rho)
    return {"complexity": text, "eps_exponent": a, "d_exponent": b}


def w2_stationary(p_hat: np.ndarray, p: np.ndarray) -> float:
    """Exact W2 between N(0, C(P̂)) and N(0, C(P)), C circulant with symbols P̂, P (one value per mode).

    Circulant covariances commute (common Fourier eigenbasis), so W2² = Σ (√P̂ − √P)².
    """
    p_hat, p = np.asarray(p_hat, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p_hat)):
        return math.inf
    return float(math.sqrt(np.sum((np.sqrt(np.maximum(p_hat, 0)) - np.sqrt(p)) ** 2)))


class Problem:
    """One (field size, J, process): W2 of the sampled law to the data law, per step count (cached)."""

    def __init__(self, size: int, xi: float, eta: float, J: int, sde, wavelet: str = "haar",
                 sampler: str = "em", grid: str = "uniform") -> None:
        from wsgm.data.gaussian import power_spectrum

        self.sde, self.sampler, self.grid, self.wavelet = sde, sampler, grid, wavelet
        self.data = power_spectrum(size, xi, eta)
        self.models, self.stats = theory.field_models(size, xi, eta, J, sde, wavelet)
        self.cache: dict[int, float] = {}

    def w2(self, steps: int) -> float:
        if steps not in self.cache:
            with np.errstate(all="ignore"):
                law = theory.sampled_law(self.models, self.stats, self.sde, steps, self.sampler,
                                         self.grid, self.wavelet)
                self.cache[steps] = w2_stationary(law["spectrum"], self.data)
        return self.cache[steps]

    def floor(self) -> float:
        """W2 of the continuous-time law from the same prior (the sampler's infinite-steps limit)."""
        law = theory.sampled_law(self.models, self.stats, self.sde, 1, self.sampler, self.grid,
                                 self.wavelet, reference=True, against="prior")
        return w2_stationary(law["spectrum"], self.data)


def steps_to(w2, eps: float, max_steps: int, rtol: float = 0.02) -> int | None:
    """Smallest step count found with w2(steps) ≤ eps (module docstring), None if not by max_steps."""
    hi = 1
    while w2(hi) > eps:
        if hi >= max_steps:
            return None
        hi = min(2 * hi, max_steps)
    lo = hi // 2  # w2(lo) > eps (or lo = 0)
    while hi - lo > max(1, rtol * hi):
        mid = (lo + hi) // 2
        if w2(mid) <= eps:
            hi = mid
        else:
            lo = mid
    return hi


def fit_power_law(eps: list[float], d: list[float], steps: list[float]) -> dict:
    """Least squares log steps = c − a log ε + b log d: a, b, their 95% intervals, RMS log residual.

    Points with steps None are dropped; with too few points (or no spread) the exponent is None.
    """
    pts = [(e, n, s) for e, n, s in zip(eps, d, steps) if s is not None]
    out = {"eps_exponent": None, "d_exponent": None, "eps_ci95": None, "d_ci95": None,
           "rms_log_residual": None, "n_points": len(pts)}
    if len(pts) < 3:
        return out
    e, n, s = (np.log(np.array(v, dtype=np.float64)) for v in zip(*pts))
    cols, names = [np.ones_like(e)], []
    if np.ptp(e) > 0:
        cols.append(-e)
        names.append("eps")
    if np.ptp(n) > 0:
        cols.append(n)
        names.append("d")
    X = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(X, s, rcond=None)
    resid = s - X @ coef
    dof = len(s) - X.shape[1]
    sigma2 = float(resid @ resid) / dof if dof > 0 else 0.0
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    out["rms_log_residual"] = float(np.sqrt(np.mean(resid**2)))
    for i, name in enumerate(names, start=1):
        se = float(np.sqrt(max(cov[i, i], 0.0)))
        out[f"{name}_exponent"] = float(coef[i])
        out[f"{name}_ci95"] = [float(coef[i] - 1.96 * se), float(coef[i] + 1.96 * se)]
    return out


def run(cfg: dict, build_sde, log=print) -> dict:
    """The ``gao`` section: steps(ε, d) per process × method, fitted exponents, predictions."""
    g = cfg["gao"]
    sdes = g.get("sdes") or cfg["processes"]["sdes"]
    rows = {}
    for name, sde_cfg in sdes.items():
        sde = build_sde({"T": g.get("T", 1.0), **sde_cfg, "eps": g["eps"]})
        rows[name] = {"sde": sde_cfg, "predicted": predicted(name, sde_cfg)}
        for method in ("sgm", "wsgm"):
            t0 = time.perf_counter()
            grid, floors, evals = [], {}, 0
            for size in g["sizes"]:
                J = 0 if method == "sgm" else int(round(math.log2(size / g["coarsest"])))
                prob = Problem(size, float(size) if g["xi"] == "critical" else float(g["xi"]), g["eta"], J,
                               sde, g["wavelet"], g["sampler"], g["time_grid"])
                floors[size] = prob.floor()
                for eps in g["eps_values"]:
                    n = steps_to(prob.w2, eps, g["max_steps"], g["rtol"])
                    grid.append({"size": size, "d": size * size, "J": J, "eps": eps, "steps": n,
                                 "w2": None if n is None else prob.w2(n)})
                evals += len(prob.cache)
            fit = fit_power_law([r["eps"] for r in grid], [r["d"] for r in grid], [r["steps"] for r in grid])
            rows[name][method] = {"grid": grid, "fit": fit, "floor_w2": floors, "evaluations": evals,
                                  "runtime_s": time.perf_counter() - t0}
            log(f"gao {name} {method}: steps ∝ ε^-{_e(fit['eps_exponent'])} d^{_e(fit['d_exponent'])} "
                f"(rms {_e(fit['rms_log_residual'])}, {fit['n_points']}/{len(grid)} points reached, "
                f"{time.perf_counter() - t0:.1f} s)")
    return {"config": g, "rows": rows}


def _e(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _ci(fit: dict, key: str) -> str:
    if fit[f"{key}_exponent"] is None:
        return "n/a"
    lo, hi = fit[f"{key}_ci95"]
    return f"{fit[f'{key}_exponent']:.2f} [{lo:.2f}, {hi:.2f}]"


def table(res: dict) -> str:
    g = res["config"]
    lines = [f"Steps (per scale for WSGM) to W2 ≤ ε against the data law, em, uniform grid, "
             f"ε ∈ {g['eps_values']}, L ∈ {g['sizes']} (d = L²), xi = {g['xi']}; fit steps ∝ ε^-a d^b "
             f"(95% interval; rms = RMS log residual; WSGM W2 is the stationarized lower bound):", "",
             "| process | method | measured ε exponent a | measured d exponent b | rms | points | "
             "paper's predicted complexity (a, b) |", "|---|---|---|---|---|---|---|"]
    for name, row in res["rows"].items():
        p = row["predicted"]
        pred = p["complexity"] + ("" if p["eps_exponent"] is None else
                                  f" ({p['eps_exponent']:.3g}, {p['d_exponent']:.3g})")
        for method in ("sgm", "wsgm"):
            f = row[method]["fit"]
            n_all = len(row[method]["grid"])
            lines.append(f"| {name} | {method.upper()} | {_ci(f, 'eps')} | {_ci(f, 'd')} | "
                         f"{_e(f['rms_log_residual'])} | {f['n_points']}/{n_all} | {pred} |")
    lines.append("")
    return "\n".join(lines)


def plot(res: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = res["config"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    big, mid_eps = max(g["sizes"]), sorted(g["eps_values"])[len(g["eps_values"]) // 2]
    for i, (name, row) in enumerate(res["rows"].items()):
        for method, ls in (("sgm", "-"), ("wsgm", "--")):
            grid = row[method]["grid"]
            pts = [(r["eps"], r["steps"]) for r in grid if r["size"] == big and r["steps"]]
            label = f"{name} {method.upper()}"
            if pts:
                ax1.plot(*zip(*pts), ls, marker="o", ms=3, color=f"C{i}", label=label)
            pts = [(r["d"], r["steps"]) for r in grid if r["eps"] == mid_eps and r["steps"]]
            if pts:
                ax2.plot(*zip(*pts), ls, marker="o", ms=3, color=f"C{i}", label=label)
    ax1.set(xscale="log", yscale="log", xlabel="ε (W2, whole field)", ylabel="steps to W2 ≤ ε",
            title=f"L = {big}")
    ax2.set(xscale="log", yscale="log", xlabel="d = L²", ylabel="steps to W2 ≤ ε", title=f"ε = {mid_eps}")
    ax2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
