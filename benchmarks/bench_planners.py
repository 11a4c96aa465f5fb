"""Planner benchmark: horizon x planner on one world model and the same goals (not a test).

    python benchmarks/bench_planners.py world_model=oracle goals=door horizons=[10,20,30] planners=[grasp,cem,gd,mppi]
    python benchmarks/bench_planners.py checkpoint=outputs/train/two_rooms/world_model.pt goals=same_room episodes=50

Takes every key of plan.py's config (configs/plan.yaml) plus `horizons` and `devices`
(default: cpu, and cuda when a GPU is present). For each device and horizon it runs every
planner on the same starts and goals with `jepa_plan.evaluation.run_episodes` and writes,
under output_dir (default outputs/bench/<env>):

    bench.csv, bench.md       one row per (device, horizon, planner)
    success_vs_seconds.png    success rate vs median seconds per replan
    success_vs_transitions.png
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jepa_plan.config import ConfigError, PlanConfig, load_config, to_dataclass
from jepa_plan.envs import ENV_CONFIGS
from jepa_plan.envs.two_rooms import TwoRoomsBatch
from jepa_plan.evaluation.report import new_axes, save_figure
from jepa_plan.planning import build_planners, goal_set, load_world_model, run_planners


@dataclass
class BenchConfig(PlanConfig):
    horizons: list = field(default_factory=lambda: [5, 10, 20])
    devices: list = field(default_factory=lambda: ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    output_dir: str = "outputs/bench/${env.name}"


def plot(rows: list[dict], x: str, xlabel: str, path: Path) -> None:
    fig, ax = new_axes()
    for (device, name) in sorted({(r["device"], r["planner"]) for r in rows}):
        pts = sorted((r[x], r["success_rate"], r["horizon"]) for r in rows if r["planner"] == name and r["device"] == device)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name} ({device})")
        for px, py, h in pts:
            ax.annotate(f"H{h}", (px, py), fontsize=7)
    ax.set(xscale="log", xlabel=xlabel, ylabel="success rate", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv, preset="plan", schema=BenchConfig, groups=("env",))
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    env_cfg = to_dataclass(cfg.env, ENV_CONFIGS[cfg.env.name])
    env = TwoRoomsBatch(env_cfg)
    planners = build_planners(cfg)
    rows = []
    for device in cfg.devices:
        wm = load_world_model(cfg, env_cfg, torch.device(device))
        for horizon in cfg.horizons:
            # Same goals for every planner at this horizon (and on every device).
            goals = goal_set(cfg, env_cfg, wm, np.random.default_rng(cfg.seed), horizon=horizon)
            for name, _, s in run_planners(cfg, wm, planners, env, goals, device, horizon):
                row = {"device": device, "horizon": horizon, "planner": name, "success_rate": s["success_rate"],
                       "ci_low": s["success_ci95"][0], "ci_high": s["success_ci95"][1],
                       "seconds_per_replan": s["seconds_per_replan"], "transitions_per_replan": s["transitions_per_replan"],
                       "median_seconds_to_success": s["median_seconds_to_success"],
                       "final_distance": s["final_distance_mean"], "episodes": s["episodes"]}
                rows.append(row)
                print(f"{device:>5} H={horizon:<3} {name:<18} success {row['success_rate']:>5.0%} "
                      f"[{row['ci_low']:.0%}, {row['ci_high']:.0%}]  {row['seconds_per_replan']:.3f} s/replan  "
                      f"{row['transitions_per_replan']:>10,} transitions/replan", flush=True)

    with (out / "bench.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    budget = f"budget {cfg.max_steps} env steps" if cfg.mode == "mpc" else "each plan executed whole"
    lines = [f"{cfg.goals} goals, {cfg.mode}, {len(goals)} episodes, {budget}",
             "| device | H | planner | success | 95% CI | s/replan | transitions/replan | med s to success |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        med = "-" if r["median_seconds_to_success"] is None else f"{r['median_seconds_to_success']:.2f}"
        lines.append(f"| {r['device']} | {r['horizon']} | {r['planner']} | {r['success_rate']:.0%} | "
                     f"[{r['ci_low']:.0%}, {r['ci_high']:.0%}] | {r['seconds_per_replan']:.3f} | "
                     f"{r['transitions_per_replan']:,} | {med} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, "seconds_per_replan", "median seconds per replan", out / "success_vs_seconds.png")
    plot(rows, "transitions_per_replan", "transitions evaluated per replan", out / "success_vs_transitions.png")
    print(f"wrote {out}/bench.csv, bench.md and plots")


if __name__ == "__main__":
    main()
