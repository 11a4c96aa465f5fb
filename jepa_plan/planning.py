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

from jepa_plan.config import ConfigError, PlanConfig, load_config, to_container, to_dataclass
from jepa_plan.envs import ENV_CONFIGS
from jepa_plan.envs.oracle import TwoRoomsOracle
from jepa_plan.envs.two_rooms import TwoRoomsBatch
from jepa_plan.evaluation.goals import GoalError, make_goals
from jepa_plan.evaluation.mpc import run_episodes
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
from jepa_plan.wandb_dirs import keep_wandb_files_in
from planners import PLANNERS, Planner, build_planner
from world_models import CheckpointError, WorldModel


def log(msg: str) -> None:
    print(f"[jepa-plan] {msg}", flush=True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_world_model(cfg: DictConfig, env_cfg, device: torch.device):
    """The trained world model named by `checkpoint=`, or the env's oracle."""
    if cfg.world_model == "oracle":
        return TwoRoomsOracle(env_cfg, frameskip=cfg.oracle_frameskip, wall_softness=cfg.oracle_wall_softness).to(device)
    if not cfg.checkpoint:
        raise ConfigError("world_model=checkpoint needs checkpoint=PATH (a world_model.pt from train.py), "
                          "or use world_model=oracle")
    wm = WorldModel.from_checkpoint(cfg.checkpoint, map_location=device)
    trained_env = wm.meta.get("env", {})
    if trained_env.get("name") != env_cfg.name or trained_env.get("resolution") != env_cfg.resolution:
        raise CheckpointError(
            f"{cfg.checkpoint}: trained on env {trained_env.get('name')!r} at {trained_env.get('resolution')} px, "
            f"but this run plans in {env_cfg.name!r} at {env_cfg.resolution} px; pass env= / env.resolution= to match")
    return wm


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


def goal_set(cfg: DictConfig, env_cfg, wm, rng: np.random.Generator, horizon: int | None = None):
    """The run's goals; dataset goals lie `horizon` (default cfg.horizon) model steps ahead."""
    data_dir, val_names = cfg.data_dir, None
    if cfg.goals == "dataset" and isinstance(wm, WorldModel):
        trained = wm.meta.get("config", {})
        data_dir = data_dir or trained.get("data", {}).get("dir")
        val_names = wm.meta.get("val_names")  # held-out episodes, when the checkpoint records them
    if cfg.goals == "dataset" and data_dir is None:
        raise ConfigError("goals=dataset needs data_dir= (the oracle has no training data of its own)")
    offset = (horizon or cfg.horizon) * wm.frameskip
    return make_goals(cfg.goals, env_cfg, cfg.episodes, rng, offset=offset, data_dir=data_dir,
                      val_names=val_names, image=cfg.goal_image)


def run_planners(cfg: DictConfig, wm, planners: dict[str, Planner], env, goals, device: str | torch.device,
                 horizon: int | None = None):
    """Every planner in turn on the same goals: yields (name, EpisodeLog, summary) as each finishes."""
    for name, planner in planners.items():
        episodes = run_episodes(wm, planner, env, goals, horizon=horizon or cfg.horizon, mode=cfg.mode,
                                replan_every=cfg.replan_every, max_steps=cfg.max_steps, device=device, seed=cfg.seed)
        yield name, episodes, summarize(episodes)


def log_to_wandb(cfg: DictConfig, out: Path, summaries: dict, plots: list[Path], gifs: dict[str, list[Path]]) -> None:
    if cfg.logger.wandb.mode == "disabled":
        return
    keep_wandb_files_in(out)
    import wandb

    run = wandb.init(project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity, dir=str(out),
                     mode=cfg.logger.wandb.mode, job_type="plan", config=to_container(cfg), name=out.name)
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
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    env_cfg = to_dataclass(cfg.env, ENV_CONFIGS[cfg.env.name])
    wm = load_world_model(cfg, env_cfg, device)
    planners = build_planners(cfg)
    try:
        goals = goal_set(cfg, env_cfg, wm, np.random.default_rng(cfg.seed))
    except GoalError as err:
        raise ConfigError(str(err)) from None
    env = TwoRoomsBatch(env_cfg)
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
