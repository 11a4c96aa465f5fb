"""Turn per-planner episode logs into the run's outputs: table, JSON, CSV, plots, GIFs.

Written once for every planner (STYLE habit 5). Files under the run's output folder:

    results.json        {"planners": {NAME: {...summary...}}, "config": {...}}
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
    }


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
    return "\n".join(lines)


def write_results(out: Path, summaries: dict[str, dict], config: dict, extra: dict | None = None) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps({"planners": summaries, "config": config, **(extra or {})}, indent=2))
    return path


def write_episodes_csv(out: Path, logs: dict[str, EpisodeLog], goals) -> Path:
    path = out / "episodes.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["planner", "episode", "success", "success_step", "seconds_to_success", "final_distance",
                         "model_cost", "failure", "start_x", "start_y", "goal_x", "goal_y"])
        for name, log in logs.items():
            for i in range(len(log.success)):
                writer.writerow([name, i, int(log.success[i]), int(log.success_step[i]),
                                 _num(log.seconds_to_success[i]), _num(log.final_distance[i]), _num(log.model_cost[i]),
                                 log.failure[i], *map(_num, goals.start_states[i]), *map(_num, goals.goal_states[i])])
    return path


def _num(x) -> str:
    return "" if not np.isfinite(x) else f"{float(x):.6g}"


def new_axes():
    """A headless matplotlib figure and axes (imported here: only plotting needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_costs(out: Path, logs: dict[str, EpisodeLog]) -> Path:
    """Cost vs iteration of each planner's first plan (mean over episodes), log scale."""
    fig, ax = new_axes()
    for name, log in logs.items():
        if log.cost_traces:
            trace = log.cost_traces[0]
            ax.plot(np.arange(1, len(trace) + 1), trace, label=name)
    ax.set(xlabel="iteration", ylabel="cost (mean over episodes)", yscale="log", title="first plan: cost vs iteration")
    ax.legend()
    return save_figure(fig, out / "cost_vs_iteration.png")


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
