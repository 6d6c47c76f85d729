"""The paper's claims, measured with exact Gaussian scores (config/paper.yaml, ``wsgm paper``).

- ``gaussian``: error of SGM (J = 0) and WSGM (J = log2(L / coarsest)) against steps on power-law
  fields of size L, same sampler and grid; steps to reach the target error, against L.
- ``cost``: wall time per image of the real cascade (``wsgm.cascade.cascade``, exact models) for
  WSGM at fixed steps per scale, and SGM at the steps it needs for the target; log–log slope
  against the number of pixels.
- ``processes``: steps to the target for each forward process, SGM and WSGM.
- ``gao``: steps to reach W2 ≤ ε against the data law across ε and d per forward process, fitted
  exponents beside Gao–Nguyen–Zhu's stated iteration complexities (``wsgm.gao``; optional section).

Errors are exact (``wsgm.theory``), not Monte Carlo, and measured against the continuous-time
law of the same sampler started from the same prior (``gaussian.against: prior``, the default):
the steps counted are the discretization's, not the approach to the prior floor that a finite T
leaves (at T = 1 SGM's large critical fields never reach the clean law whatever the steps; see
``wsgm.theory``). ``against: forward`` gives the old measure (against the forward marginal at eps,
prior floor included).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from wsgm import sde as sde_lib
from wsgm import theory
from wsgm.config import ConfigError, defaults

SECTIONS = ("gaussian", "cost", "processes", "gao")


def load(path: str | Path) -> dict:
    """Read config/paper.yaml; one-line ConfigError on a missing section or key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"paper config {path} does not exist. Fix: pass --config config/paper.yaml")
    cfg = yaml.safe_load(path.read_text()) or {}
    need = {"gaussian": ("sizes", "xi", "eta", "coarsest", "wavelet", "sampler", "time_grid", "sde",
                         "steps", "error", "target"),
            "cost": ("sizes", "xi", "steps_per_scale", "n_images", "repeats", "threads"),
            "processes": ("size", "xi", "sdes")}
    for section, keys in need.items():
        missing = [k for k in keys if k not in cfg.get(section, {})]
        if missing:
            raise ConfigError(f"{path}: section {section!r} lacks {', '.join(missing)}. "
                              f"Fix: add them (see config/paper.yaml in the repository)")
    if cfg["gaussian"]["error"] not in ("kl", "spectrum"):
        raise ConfigError(f"{path}: gaussian.error must be kl or spectrum, got {cfg['gaussian']['error']!r}")
    if "gao" in cfg:  # optional section: configs without it run the other three unchanged
        keys = ("sizes", "xi", "eta", "coarsest", "wavelet", "sampler", "time_grid", "eps", "eps_values",
                "max_steps", "rtol")
        missing = [k for k in keys if k not in (cfg["gao"] or {})]
        if missing:
            raise ConfigError(f"{path}: section 'gao' lacks {', '.join(missing)}. "
                              f"Fix: add them (see config/paper.yaml in the repository)")
    cfg["gaussian"].setdefault("against", "prior")
    if cfg["gaussian"]["against"] not in theory.AGAINST:
        raise ConfigError(f"{path}: gaussian.against must be one of {', '.join(theory.AGAINST)}, "
                          f"got {cfg['gaussian']['against']!r}")
    return cfg


def build_sde(cfg: dict) -> sde_lib.SDE:
    if cfg.get("name") not in sde_lib.REGISTRY:
        raise ConfigError(f"unknown process {cfg.get('name')!r}; use one of {sorted(sde_lib.REGISTRY)}")
    return sde_lib.build({**defaults("sde"), **cfg})


def _xi(xi, size: int) -> float:
    return float(size) if xi == "critical" else float(xi)


def wsgm_levels(size: int, coarsest: int) -> int:
    return int(round(math.log2(size / coarsest)))


def curves(size: int, xi: float, g: dict, sde_cfg: dict, steps: list[int]) -> dict:
    """{'sgm'|'wsgm': {'J', 'kl': [...], 'spectrum': [...], 'steps_to_target': {...}}} for one field."""
    sde = build_sde(sde_cfg)
    out = {}
    for name, J in (("sgm", 0), ("wsgm", wsgm_levels(size, g["coarsest"]))):
        models, stats = theory.field_models(size, xi, g["eta"], J, sde, g["wavelet"])
        errs = [theory.errors(models, stats, sde, n, g["sampler"], g["time_grid"], g["wavelet"],
                              g.get("against", "prior")) for n in steps]
        row = {"J": J, "kl": [e["kl"] for e in errs], "spectrum": [e["spectrum"] for e in errs]}
        row["steps_to_target"] = {key: theory.steps_to_target(steps, row[key], g["target"][key])
                                  for key in ("kl", "spectrum")}
        out[name] = row
    return out


def gaussian(cfg: dict, log=print) -> dict:
    g = cfg["gaussian"]
    runs = []
    for xi in g["xi"]:
        for size in g["sizes"]:
            t0 = time.perf_counter()
            runs.append({"size": size, "xi": _xi(xi, size), "xi_mode": str(xi),
                         **curves(size, _xi(xi, size), g, g["sde"], g["steps"])})
            r = runs[-1]
            log(f"gaussian xi={xi} L={size}: steps to target ({g['error']}) SGM "
                f"{r['sgm']['steps_to_target'][g['error']]}, WSGM {r['wsgm']['steps_to_target'][g['error']]} "
                f"({time.perf_counter() - t0:.1f} s)")
    variants = {}
    for name, v in (g.get("variants") or {}).items():  # other (process, grid) pairs, critical fields
        gv = {**g, "time_grid": v.get("time_grid", g["time_grid"]), "sampler": v.get("sampler", g["sampler"])}
        variants[name] = {"sde": v["sde"], "time_grid": gv["time_grid"], "sampler": gv["sampler"], "runs": [
            {"size": size, "xi": float(size), **curves(size, float(size), gv, v["sde"], g["steps"])}
            for size in g["sizes"]]}
        log(f"gaussian variant {name}: steps to target SGM / WSGM " + ", ".join(
            f"L={r['size']}: {_fmt(r['sgm']['steps_to_target'][g['error']])} / "
            f"{_fmt(r['wsgm']['steps_to_target'][g['error']])}" for r in variants[name]["runs"]))
    return {"config": g, "runs": runs, "variants": variants}


def _time_cascade(size: int, xi: float, J: int, steps: int, g: dict, c: dict) -> float:
    """Best-of-``repeats`` wall time per image of the real cascade with exact models."""
    from wsgm.cascade import cascade

    sde_cfg = {**defaults("sde"), **g["sde"]}
    models, stats = theory.field_models(size, xi, g["eta"], J, build_sde(sde_cfg), g["wavelet"])
    spec = {"J": J, "wavelet": g["wavelet"], "sde": sde_cfg, "steps": steps,
            "shape": [c["n_images"], 1, size, size],
            "sampling": {"sampler": g["sampler"], "time_grid": g["time_grid"]}}
    best = math.inf
    for rep in range(c["repeats"]):
        gen = torch.Generator().manual_seed(rep)
        t0 = time.perf_counter()
        cascade(models, stats, spec, c["n_images"], gen, torch.device("cpu"))
        best = min(best, time.perf_counter() - t0)
    return best / c["n_images"]


def _slope(pixels: list[float], times: list[float]) -> float | None:
    """Least-squares slope of log time against log pixels (None with fewer than two sizes)."""
    if len(pixels) < 2:
        return None
    return float(np.polyfit(np.log(pixels), np.log(times), 1)[0])


def cost(cfg: dict, gauss: dict | None = None, log=print) -> dict:
    """WSGM at fixed steps per scale and SGM at its steps-to-target (from ``gauss``), per image.

    SGM runs beyond ``sgm_max_timed_steps`` are timed over that many steps and scaled linearly (the
    per-step work of the sampler is constant); the row records both counts.
    """
    g, c = cfg["gaussian"], cfg["cost"]
    threads = torch.get_num_threads()
    torch.set_num_threads(c["threads"])
    try:
        rows = []
        for size in c["sizes"]:
            xi = _xi(c["xi"], size)
            J = wsgm_levels(size, g["coarsest"])
            needed = None
            if gauss is not None:
                match = [r for r in gauss["runs"] if r["size"] == size and r["xi_mode"] == str(c["xi"])]
                needed = match[0]["sgm"]["steps_to_target"][g["error"]] if match else None
            reached = needed is not None
            sgm_steps = int(math.ceil(needed if reached else max(g["steps"])))
            timed = min(sgm_steps, c.get("sgm_max_timed_steps", sgm_steps))
            row = {"size": size, "pixels": size * size, "J": J, "wsgm_steps_per_scale": c["steps_per_scale"],
                   "wsgm_s_per_image": _time_cascade(size, xi, J, c["steps_per_scale"], g, c),
                   "sgm_steps": sgm_steps, "sgm_reached_target": reached, "sgm_steps_timed": timed,
                   # every step does the same work: time `timed` steps, scale linearly to sgm_steps
                   "sgm_s_per_image": _time_cascade(size, xi, 0, timed, g, c) * sgm_steps / timed}
            rows.append(row)
            log(f"cost L={size}: WSGM {row['wsgm_s_per_image'] * 1e3:.2f} ms/image "
                f"({c['steps_per_scale']} steps x {J + 1} scales), SGM {row['sgm_s_per_image'] * 1e3:.2f} "
                f"ms/image ({sgm_steps} steps)")
    finally:
        torch.set_num_threads(threads)
    ok = [r for r in rows if r["sgm_reached_target"]]  # SGM's slope only where its step count is real
    return {"config": c, "rows": rows,
            "wsgm_slope": _slope([r["pixels"] for r in rows], [r["wsgm_s_per_image"] for r in rows]),
            "sgm_slope": _slope([r["pixels"] for r in ok], [r["sgm_s_per_image"] for r in ok])}


def processes(cfg: dict, log=print) -> dict:
    g, p = cfg["gaussian"], cfg["processes"]
    size = p["size"]
    rows = {}
    for name, sde_cfg in p["sdes"].items():
        t0 = time.perf_counter()
        rows[name] = {"sde": sde_cfg, **curves(size, _xi(p["xi"], size), g, sde_cfg, g["steps"])}
        log(f"process {name}: steps to target SGM {rows[name]['sgm']['steps_to_target'][g['error']]}, "
            f"WSGM {rows[name]['wsgm']['steps_to_target'][g['error']]} ({time.perf_counter() - t0:.1f} s)")
    out = {"config": p, "size": size, "rows": rows}
    for model in ("sgm", "wsgm"):
        for family in ("vp", "ve"):
            names = [n for n in rows if n.startswith(family)]
            key = lambda n: rows[n][model]["steps_to_target"][g["error"]] or math.inf  # noqa: E731
            out[f"{family}_order_{model}"] = sorted(names, key=key)
    return out


def machine() -> dict:
    return {"machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()}, "
                       f"torch {torch.__version__}, no GPU used)",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(gauss: dict | None, cst: dict | None, proc: dict | None, error: str, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if gauss:
        steps = gauss["config"]["steps"]
        modes = list(dict.fromkeys(r["xi_mode"] for r in gauss["runs"]))
        fig, axes = plt.subplots(1, len(modes) + 1, figsize=(5 * (len(modes) + 1), 4))
        for ax, mode in zip(axes, modes):
            for i, r in enumerate(x for x in gauss["runs"] if x["xi_mode"] == mode):
                color = f"C{i}"
                ax.plot(steps, r["sgm"][error], "--", color=color, label=f"SGM L={r['size']}")
                ax.plot(steps, r["wsgm"][error], "-", color=color, label=f"WSGM L={r['size']}")
            ax.axhline(gauss["config"]["target"][error], color="gray", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="steps (per scale for WSGM)", ylabel=error,
                   title=f"xi = {mode}")
            ax.legend(fontsize=6, ncol=2)
        ax = axes[-1]
        series = [(f"xi={m}", "o", [x for x in gauss["runs"] if x["xi_mode"] == m]) for m in modes]
        series += [(name, "s", v["runs"]) for name, v in gauss.get("variants", {}).items()]
        for j, (label, marker, rs) in enumerate(series):
            for model, ls in (("sgm", "--"), ("wsgm", "-")):
                pts = [(r["size"], r[model]["steps_to_target"][error]) for r in rs
                       if r[model]["steps_to_target"][error] is not None]
                if pts:
                    ax.plot(*zip(*pts), ls, marker=marker, color=f"C{j}", label=f"{model.upper()} {label}")
        ax.set(xscale="log", yscale="log", xlabel="L", ylabel=f"steps to {error} target", title="steps vs size")
        ax.legend(fontsize=7)
        written.append(_save(fig, outdir / "paper_gaussian.png"))
    if cst:
        fig, ax = plt.subplots(figsize=(5, 4))
        px = [r["pixels"] for r in cst["rows"]]
        ax.plot(px, [r["wsgm_s_per_image"] for r in cst["rows"]], "o-",
                label=f"WSGM {cst['config']['steps_per_scale']} steps/scale (slope {_num(cst['wsgm_slope'])})")
        ax.plot(px, [r["sgm_s_per_image"] for r in cst["rows"]], "s--",
                label=f"SGM at steps for same error (slope {_num(cst['sgm_slope'])})")
        ax.set(xscale="log", yscale="log", xlabel="pixels", ylabel="s per image", title="sampling cost")
        ax.legend(fontsize=7)
        written.append(_save(fig, outdir / "paper_cost.png"))
    if proc:
        names = list(proc["rows"])
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(len(names))
        for off, model in ((-0.2, "sgm"), (0.2, "wsgm")):
            vals = [proc["rows"][n][model]["steps_to_target"][error] or np.nan for n in names]
            ax.bar(x + off, vals, width=0.4, label=model.upper())
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set(yscale="log", ylabel=f"steps to {error} target", title=f"forward processes, L={proc['size']}")
        ax.legend()
        written.append(_save(fig, outdir / "paper_sde.png"))
    return written


def measure(cfg: dict, outdir: Path, sections: tuple[str, ...] = SECTIONS, log=print) -> dict[str, dict]:
    """Run the chosen sections; write paper_{gaussian,cost,sde}.json and PNGs into ``outdir`` (atomically)."""
    import json

    from wsgm.atomic import atomic_path

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    names = {"gaussian": "paper_gaussian", "cost": "paper_cost", "processes": "paper_sde", "gao": "paper_gao"}
    for section in SECTIONS:
        if section not in sections or (section == "gao" and "gao" not in cfg):
            continue
        t0 = time.perf_counter()
        if section == "gaussian":
            res = gaussian(cfg, log)
        elif section == "cost":
            res = cost(cfg, results.get("gaussian"), log)
        elif section == "gao":
            from wsgm import gao

            res = gao.run(cfg, build_sde, log)
        else:
            res = processes(cfg, log)
        res.update(machine(), runtime_s=time.perf_counter() - t0, error=cfg["gaussian"]["error"],
                   target=cfg["gaussian"]["target"])
        results[section] = res
        with atomic_path(outdir / f"{names[section]}.json") as tmp:
            tmp.write_text(json.dumps(res, indent=2) + "\n")
    plots(results.get("gaussian"), results.get("cost"), results.get("processes"), cfg["gaussian"]["error"], outdir)
    if "gao" in results:
        from wsgm import gao

        gao.plot(results["gao"], outdir / "paper_gao.png")
    return results


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.0f}"


def tables(results: dict[str, dict]) -> str:
    """Markdown tables of the measured numbers (what the README shows)."""
    lines = []
    if "gaussian" in results:
        g = results["gaussian"]
        modes = list(dict.fromkeys(r["xi_mode"] for r in g["runs"]))
        sizes = [r["size"] for r in g["runs"] if r["xi_mode"] == modes[0]]
        for err in dict.fromkeys([g["error"], "kl", "spectrum"]):
            lines += [f"Steps to reach {err} error {g['target'][err]}, SGM (J=0) / WSGM (J=log2(L/"
                      f"{g['config']['coarsest']}), steps per scale), {g['config']['sampler']}, "
                      f"{g['config']['time_grid']} grid, {g['config']['sde']['name']}; — = not reached within "
                      f"{max(g['config']['steps'])} steps:", "",
                      "| xi | " + " | ".join(f"L={s}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
            for mode in modes:
                rs = [r for r in g["runs"] if r["xi_mode"] == mode]
                lines.append(f"| {mode} | " + " | ".join(
                    f"{_fmt(r['sgm']['steps_to_target'][err])} / {_fmt(r['wsgm']['steps_to_target'][err])}"
                    for r in rs) + " |")
            lines.append("")
        if g.get("variants"):
            err = g["error"]
            lines += [f"Other processes and grids, critical fields (xi = L), steps to {err} error "
                      f"{g['target'][err]}, SGM / WSGM:", "",
                      "| process, grid | " + " | ".join(f"L={s}" for s in sizes) + " |",
                      "|---|" + "---|" * len(sizes)]
            for name, v in g["variants"].items():
                lines.append(f"| {name} ({v['sde']['name']}, {v['time_grid']}) | " + " | ".join(
                    f"{_fmt(r['sgm']['steps_to_target'][err])} / {_fmt(r['wsgm']['steps_to_target'][err])}"
                    for r in v["runs"]) + " |")
            lines.append("")
    if "cost" in results:
        c = results["cost"]
        lines += [f"Sampling time per image (1 thread): WSGM at {c['config']['steps_per_scale']} steps per scale, "
                  f"SGM at its steps for the same error:", "",
                  "| L | WSGM ms/image | SGM steps | SGM ms/image |", "|---|---|---|---|"]
        lines += [f"| {r['size']} | {r['wsgm_s_per_image'] * 1e3:.2f} | {r['sgm_steps']}"
                  f"{'' if r['sgm_reached_target'] else ' (target not reached)'} | "
                  f"{r['sgm_s_per_image'] * 1e3:.2f} |" for r in c["rows"]]
        if c["wsgm_slope"] is not None:
            lines += ["", f"log–log slope of time against pixels: WSGM {_num(c['wsgm_slope'])}, SGM "
                          f"{_num(c['sgm_slope'])} (sizes where SGM reached the target)"]
        lines.append("")
    if "gao" in results:
        from wsgm import gao

        lines.append(gao.table(results["gao"]))
    if "processes" in results:
        p = results["processes"]
        err = p["error"]
        lines += [f"Steps to {err} error {p['target'][err]} per forward process "
                  f"(L={p['size']}, xi={p['config']['xi']}):",
                  "", "| process | SGM | WSGM |", "|---|---|---|"]
        lines += [f"| {n} | {_fmt(r['sgm']['steps_to_target'][err])} | {_fmt(r['wsgm']['steps_to_target'][err])} |"
                  for n, r in p["rows"].items()]
        lines += ["", "Measured VP order (fewest steps first): SGM " + " < ".join(p["vp_order_sgm"])
                  + "; WSGM " + " < ".join(p["vp_order_wsgm"]) + ". Predicted (Gao–Nguyen–Zhu): "
                  "vp_exponential < vp_polynomial < vp_linear < vp_constant.", ""]
    return "\n".join(lines)
