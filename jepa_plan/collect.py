"""Collect an episode data set from any registered env with its own exploration policy.

Library function only; the command line is wrapped around `collect_episodes`. The env
simulates a chunk of episodes at a time (`env.collect`), to bound memory; they are written in
the format of `jepa_plan.data.episodes`, and the manifest records the env config (name and
resolution included: training and planning refuse data from another env or resolution) and
the env's coverage statistics over the whole data set.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jepa_plan.data.episodes import FORMAT, MANIFEST, episode_name, write_episode, write_manifest
from jepa_plan.envs import MissingExtra, make_env


def collect_episodes(
    env_cfg: Any,
    out_dir: str | Path,
    episodes: int,
    steps: int,
    seed: int,
    chunk_size: int = 100,
    overwrite: bool = False,
) -> dict:
    """Write `episodes` episodes of `steps` frames to out_dir and return the manifest.

    env_cfg: an env config dataclass, or a mapping with `name` and any of its fields.
    The manifest's stats hold the env's coverage statistics (`env.coverage`: two_rooms' door
    crossing fraction, PointMaze's visited cells, ...), the action mean/std, the frame count
    and the wall seconds. Deterministic given seed and chunk_size. An existing data set in
    out_dir is replaced only with overwrite=True.
    """
    if episodes < 1 or steps < 2 or chunk_size < 1:
        raise ValueError(
            "collect_episodes: need episodes >= 1, steps >= 2, chunk_size >= 1; "
            f"got episodes={episodes}, steps={steps}, chunk_size={chunk_size}"
        )
    env = make_env(env_cfg)
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(f"{out / MANIFEST}: a dataset already exists here; pass overwrite=True to replace it")
        (out / MANIFEST).unlink()  # until the new manifest is written, this is not a dataset
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    all_states, all_actions = [], []  # small: kept for the coverage statistics, unlike the frames
    try:
        for first in range(0, episodes, chunk_size):
            n = min(chunk_size, episodes - first)
            chunk = env.collect(rng, n, steps)
            for i in range(n):
                write_episode(out / episode_name(first + i), chunk.frames[i], chunk.actions[i], chunk.states[i])
            all_states.append(chunk.states)
            all_actions.append(chunk.actions)
    finally:
        env.close()
    states, actions = np.concatenate(all_states), np.concatenate(all_actions)

    seconds = time.perf_counter() - start
    flat = actions.reshape(-1, actions.shape[-1]).astype(np.float64)
    stats = {
        **env.coverage(states, actions),
        "action_mean": flat.mean(0).tolist(),
        "action_std": flat.std(0).tolist(),
        "frames": episodes * steps,
        "seed": seed,
        "seconds": round(seconds, 2),
    }
    manifest = {
        "format": FORMAT,
        "env": dataclasses.asdict(env.cfg),
        "action_dim": env.action_dim,
        "state_dim": env.state_dim,
        "image_shape": [env.resolution, env.resolution, 3],
        "action_low": env.action_low.tolist(),
        "action_high": env.action_high.tolist(),
        "episodes": [{"name": episode_name(i), "length": steps} for i in range(episodes)],
        "stats": stats,
    }
    write_manifest(out, manifest)
    coverage = ", ".join(f"{k} {v:.3g}" for k, v in stats.items() if isinstance(v, float) and k != "seconds")
    print(f"collected {episodes} episodes, {episodes * steps} frames of {env.name} into {out} in {seconds:.1f} s: "
          f"{coverage}")
    return manifest


@dataclasses.dataclass
class CollectConfig:
    """`python -m jepa_plan.collect env=NAME episodes=1000 out=data/NAME` (any registered env)."""

    env: Any = None  # chosen by `env=<name>`; its fields as env.resolution=32 etc.
    episodes: int = 1000
    steps: int = 50
    out: str = "data/${env.name}"
    seed: int = 0
    overwrite: bool = False


def main(argv: list[str] | None = None) -> None:
    from jepa_plan.config import ConfigError, load_config  # the config layer sits above this module

    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv, preset="collect", schema=CollectConfig)
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    try:
        collect_episodes(cfg.env, cfg.out, episodes=cfg.episodes, steps=cfg.steps, seed=cfg.seed,
                         overwrite=cfg.overwrite)
    except FileExistsError as err:
        sys.exit(f"{err} (overwrite=true on the command line)")
    except (MissingExtra, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
