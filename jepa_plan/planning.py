"""Planning wiring: world model + env + goals -> every planner on the same goals -> reports.

Files of a run, all under `output_dir`:

    config.yaml           the fully resolved config
    results.json          per-planner summary (success rate and 95% CI, seconds, transitions; for GRASP,
                          where its plans' quality came from: report.DIAGNOSTIC_COLUMNS) + config
    episodes.csv          one row per (planner, episode)
    cost_vs_iteration.png, success_vs_time.png
    videos/<planner>/ep_XXX.gif
    wandb/                offline W&B run (table, plots, videos)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from jepa_plan.config import ConfigError, PlanConfig, load_config, to_container
from jepa_plan.data import open_data_dir, open_source
from jepa_plan.data.source import DatasetError
from jepa_plan.envs import MissingExtra, make_env
from jepa_plan.envs.base import Env
from jepa_plan.evaluation.goals import GoalError, goal_sources, make_goals
from jepa_plan.evaluation.mpc import BoundsError, check_bounds, run_episodes
from jepa_plan.evaluation.report import (
    DIAGNOSTIC_COLUMNS,
    format_table,
    plot_costs,
    plot_success_vs_time,
    summarize,
    write_episodes_csv,
    write_gifs,
    write_results,
)
from jepa_plan.wandb_dirs import fallback_to_offline, keep_wandb_files_in, usable_wandb_mode
from planners import PLANNERS, Planner, build_planner
from world_models import CheckpointError, WorldModel


def log(msg: str) -> None:
    print(f"[jepa-plan] {msg}", flush=True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_world_model(cfg: DictConfig, env: Env, device: torch.device):
    """The trained world model named by `checkpoint=`, or the env's oracle."""
    if cfg.world_model == "oracle":
        try:
            return env.oracle(frameskip=cfg.oracle_frameskip, wall_softness=cfg.oracle_wall_softness).to(device)
        except NotImplementedError as err:
            raise ConfigError(str(err)) from None
    if not cfg.checkpoint:
        raise ConfigError("world_model=checkpoint needs checkpoint=PATH (a world_model.pt from train.py), "
                          "or use world_model=oracle")
    wm = WorldModel.from_checkpoint(cfg.checkpoint, map_location=device)
    trained_env = wm.meta.get("env", {})
    if trained_env.get("name") != env.name or trained_env.get("resolution") != env.resolution:
        raise CheckpointError(
            f"{cfg.checkpoint}: trained on env {trained_env.get('name')!r} at {trained_env.get('resolution')} px, "
            f"but this run plans in {env.name!r} at {env.resolution} px; pass env={trained_env.get('name')} "
            f"env.resolution={trained_env.get('resolution')} to match")
    return wm


def build_env(cfg: DictConfig) -> Env:
    """The run's env; its goal sets extend the generic goal sources, and `goals=` must name one."""
    try:
        env = make_env(to_container(cfg.env))
    except MissingExtra as err:
        raise ConfigError(str(err)) from None
    if cfg.goals not in goal_sources(env):
        raise ConfigError(f"goals='{cfg.goals}' is not a goal source of env {env.name!r}; "
                          f"valid: {', '.join(goal_sources(env))}")
    return env


def check_plan_bounds(cfg: DictConfig) -> None:
    """episodes, horizon, max_steps and replan_every must each be at least 1."""
    try:
        check_bounds(episodes=cfg.episodes, horizon=cfg.horizon, max_steps=cfg.max_steps,
                     replan_every=cfg.replan_every)
    except BoundsError as err:
        raise ConfigError(str(err)) from None


def build_planners(cfg: DictConfig) -> dict[str, Planner]:
    """Name -> planner; a name is a registered planner or a variant in `planner.<name>.planner`."""
    settings = to_container(cfg.planner) if cfg.planner else {}
    planners = {}
    for name in cfg.planners:
        options = dict(settings.get(name) or {})
        base = options.pop("planner", name)
        if base not in PLANNERS:
            variants = sorted(k for k, v in settings.items() if isinstance(v, dict) and "planner" in v)
            raise ConfigError(f"unknown planner '{name}'; registered planners: {', '.join(sorted(PLANNERS))}"
                              + (f"; variants in this config: {', '.join(variants)}" if variants else ""))
        try:
            planners[name] = build_planner(base, **options)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"planner.{name}: {err}") from None
    return planners


def goal_set(cfg: DictConfig, env: Env, wm, rng: np.random.Generator, horizon: int | None = None):
    """The run's goals; dataset goals lie `goal_offset` env steps ahead when the config names
    one (a published protocol), else `horizon` (default cfg.horizon) model steps. They come from
    `data_dir=` when given, else from the data the model trained on (any source with states)."""
    data, val_names = None, None
    if cfg.goals == "dataset":
        try:
            if cfg.data_dir:
                data = open_data_dir(cfg.data_dir, env.resolution)
            elif isinstance(wm, WorldModel) and wm.meta.get("config", {}).get("data"):
                data = open_source(wm.meta["config"]["data"], env.resolution)
                val_names = wm.meta.get("val_names")  # held-out episodes, when the checkpoint records them
        except DatasetError as err:
            raise ConfigError(str(err)) from None
        if data is None:
            raise ConfigError("goals=dataset needs data_dir= (the oracle has no training data of its own)")
    offset = cfg.goal_offset or (horizon or cfg.horizon) * wm.frameskip
    return make_goals(cfg.goals, env, cfg.episodes, rng, offset=offset, data=data,
                      val_names=val_names, image=cfg.goal_image, goal_frames=cfg.goal_frames)


def run_planners(cfg: DictConfig, wm, planners: dict[str, Planner], env, goals, device: str | torch.device,
                 horizon: int | None = None):
    """Every planner in turn on the same goals: yields (name, EpisodeLog, summary) as each finishes."""
    for name, planner in planners.items():
        episodes = run_episodes(wm, planner, env, goals, horizon=horizon or cfg.horizon, mode=cfg.mode,
                                replan_every=cfg.replan_every, max_steps=cfg.max_steps, device=device, seed=cfg.seed)
        yield name, episodes, summarize(episodes)


def log_to_wandb(cfg: DictConfig, out: Path, summaries: dict, plots: list[Path], gifs: dict[str, list[Path]]) -> None:
    mode = usable_wandb_mode(cfg.logger.wandb.mode)
    if mode == "disabled":
        return
    keep_wandb_files_in(out)
    import wandb

    def init(mode: str):
        return wandb.init(project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity, dir=str(out),
                          mode=mode, job_type="plan", config=to_container(cfg), name=out.name)

    try:
        run = init(mode)
    except Exception as err:  # a key W&B refuses, a server that stops answering: the results are written
        if mode != "online":
            raise
        run = init(fallback_to_offline(f"wandb.init failed ({type(err).__name__}: {err})"))
    columns = ["planner", "success_rate", "ci_low", "ci_high", "median_seconds_to_success", "seconds_per_replan",
               "transitions", "final_distance_mean", *DIAGNOSTIC_COLUMNS]
    table = wandb.Table(columns=columns)
    for name, s in summaries.items():
        table.add_data(name, s["success_rate"], *s["success_ci95"], s["median_seconds_to_success"],
                       s["seconds_per_replan"], s["transitions"], s["final_distance_mean"],
                       *(s.get(key) for key in DIAGNOSTIC_COLUMNS))
    payload = {"plan/results": table, **{f"plan/{p.stem}": wandb.Image(str(p)) for p in plots}}
    for name, s in summaries.items():
        payload[f"plan/{name}/success_rate"] = s["success_rate"]
        for key in DIAGNOSTIC_COLUMNS:  # GRASP only: where its plans' quality came from
            if s.get(key) is not None:
                payload[f"plan/{name}/{key}"] = s[key]
        if gifs.get(name):
            payload[f"plan/{name}/videos"] = [wandb.Video(str(p), format="gif") for p in gifs[name][:4]]
    run.log(payload)
    run.finish()


def run(cfg: DictConfig) -> dict:
    started = time.time()
    check_plan_bounds(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    env = build_env(cfg)
    wm = load_world_model(cfg, env, device)
    planners = build_planners(cfg)
    try:
        goals = goal_set(cfg, env, wm, np.random.default_rng(cfg.seed))
    except GoalError as err:
        raise ConfigError(str(err)) from None
    log(f"{len(goals)} {goals.kind} goals, horizon {cfg.horizon} model steps (frameskip {wm.frameskip}), "
        f"{cfg.mode}" + (f", replan every {cfg.replan_every}, budget {cfg.max_steps} env steps" if cfg.mode == "mpc" else "")
        + f", on {device}")

    logs, summaries = {}, {}
    for name, episodes, s in run_planners(cfg, wm, planners, env, goals, device):
        logs[name], summaries[name] = episodes, s
        log(f"{name}: success {s['success_rate']:.0%}, {s['seconds_per_replan']:.3f} s per replan")

    title = f"{goals.kind} goals, {cfg.mode}, H={cfg.horizon}, {len(goals)} episodes"
    table = format_table(summaries, title)
    print(table, flush=True)
    write_results(out, summaries, to_container(cfg), {"goals": goals.kind})
    write_episodes_csv(out, logs, goals)
    (out / "table.txt").write_text(table + "\n")
    plots = [plot_costs(out, logs), plot_success_vs_time(out, logs)]
    limit = None if cfg.videos < 0 else cfg.videos
    gifs = {name: write_gifs(out, name, logs[name], goals.goal_frames, limit) for name in logs} if limit != 0 else {}
    log_to_wandb(cfg, out, summaries, plots, gifs)
    log(f"done in {time.time() - started:.0f}s; results in {out}/results.json")
    return {"planners": summaries, "goals": goals.kind}


def main(argv: list[str] | None = None) -> None:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv, preset="plan", schema=PlanConfig, groups=("env",))
        run(cfg)
    except (ConfigError, CheckpointError) as err:
        sys.exit(f"error: {err}")
