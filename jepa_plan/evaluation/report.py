"""Turn per-planner episode logs into the run's outputs: table, JSON, CSV, plots, GIFs.

Written once for every planner (STYLE habit 5). Files under the run's output folder:

    results.json        {"planners": {NAME: {...summary...}}, "config": {...}}; planners that return
                        diagnostics (GRASP) add DIAGNOSTIC_COLUMNS (`diagnostics_summary`)
    episodes.csv        one row per (planner, episode)
    cost_vs_iteration.png, success_vs_time.png
    videos/NAME/ep_XXX.gif   executed frames beside the goal image, labelled success / failure
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from jepa_plan.evaluation.mpc import EpisodeLog


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0% and 100%, unlike +- 1.96 sd)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p of two runs on the same goals: of the goals exactly one run
    solved, `a_only` went to A and `b_only` to B; under no difference each is a fair coin."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def summarize(log: EpisodeLog) -> dict:
    """Aggregate figures of one planner's episodes (the keys of results.json)."""
    n = len(log.success)
    wins = int(log.success.sum())
    times = log.seconds_to_success[log.success]
    steps = log.success_step[log.success]
    failures = {reason: int((log.failure == reason).sum()) for reason in set(log.failure) if reason}
    return {
        "episodes": n,
        "success_rate": wins / n if n else float("nan"),
        "success_ci95": list(wilson_interval(wins, n)),
        "median_seconds_to_success": float(np.median(times)) if len(times) else None,
        "median_steps_to_success": float(np.median(steps)) if len(steps) else None,
        "seconds_per_replan": float(np.median(log.replan_seconds)) if log.replan_seconds else None,
        "replans": len(log.replan_seconds),
        "transitions": int(log.transitions),
        "transitions_per_replan": int(log.transitions / max(1, len(log.replan_seconds))),
        "final_distance_mean": float(np.nanmean(log.final_distance)) if n else None,
        "model_cost_mean": float(np.nanmean(log.model_cost)) if np.isfinite(log.model_cost).any() else None,
        "failures": failures,
        **diagnostics_summary(log.diagnostics),
    }


# ----------------------------------------------------------------------------- where a GRASP plan's quality comes from
# GRASP probes the true shooting cost of its actions at the start, before and after every sync
# and at the end. The chain start -> before sync 1 -> after sync 1 -> ... -> end telescopes, so
# the total drop splits exactly into the lifted phases' drops and the syncs' drops.

DIAGNOSTIC_COLUMNS = ("lifted_loss_first", "lifted_loss_last", "lifted_loss_rise_between_syncs", "rollout_gap_final",
                      "shooting_cost_start", "shooting_cost_end", "sync_share")
NEEDED = ("cost_trace", "probe_iteration", "shooting_cost", "synced_cost", "rollout_gap")


def diagnostics_summary(records: list[dict[str, np.ndarray]]) -> dict[str, float | None]:
    """DIAGNOSTIC_COLUMNS over every replan's record (`mpc.plan_diagnostics`: episode means).

    A record holds `cost_trace [iters]` (GRASP: the lifted loss before each iteration's step),
    `probe_iteration [P]`, `shooting_cost [P]`, `synced_cost [P]` and `rollout_gap [P, T - 1]`.

    - `lifted_loss_first`, `lifted_loss_last`: mean over replans of the trace's first and last value
    - `lifted_loss_rise_between_syncs`: median over every interval between consecutive probes
      (the start, each sync, the end; intervals of one iteration skipped) of the lifted loss at
      its last iteration over the loss at its first; > 1: the loss climbs between syncs
    - `rollout_gap_final`: mean over replans of the gap at the last probe, averaged over steps
    - `shooting_cost_start`, `shooting_cost_end`: mean over replans of the shooting cost of
      the first actions and of the final ones (after the last sync)
    - `sync_share`: the syncs' share of the drop start -> end, sum over syncs of
      (before - after) / (start - end), pooled over replans (1 - sync_share is the lifted
      phases'); None when the total drop is zero

    All None when no record holds the keys (planners without diagnostics).
    """
    records = [r for r in records if all(key in r for key in NEEDED)]
    if not records:
        return dict.fromkeys(DIAGNOSTIC_COLUMNS)
    ratios = [ratio for r in records for ratio in rise_between_probes(r["cost_trace"], r["probe_iteration"])]
    gaps = [r["rollout_gap"][-1].mean() for r in records if r["rollout_gap"][-1].size]
    start = np.mean([r["shooting_cost"][0] for r in records])
    end = np.mean([r["synced_cost"][-1] for r in records])
    sync_drop = np.mean([np.sum(r["shooting_cost"] - r["synced_cost"]) for r in records])
    total_drop = start - end
    tiny = 1e-12 * max(1.0, abs(start), abs(end))
    return {
        "lifted_loss_first": _finite(np.mean([r["cost_trace"][0] for r in records])),
        "lifted_loss_last": _finite(np.mean([r["cost_trace"][-1] for r in records])),
        "lifted_loss_rise_between_syncs": _finite(np.median(ratios)) if ratios else None,
        "rollout_gap_final": _finite(np.mean(gaps)) if gaps else None,
        "shooting_cost_start": _finite(start),
        "shooting_cost_end": _finite(end),
        "sync_share": _finite(sync_drop / total_drop) if abs(total_drop) > tiny else None,
    }


def rise_between_probes(trace: np.ndarray, probe_iteration: np.ndarray) -> list[float]:
    """trace [iters] (value before each iteration's step), probe_iteration [P] -> one ratio per
    interval [a, b) between consecutive probes: trace[b - 1] / trace[a], the loss at the last
    iteration before the probe at b over the first one after the probe at a. Intervals of one
    iteration (nothing to compare) and zero or non-finite starts are skipped."""
    ratios = []
    for a, b in zip(probe_iteration[:-1], probe_iteration[1:]):
        a, b = int(a), min(int(b), len(trace))
        if b - a >= 2 and np.isfinite(trace[a]) and trace[a] > 0:
            ratios.append(float(trace[b - 1] / trace[a]))
    return ratios


def _finite(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def diagnostics_line(name: str, s: dict) -> str | None:
    """One line on where a plan's quality came from, or None for planners without diagnostics."""
    if s.get("lifted_loss_first") is None:
        return None
    rise, gap, share = s["lifted_loss_rise_between_syncs"], s["rollout_gap_final"], s["sync_share"]
    parts = [f"lifted loss {_g(s['lifted_loss_first'])} -> {_g(s['lifted_loss_last'])}"
             + ("" if rise is None else f" (x{rise:.2f} between syncs)"),
             f"rollout gap {_g(gap)}",
             f"shooting cost {_g(s['shooting_cost_start'])} -> {_g(s['shooting_cost_end'])}",
             "no drop to share" if share is None else f"syncs did {share:.0%} of the drop"]
    return f"{name}: " + ", ".join(parts)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def format_table(summaries: dict[str, dict], title: str = "") -> str:
    """The console table: one row per planner."""
    header = f"{'planner':<18} {'success':>8} {'95% CI':>13} {'med s to succ':>13} {'s/replan':>9} " \
             f"{'transitions':>12} {'final dist':>10}"
    lines = ([title] if title else []) + [header, "-" * len(header)]
    for name, s in summaries.items():
        lo, hi = s["success_ci95"]
        med = "-" if s["median_seconds_to_success"] is None else f"{s['median_seconds_to_success']:.2f}"
        per = "-" if s["seconds_per_replan"] is None else f"{s['seconds_per_replan']:.3f}"
        lines.append(f"{name:<18} {s['success_rate']:>7.0%} {f'[{lo:.0%}, {hi:.0%}]':>13} {med:>13} {per:>9} "
                     f"{s['transitions']:>12,} {s['final_distance_mean']:>10.3f}")
    notes = [line for name, s in summaries.items() if (line := diagnostics_line(name, s))]
    return "\n".join(lines + ([""] + notes if notes else []))


def write_results(out: Path, summaries: dict[str, dict], config: dict, extra: dict | None = None) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps({"planners": summaries, "config": config, **(extra or {})}, indent=2))
    return path


def write_episodes_csv(out: Path, logs: dict[str, EpisodeLog], goals) -> Path:
    """One row per (planner, episode); the env's start and goal states as start_0.., goal_0.. (any state size)."""
    path = out / "episodes.csv"
    dim = goals.start_states.shape[1]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["planner", "episode", "success", "success_step", "seconds_to_success", "final_distance",
                         "model_cost", "failure", *(f"start_{i}" for i in range(dim)), *(f"goal_{i}" for i in range(dim))])
        for name, log in logs.items():
            for i in range(len(log.success)):
                writer.writerow([name, i, int(log.success[i]), int(log.success_step[i]),
                                 _num(log.seconds_to_success[i]), _num(log.final_distance[i]), _num(log.model_cost[i]),
                                 log.failure[i], *map(_num, goals.start_states[i]), *map(_num, goals.goal_states[i])])
    return path


def read_episodes_csv(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """What `write_episodes_csv` wrote -> {planner: {"episode" [n], "success" [n] bool, "start" [n, d],
    "goal" [n, d]}}, in the file's order; a missing or empty file is named."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such episodes.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no episodes")
    dim = sum(key.startswith("start_") for key in rows[0])
    runs = {}
    for planner in dict.fromkeys(r["planner"] for r in rows):
        mine = [r for r in rows if r["planner"] == planner]
        runs[planner] = {
            "episode": np.array([int(r["episode"]) for r in mine]),
            "success": np.array([float(r["success"]) > 0 for r in mine]),
            "start": np.array([[float(r[f"start_{i}"]) for i in range(dim)] for r in mine]).reshape(len(mine), dim),
            "goal": np.array([[float(r[f"goal_{i}"]) for i in range(dim)] for r in mine]).reshape(len(mine), dim),
        }
    return runs


def _num(x) -> str:
    return "" if not np.isfinite(x) else f"{float(x):.6g}"


def new_axes(rows: int = 1, cols: int = 1):
    """A headless matplotlib figure and axes, 6x4 inches each (imported here: only plotting needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=rows * cols == 1)


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_costs(out: Path, logs: dict[str, EpisodeLog]) -> Path:
    """Each planner's first plan (means over episodes): its cost vs iteration, log scale; with
    planners that return diagnostics (GRASP), three more panels on that plan: (a) the lifted
    loss and its dynamics defect, syncs dotted; (b) the shooting cost before and after each
    sync, joined: slopes are the lifted phases, drops at one iteration the syncs; (c) the
    mean rollout gap at each probe. One colour per planner in every panel."""
    colours = {name: f"C{i % 10}" for i, name in enumerate(logs)}
    firsts = {name: log.diagnostics[0] for name, log in logs.items()
              if log.diagnostics and all(key in log.diagnostics[0] for key in NEEDED)}
    fig, axes = new_axes(2, 2) if firsts else new_axes()
    ax = axes[0, 0] if firsts else axes
    for name, log in logs.items():
        if log.cost_traces:
            trace = log.cost_traces[0]
            ax.plot(np.arange(1, len(trace) + 1), trace, label=name, color=colours[name])
    ax.set(xlabel="iteration", ylabel="cost (mean over episodes)", yscale="log", title="first plan: cost vs iteration")
    ax.legend(fontsize="small")
    if firsts:
        plot_lifted_loss(axes[0, 1], firsts, colours)
        plot_shooting_cost(axes[1, 0], firsts, colours)
        plot_rollout_gap(axes[1, 1], firsts, colours)
    return save_figure(fig, out / "cost_vs_iteration.png")


def plot_lifted_loss(ax, firsts: dict[str, dict], colours: dict[str, str]) -> None:
    """Lifted loss (solid) and defect (dashed) vs iterations done, a dotted line at each sync."""
    for name, r in firsts.items():
        ax.plot(np.arange(len(r["cost_trace"])), r["cost_trace"], color=colours[name], label=name)
        if "defect" in r:
            ax.plot(np.arange(len(r["defect"])), r["defect"], color=colours[name], linestyle="--")
        synced = r["probe_iteration"][r["synced_cost"] != r["shooting_cost"]]
        for k in synced:
            ax.axvline(k, color=colours[name], linestyle=":", alpha=0.6)
    ax.set(xlabel="iterations done", ylabel="mean over episodes", yscale=_scale(firsts, "cost_trace", "defect"),
           title="lifted loss (solid), defect (dashed), syncs (dotted)")
    ax.legend(fontsize="small")


def plot_shooting_cost(ax, firsts: dict[str, dict], colours: dict[str, str]) -> None:
    """Shooting cost at each probe before (o) and after (v) its sync, joined in order."""
    for name, r in firsts.items():
        steps = np.repeat(r["probe_iteration"], 2)
        costs = np.stack([r["shooting_cost"], r["synced_cost"]], axis=1).reshape(-1)
        ax.plot(steps, costs, color=colours[name], label=name)
        ax.plot(r["probe_iteration"], r["shooting_cost"], "o", color=colours[name])
        ax.plot(r["probe_iteration"], r["synced_cost"], "v", color=colours[name], fillstyle="none")
    ax.set(xlabel="iterations done", ylabel="shooting cost (mean over episodes)",
           yscale=_scale(firsts, "shooting_cost", "synced_cost"),
           title="shooting cost: lifted phases (slopes), syncs (drops); o before, v after")
    ax.legend(fontsize="small")


def plot_rollout_gap(ax, firsts: dict[str, dict], colours: dict[str, str]) -> None:
    """Mean squared gap between the virtual states and the rollout, averaged over steps, per probe."""
    for name, r in firsts.items():
        gap = r["rollout_gap"]
        if gap.shape[-1]:
            ax.plot(r["probe_iteration"], gap.mean(-1), "o-", color=colours[name], label=name)
    ax.set(xlabel="iterations done", ylabel="mean squared gap per element",
           yscale=_scale(firsts, "rollout_gap"), title="virtual states vs rollout: gap at each probe")
    ax.legend(fontsize="small")


def _scale(records: dict[str, dict], *keys: str) -> str:
    """log where every value plotted is positive, else linear."""
    values = [r[k] for r in records.values() for k in keys if k in r and r[k].size]
    return "log" if values and all((v > 0).all() for v in values) else "linear"


def plot_success_vs_time(out: Path, logs: dict[str, EpisodeLog]) -> Path:
    """Fraction of episodes solved within t planning seconds, per planner."""
    fig, ax = new_axes()
    for name, log in logs.items():
        times = np.sort(log.seconds_to_success[log.success])
        if len(times) == 0:
            continue
        n = len(log.success)
        ax.step(np.concatenate([[0], times]), np.arange(len(times) + 1) / n, where="post", label=name)
    ax.set(xlabel="planning seconds", ylabel="success rate", ylim=(0, 1), title="success vs planning time")
    ax.legend()
    return save_figure(fig, out / "success_vs_time.png")


def write_gifs(out: Path, name: str, log: EpisodeLog, goal_frames: np.ndarray, limit: int | None = None,
               scale: int = 3) -> list[Path]:
    """One GIF per episode: executed frames | goal image, with a success / failure banner."""
    from PIL import Image, ImageDraw

    folder = out / "videos" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(log.success) if limit is None else min(limit, len(log.success))):
        last = log.success_step[i] if log.success[i] else log.frames.shape[1] - 1
        label = "success" if log.success[i] else (log.failure[i] or "failure")
        colour = (40, 160, 40) if log.success[i] else (200, 40, 40)
        images = []
        for frame in log.frames[i, : last + 1]:
            pair = np.concatenate([frame, np.full((frame.shape[0], 2, 3), 255, np.uint8), goal_frames[i]], axis=1)
            image = Image.fromarray(pair).resize((pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST)
            canvas = Image.new("RGB", (image.width, image.height + 14), colour)
            canvas.paste(image, (0, 14))
            ImageDraw.Draw(canvas).text((3, 1), f"{name} ep {i}: {label}   (left: agent, right: goal)", fill=(255, 255, 255))
            images.append(canvas)
        path = folder / f"ep_{i:03d}.gif"
        images[0].save(path, save_all=True, append_images=images[1:] + [images[-1]] * 5, duration=100, loop=0)
        paths.append(path)
    return paths
