"""Compute-matched planner frontier: success against planning seconds and transitions (not a test).

Every planner family runs at several budgets on the same goals, at every horizon, in open loop
and MPC, so a claim that one planner beats another is read at matched seconds, with intervals:

    python benchmarks/bench_planners.py world_model=oracle goals=door horizons=[20,30,40] modes=[open_loop,mpc] episodes=30 threads=1
    python benchmarks/bench_planners.py checkpoint=outputs/train/two_rooms/world_model.pt goals=door horizons=[20,30,40] modes=[open_loop,mpc] episodes=30 threads=1
    python benchmarks/bench_planners.py world_model=oracle 'budgets={cem: [{samples: 64, iterations: 5, elites: 8}], gd: [{iterations: 30}]}'
    python benchmarks/bench_planners.py world_model=oracle planners=[grasp,cem]   # one budget each, plan.yaml's settings

Takes every key of plan.py's config (configs/plan.yaml) plus:

    budgets           {family: [overrides, ...]}: each entry is one planner, the family's plan.yaml
                      settings with those overrides (`cem 300x30 top30`). A family is a registered
                      planner or a plan.yaml variant. Default: DEFAULT_BUDGETS below. `budgets=`
                      replaces the whole mapping, `budgets.cem=[...]` cem's list alone.
                      `planners=[a,b]` adds a and b at their plan.yaml settings, one budget each;
                      without `budgets`, it runs only those (the benchmark as it was).
    horizons          [20, 30, 40] model steps
    modes             [open_loop]; `modes=[open_loop,mpc]` runs both on the same goals (plan.py's
                      `mode=mpc` is read as `modes=[mpc]`)
    devices           cpu, and cuda when a GPU is present
    max_steps         MPC env-step budget; unset: horizon * frameskip, the open-loop plan's length
    reference_family  cem: the family whose points the matched-seconds table compares against

and writes, under output_dir (default outputs/bench/<env>):

    bench.csv      one row per (device, mode, horizon, planner), appended as each finishes
    bench.md       (a) every row, (b) each family's Pareto frontier, (c) every family's best
                   point within each reference point's seconds, with the difference and its CI
    frontier_seconds_<mode>.png, frontier_transitions_<mode>.png   one panel per horizon
                   (`_<device>` appended when the run covers several devices)
    config.yaml    the resolved config and the budgets run

Seconds are wall seconds of one batched `plan` call for all episodes (`seconds_per_replan`,
median over replans). `planning_seconds_per_episode` is the mean over episodes of the planning
seconds each one took part in: up to the replan whose actions reached the goal, else every
replan; in open loop it equals the one replan's seconds. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import OmegaConf

from jepa_plan.config import ConfigError, PlanConfig, load_config, to_container
from jepa_plan.evaluation.goals import GoalError
from jepa_plan.evaluation.mpc import EpisodeLog, run_episodes
from jepa_plan.evaluation.report import new_axes, save_figure, summarize, wilson_interval
from jepa_plan.planning import build_env, build_planners, goal_set, load_world_model
from planners import Planner
from world_models import CheckpointError

# Sized for 2 CPU cores, each family keeping the field's reference point (reference/grasp.md).
DEFAULT_BUDGETS = {
    "cem": [{"samples": 300, "iterations": 30, "elites": 30},  # DINO-WM
            {"samples": 128, "iterations": 10, "elites": 16},
            {"samples": 64, "iterations": 5, "elites": 8}],
    "mppi": [{"samples": 512, "iterations": 6, "elites": 64},  # TD-MPC2
             {"samples": 256, "iterations": 6, "elites": 32},
             {"samples": 128, "iterations": 4, "elites": 16}],
    "gd": [{"iterations": 300}, {"iterations": 100}, {"iterations": 30}],
    "grasp_authors_cem": [{"iterations": 750}, {"iterations": 200}, {"iterations": 100}],  # sync every 50
    "grasp_authors_gd": [{"iterations": 750}, {"iterations": 200}],
    "grasp": [{}],  # the authors' code defaults: 200 iterations, GD sync every 50
    "grasp_tuned": [{"iterations": 400}, {"iterations": 200}, {"iterations": 100}],  # ours: plan.yaml
}
MODES = ("open_loop", "mpc")
DIAGNOSTICS = ("sync_share", "lifted_loss_rise_between_syncs", "rollout_gap_final")  # GRASP only
COLUMNS = ("device", "mode", "horizon", "family", "planner", "episodes", "success_rate", "ci_low", "ci_high",
           "seconds_per_replan", "planning_seconds_per_episode", "transitions_per_replan", "replans",
           "median_seconds_to_success", "final_distance", *DIAGNOSTICS)


@dataclass
class BenchConfig(PlanConfig):
    budgets: Optional[dict] = None  # {family: [overrides, ...]}; None: DEFAULT_BUDGETS (module docstring)
    horizons: list = field(default_factory=lambda: [20, 30, 40])
    modes: list = field(default_factory=lambda: ["open_loop"])
    devices: list = field(default_factory=lambda: ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    max_steps: Optional[int] = None  # MPC env-step budget; None: horizon * frameskip, as open loop
    reference_family: str = "cem"
    output_dir: str = "outputs/bench/${env.name}"


@dataclass
class Budget:
    family: str
    label: str
    planner: Planner


# ----------------------------------------------------------------------------- budgets -> planners


def resolve_budgets(cfg, argv: list[str]) -> dict[str, list[dict]]:
    """{family: [overrides]} from the command line `argv` and the loaded `cfg`.

    `budgets=` replaces the whole mapping; `budgets.cem=[...]` replaces cem's list in
    DEFAULT_BUDGETS; `planners=[a,b]` adds each name that has no budgets at its plan.yaml
    settings, one budget each, and alone (no `budgets`) runs only those.
    """
    planners_given = any(a.startswith("planners=") for a in argv)
    replace = any(a.startswith("budgets=") for a in argv) or (planners_given and cfg.budgets is None)
    budgets = {} if replace else {family: [dict(o) for o in entries] for family, entries in DEFAULT_BUDGETS.items()}
    budgets.update(to_container(cfg.budgets) if cfg.budgets is not None else {})
    for family, entries in budgets.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"budgets.{family} must be a list of override mappings, e.g. "
                              f"[{{iterations: 30}}], got {entries!r}")
    if planners_given:
        budgets.update({name: [{}] for name in cfg.planners if name not in budgets})
    if not budgets:
        raise ConfigError("no planners to run: give budgets= or planners=")
    return budgets


def budget_label(family: str, overrides: dict, planner: Planner) -> str:
    """'cem 300x30 top30', 'gd 100 it', 'grasp_authors_cem 750 it lr_states=0.05' (the planner's
    effective sizes, then any other override); the family alone when there are no overrides."""
    if not overrides:
        return family
    config = planner.config
    parts, shown = [], {"samples", "iterations", "elites"}
    if {"samples", "iterations"} <= set(vars(config)):
        parts.append(f"{config.samples}x{config.iterations}")
        if "elites" in vars(config):
            parts.append(f"top{config.elites}")
    elif "iterations" in vars(config):
        parts.append(f"{config.iterations} it")
    parts += [f"{k}={v}" for k, v in overrides.items() if k not in shown]
    return " ".join([family, *parts])


def expand_budgets(cfg, budgets: dict[str, list[dict]]) -> list[Budget]:
    """One planner per budget: the family's plan.yaml settings with the budget's overrides on top.

    Unknown families and keys raise ConfigError naming the valid ones (`build_planners`' checks).
    """
    settings = to_container(cfg.planner) if cfg.planner else {}
    out, labels = [], set()
    for family, entries in budgets.items():
        for i, overrides in enumerate(entries or [{}]):
            if "planner" in overrides:
                raise ConfigError(f"budgets.{family}[{i}]: 'planner' is set by the family, not a budget")
            options = {**(settings.get(family) or {}), **overrides}
            one = OmegaConf.create({"planners": [family], "planner": {**settings, family: options}})
            try:
                planner = build_planners(one)[family]
            except ConfigError as err:
                raise ConfigError(f"budgets.{family}[{i}]: {err}") from None
            label = budget_label(family, overrides, planner)
            if label in labels:
                raise ConfigError(f"budgets.{family}: two budgets are both '{label}'")
            labels.add(label)
            out.append(Budget(family, label, planner))
    return out


# ----------------------------------------------------------------------------- rows


def planning_seconds_per_episode(log: EpisodeLog) -> float:
    """Mean over episodes of the batched planning seconds each took part in: up to the replan
    that reached the goal (`seconds_to_success`), else every replan of the run."""
    total = float(np.sum(log.replan_seconds))
    return float(np.mean(np.where(log.success, log.seconds_to_success, total)))


def bench_row(device: str, mode: str, horizon: int, budget: Budget, log: EpisodeLog) -> dict:
    s = summarize(log)
    return {"device": device, "mode": mode, "horizon": horizon, "family": budget.family, "planner": budget.label,
            "episodes": s["episodes"], "success_rate": s["success_rate"], "ci_low": s["success_ci95"][0],
            "ci_high": s["success_ci95"][1], "seconds_per_replan": s["seconds_per_replan"],
            "planning_seconds_per_episode": planning_seconds_per_episode(log),
            "transitions_per_replan": s["transitions_per_replan"], "replans": s["replans"],
            "median_seconds_to_success": s["median_seconds_to_success"], "final_distance": s["final_distance_mean"],
            **{key: s.get(key) for key in DIAGNOSTICS}}


def pareto_front(points: list[dict], x: str = "seconds_per_replan") -> list[dict]:
    """The points no cheaper (or equally cheap) point beats: success only rises with `x`.

    points: rows of one family with `x` and `success_rate` -> those on the frontier, by `x`.
    """
    front, best = [], -math.inf
    for p in sorted((p for p in points if p[x] is not None), key=lambda p: (p[x], -p["success_rate"])):
        if p["success_rate"] > best:
            front.append(p)
            best = p["success_rate"]
    return front


def difference_interval(a: dict, b: dict) -> tuple[float, float, float]:
    """Success a - b with Newcombe's 95% interval from the two Wilson intervals (rows with
    success_rate, ci_low, ci_high). Unpaired, so conservative for the same goals."""
    d = a["success_rate"] - b["success_rate"]
    low = d - math.hypot(a["success_rate"] - a["ci_low"], b["ci_high"] - b["success_rate"])
    high = d + math.hypot(a["ci_high"] - a["success_rate"], b["success_rate"] - b["ci_low"])
    return d, low, high


def matched_seconds(rows: list[dict], reference: str = "cem") -> list[dict]:
    """For each point of the `reference` family, the best point of every other family that spends
    at most its seconds per replan (highest success, then cheapest), or None where none does.

    rows: one (device, mode, horizon)'s rows -> [{"reference", "family", "best", "difference",
    "verdict"}]; verdict is "better" / "worse" when the difference's 95% CI excludes 0.
    """
    out = []
    families = list(dict.fromkeys(r["family"] for r in rows if r["family"] != reference))
    for ref in (r for r in rows if r["family"] == reference and r["seconds_per_replan"] is not None):
        for family in families:
            cheaper = [r for r in rows if r["family"] == family and r["seconds_per_replan"] is not None
                       and r["seconds_per_replan"] <= ref["seconds_per_replan"]]
            best = max(cheaper, key=lambda r: (r["success_rate"], -r["seconds_per_replan"]), default=None)
            diff = difference_interval(best, ref) if best else None
            verdict = ("-" if not diff else "better" if diff[1] > 0 else "worse" if diff[2] < 0
                       else "no clear difference")
            out.append({"reference": ref, "family": family, "best": best, "difference": diff, "verdict": verdict})
    return out


# ----------------------------------------------------------------------------- report


def _pct(r: dict) -> str:
    return f"{r['success_rate']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]"


def _num(x, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(device, mode, horizon) -> its rows, in run order."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["device"], r["mode"], r["horizon"]), []).append(r)
    return out


def markdown(rows: list[dict], reference: str, header: str) -> str:
    lines = [f"# Planner frontier\n\n{header}\n", "## (a) Every budget\n"]
    for (device, mode, horizon), rs in groups(rows).items():
        lines += [f"### {device}, {mode}, H={horizon}\n",
                  "| planner | success [95% CI] | s/replan | planning s/episode | transitions/replan | "
                  "med s to success | final dist | sync share | lifted rise | rollout gap |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['planner']} | {_pct(r)} | {_num(r['seconds_per_replan'])} | "
                  f"{_num(r['planning_seconds_per_episode'])} | {r['transitions_per_replan']:,} | "
                  f"{_num(r['median_seconds_to_success'], '.2f')} | {_num(r['final_distance'])} | "
                  f"{_num(r['sync_share'], '.0%')} | {_num(r['lifted_loss_rise_between_syncs'], '.2f')} | "
                  f"{_num(r['rollout_gap_final'], '.3g')} |" for r in rs]
        lines.append("")
    lines.append("## (b) Pareto frontier per family (success only rises with seconds per replan)\n")
    for (device, mode, horizon), rs in groups(rows).items():
        lines += [f"### {device}, {mode}, H={horizon}\n", "| family | frontier: planner (s/replan: success [95% CI]) |",
                  "|---|---|"]
        for family in dict.fromkeys(r["family"] for r in rs):
            front = pareto_front([r for r in rs if r["family"] == family])
            lines.append(f"| {family} | " + "; ".join(f"{p['planner']} ({p['seconds_per_replan']:.3f} s: {_pct(p)})"
                                                     for p in front) + " |")
        lines.append("")
    lines += [f"## (c) Matched seconds: each family's best point within each {reference} point's seconds per replan\n",
              "Difference = family - reference, Newcombe 95% CI (unpaired, so conservative on shared goals); "
              "'better' or 'worse' only where that interval excludes 0.\n"]
    for (device, mode, horizon), rs in groups(rows).items():
        matches = matched_seconds(rs, reference)
        if not matches:
            lines += [f"### {device}, {mode}, H={horizon}\n", f"No {reference} points (or no other family) here.\n"]
            continue
        lines += [f"### {device}, {mode}, H={horizon}\n",
                  f"| {reference} point | s/replan | success [95% CI] | family | its best point within those seconds | "
                  "s/replan | success [95% CI] | difference [95% CI] | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for m in matches:
            ref, best = m["reference"], m["best"]
            theirs = ("none that cheap", "-", "-", "-") if best is None else (
                best["planner"], f"{best['seconds_per_replan']:.3f}", _pct(best),
                "{:+.0%} [{:+.0%}, {:+.0%}]".format(*m["difference"]))
            lines.append(f"| {ref['planner']} | {ref['seconds_per_replan']:.3f} | {_pct(ref)} | {m['family']} | "
                         + " | ".join(theirs) + f" | {m['verdict']} |")
        lines.append("")
    return "\n".join(lines)


def plot_frontiers(rows: list[dict], x: str, xlabel: str, path: Path, title: str = "") -> Path:
    """One panel per horizon (titled `title, H = ...`): each family's points in budget order with
    Wilson 95% error bars, its Pareto frontier as a dashed step line; x log scale."""
    horizons = sorted({r["horizon"] for r in rows})
    fig, axes = new_axes(1, len(horizons))
    axes = np.atleast_1d(axes).reshape(-1)
    families = list(dict.fromkeys(r["family"] for r in rows))
    for ax, horizon in zip(axes, horizons):
        for i, family in enumerate(families):
            pts = [r for r in rows if r["horizon"] == horizon and r["family"] == family and r[x] is not None]
            if not pts:
                continue
            colour = f"C{i % 10}"
            y = np.array([p["success_rate"] for p in pts])
            err = np.array([[p["success_rate"] - p["ci_low"] for p in pts],
                            [p["ci_high"] - p["success_rate"] for p in pts]])
            ax.errorbar([p[x] for p in pts], y, yerr=err, marker="o", color=colour, label=family, capsize=3, alpha=0.8)
            front = pareto_front(pts, x)
            ax.step([p[x] for p in front], [p["success_rate"] for p in front], where="post", color=colour,
                    linestyle="--", linewidth=2.5, alpha=0.4)
            for p in pts:
                ax.annotate(p["planner"][len(family):].strip(), (p[x], p["success_rate"]), fontsize=6)
        ax.set(xscale="log", xlabel=xlabel, ylabel="success rate", ylim=(-0.02, 1.02),
               title=f"{title}, H = {horizon}" if title else f"H = {horizon}")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- run


def check(cfg) -> None:
    bad = [m for m in cfg.modes if m not in MODES]
    if bad:
        raise ConfigError(f"modes: {bad} not among {', '.join(MODES)}")
    if not cfg.horizons or any(h < 1 for h in cfg.horizons):
        raise ConfigError(f"horizons={list(cfg.horizons)} must be positive model-step counts")


def run(cfg, budgets: list[Budget]) -> list[dict]:
    """Every budget on the same goals per horizon, in every mode and on every device -> rows."""
    started = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({**to_container(cfg), "budgets": {b.label: {"family": b.family,
                   **vars(b.planner.config)} for b in budgets}}), out / "config.yaml")
    env = build_env(cfg)
    rows = []
    with (out / "bench.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for device in cfg.devices:
            wm = load_world_model(cfg, env, torch.device(device))
            for horizon in cfg.horizons:
                # Same goals for every budget and mode at this horizon (and on every device).
                goals = goal_set(cfg, env, wm, np.random.default_rng(cfg.seed), horizon=horizon)
                max_steps = cfg.max_steps or horizon * wm.frameskip
                for mode in cfg.modes:
                    for budget in budgets:
                        log = run_episodes(wm, budget.planner, env, goals, horizon=horizon, mode=mode,
                                           replan_every=cfg.replan_every, max_steps=max_steps, device=device,
                                           seed=cfg.seed)
                        row = bench_row(device, mode, horizon, budget, log)
                        rows.append(row)
                        writer.writerow(row)
                        f.flush()  # a run killed midway keeps its rows
                        print(f"{device:>4} {mode:<9} H={horizon:<3} {budget.label:<32} success {_pct(row):<16} "
                              f"{_num(row['seconds_per_replan'])} s/replan  "
                              f"{_num(row['planning_seconds_per_episode'])} s/episode  "
                              f"{row['transitions_per_replan']:>11,} transitions/replan", flush=True)

    budget_note = ("MPC: replan every " f"{cfg.replan_every} model steps, budget "
                   + (f"{cfg.max_steps}" if cfg.max_steps else "horizon * frameskip") + " env steps; "
                   if "mpc" in cfg.modes else "")
    header = (f"{cfg.goals} goals, {cfg.episodes} episodes, world model {cfg.world_model}"
              + (f" ({cfg.checkpoint})" if cfg.world_model == "checkpoint" else "")
              + f", threads {cfg.threads or torch.get_num_threads()}. Open loop executes each plan whole; "
              + budget_note + "s/replan is one batched plan call for every episode (median over replans).")
    (out / "bench.md").write_text(markdown(rows, cfg.reference_family, header) + "\n")
    suffix = len(cfg.devices) > 1
    for device in cfg.devices:
        for mode in cfg.modes:
            sel = [r for r in rows if r["device"] == device and r["mode"] == mode]
            tag = f"{mode}_{device}" if suffix else mode
            title = f"{cfg.goals} goals, {mode}, {device}"
            plot_frontiers(sel, "seconds_per_replan", "seconds per replan (batched)",
                           out / f"frontier_seconds_{tag}.png", title)
            plot_frontiers(sel, "transitions_per_replan", "transitions per replan",
                           out / f"frontier_transitions_{tag}.png", title)
    print(f"wrote {out}/bench.csv, bench.md and frontier plots in {time.time() - started:.0f}s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not any(a.startswith("modes=") for a in argv):  # plan.py's `mode=mpc` means one mode here
        argv = [f"modes=[{a.split('=', 1)[1]}]" if a.startswith("mode=") else a for a in argv]
    try:
        cfg = load_config(argv, preset="plan", schema=BenchConfig, groups=("env",))
        check(cfg)
        budgets = expand_budgets(cfg, resolve_budgets(cfg, argv))
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    try:
        return run(cfg, budgets)
    except (CheckpointError, GoalError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
