"""Collect an episode dataset from the built-in two_rooms env with its exploration policy.

Library function only; the command line is wrapped around `collect_episodes`. Episodes are
simulated together with the vectorised `step_states` (the env's own dynamics), a chunk of
episodes at a time to bound memory, then rendered and written in the format of
`jepa_plan.data.episodes`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jepa_plan.data.episodes import FORMAT, MANIFEST, episode_name, write_episode, write_manifest
from jepa_plan.envs import env_config
from jepa_plan.envs.two_rooms import (
    TwoRoomsConfig,
    TwoRoomsExplorer,
    crossed_door,
    render_states,
    sample_free_state,
    step_states,
)


def simulate(cfg: TwoRoomsConfig, n: int, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Run the exploration policy in n episodes from random free starts.

    -> states float32 [n, steps, 2] (state at frame t), actions float32 [n, steps, 2]
    (action taken at frame t; the state it leads to after the last step is not kept).
    """
    state = sample_free_state(rng, n, cfg)
    explorer = TwoRoomsExplorer(cfg, rng)
    explorer.reset(state)
    states = np.empty((n, steps, 2), dtype=np.float32)
    actions = np.empty((n, steps, 2), dtype=np.float32)
    for t in range(steps):
        states[:, t] = state
        actions[:, t] = explorer.act(state)
        state = step_states(state, actions[:, t], cfg)
    return states, actions


def collect_episodes(
    env_cfg: TwoRoomsConfig,
    out_dir: str | Path,
    episodes: int,
    steps: int,
    seed: int,
    chunk_size: int = 100,
    overwrite: bool = False,
) -> dict:
    """Write `episodes` episodes of `steps` frames to out_dir and return the manifest.

    env_cfg: a TwoRoomsConfig (or a mapping with its fields and name="two_rooms").
    The manifest's stats hold door_crossing_fraction (episodes that were fully in both rooms,
    see `two_rooms.crossed_door`), left_room_fraction (frames with x < 0),
    blocked_step_fraction (steps a wall or the border shortened), and the action mean/std.
    Deterministic given seed and chunk_size. An existing dataset in out_dir is replaced only
    with overwrite=True.
    """
    cfg = env_config(env_cfg)
    if cfg.name != "two_rooms":
        raise ValueError(
            f"collect_episodes: only the built-in env 'two_rooms' has an exploration policy, got {cfg.name!r}"
        )
    if episodes < 1 or steps < 2 or chunk_size < 1:
        raise ValueError(
            "collect_episodes: need episodes >= 1, steps >= 2, chunk_size >= 1; "
            f"got episodes={episodes}, steps={steps}, chunk_size={chunk_size}"
        )
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(f"{out / MANIFEST}: a dataset already exists here; pass overwrite=True to replace it")
        (out / MANIFEST).unlink()  # until the new manifest is written, this is not a dataset
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    crossed, left, blocked = 0, 0, 0
    action_sum, action_sq = np.zeros(2), np.zeros(2)
    for first in range(0, episodes, chunk_size):
        n = min(chunk_size, episodes - first)
        states, actions = simulate(cfg, n, steps, rng)
        frames = render_states(states.reshape(-1, 2), cfg).reshape(n, steps, cfg.resolution, cfg.resolution, 3)
        for i in range(n):
            write_episode(out / episode_name(first + i), frames[i], actions[i], states[i])

        # Statistics, accumulated per chunk.
        crossed += int(crossed_door(states, cfg).sum())
        left += int((states[..., 0] < 0).sum())
        moved = np.linalg.norm(np.diff(states, axis=1), axis=-1)
        commanded = cfg.max_speed * np.linalg.norm(actions[:, :-1], axis=-1)
        blocked += int((moved < commanded - 1e-5).sum())
        action_sum += actions.sum(axis=(0, 1))
        action_sq += (actions.astype(np.float64) ** 2).sum(axis=(0, 1))

    frames_total = episodes * steps
    mean = action_sum / frames_total
    seconds = time.perf_counter() - start
    stats = {
        "door_crossing_fraction": crossed / episodes,
        "left_room_fraction": left / frames_total,
        "blocked_step_fraction": blocked / (episodes * (steps - 1)),
        "action_mean": mean.tolist(),
        "action_std": np.sqrt(np.maximum(action_sq / frames_total - mean**2, 0)).tolist(),
        "frames": frames_total,
        "seed": seed,
        "seconds": round(seconds, 2),
    }
    manifest = {
        "format": FORMAT,
        "env": dataclasses.asdict(cfg),
        "action_dim": 2,
        "state_dim": 2,
        "image_shape": [cfg.resolution, cfg.resolution, 3],
        "action_low": [-1.0, -1.0],
        "action_high": [1.0, 1.0],
        "episodes": [{"name": episode_name(i), "length": steps} for i in range(episodes)],
        "stats": stats,
    }
    write_manifest(out, manifest)
    print(
        f"collected {episodes} episodes, {frames_total} frames into {out}: "
        f"door crossing {stats['door_crossing_fraction']:.1%}, {seconds:.1f} s"
    )
    return manifest


@dataclasses.dataclass
class CollectConfig:
    """`python -m jepa_plan.collect env=two_rooms episodes=1000 out=data/two_rooms`."""

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


if __name__ == "__main__":
    main()
