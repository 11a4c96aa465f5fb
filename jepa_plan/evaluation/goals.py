"""Goal sources: where the (start, goal) pairs of an evaluation come from.

Every source returns a `GoalSet`; every planner in a run is evaluated on the same one. The
sources are generic; an env adds its own goal sets (`env.GOAL_SETS`, e.g. two_rooms' `door`).

- `dataset`: a held-out episode's frame t as start, its frame t + offset as goal (reachable by
  construction, DESIGN.md evaluation protocol); the offset is H * frameskip unless a protocol
  names it (TwoRoom: 100 env steps). The goal image is the data set's frame as stored
  (`goal_frames="data"`), or the env's render of the goal state (`"env"`, as stable-worldmodel's
  `reset(options={'goal_state': ...})` makes it): the two differ only when the data set went
  through a lossy codec (a LeRobot AV1 copy);
- `random`: start and goal drawn by `env.sample_states`, pairs that are already solved redrawn;
- `image`: one goal image file for every episode (random starts); the true goal state is read
  off the image when the env can (`env.state_from_frame`), else unknown and success is not judged;
- any name in `env.GOAL_SETS`: the env's own `goal_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_plan.data.episodes import check_env
from jepa_plan.data.source import DataSource
from jepa_plan.envs.base import Env

SOURCES = ("dataset", "random", "image")  # generic; an env adds its GOAL_SETS
GOAL_FRAMES = ("data", "env")  # where a dataset goal's image comes from


class GoalError(ValueError):
    """A goal source cannot produce goals (bad image, no long-enough episodes); names the input."""


@dataclass
class GoalSet:
    """N start/goal pairs: start_states [N, S], goal_states [N, S] (NaN rows when unknown),
    goal_frames uint8 [N, H, W, 3], kind (the source's name)."""

    start_states: np.ndarray
    goal_states: np.ndarray
    goal_frames: np.ndarray
    kind: str

    def __len__(self) -> int:
        return len(self.start_states)


def goal_sources(env: Env) -> tuple[str, ...]:
    """The goal sources `env` can draw from: the generic ones and its own goal sets."""
    return SOURCES + tuple(kind for kind in env.GOAL_SETS if kind not in SOURCES)


def make_goals(source: str, env: Env, n: int, rng: np.random.Generator, *, offset: int = 20,
               data: DataSource | None = None, val_names: list[str] | None = None,
               image: str | None = None, goal_frames: str = "data") -> GoalSet:
    """`n` start/goal pairs from `source` (see module docstring); `offset` env steps and
    `goal_frames` (data | env) for `dataset`."""
    if source not in goal_sources(env):
        raise GoalError(f"unknown goal source {source!r} for env {env.name!r}; valid: {', '.join(goal_sources(env))}")
    if n < 1:
        raise GoalError(f"episodes={n} must be at least 1")
    if source == "dataset":
        return dataset_goals(data, val_names, n, offset, rng, env, goal_frames)
    if source == "image":
        frame = load_goal_image(image, env.resolution)
        goal_state = env.state_from_frame(frame)
        return GoalSet(env.sample_states(rng, n), np.repeat(goal_state[None], n, 0), np.repeat(frame[None], n, 0),
                       "image")
    starts, goals = env.goal_pairs(source, rng, n)
    return GoalSet(starts, goals, env.render_states(goals), source)


def dataset_goals(data: DataSource | None, val_names: list[str] | None, n: int, offset: int,
                  rng: np.random.Generator, env: Env, goal_frames: str = "data") -> GoalSet:
    """Start = frame t of a held-out episode, goal = frame t + offset of the same episode; the
    data set must come from `env` at its resolution (when it records an env), and carry states.
    The goal image is the stored frame (`goal_frames="data"`) or the env's render of the goal
    state (`"env"`)."""
    if goal_frames not in GOAL_FRAMES:
        raise GoalError(f"goal_frames={goal_frames!r}; valid: {', '.join(GOAL_FRAMES)}")
    if data is None:
        raise GoalError("goals=dataset needs data_dir= (a data set; by default the one the model trained on)")
    if data.env:
        check_env({"env": data.env}, data.root, env.name, env.resolution)
    if not data.has_states:
        raise GoalError(f"{data.root}: goals=dataset needs the true states of the episodes, and this data set "
                        "records none; use goals=image or goals=random")
    if data.image_size != env.resolution:
        raise GoalError(f"{data.root}: frames are {data.image_size} px, env {env.name!r} renders {env.resolution} px")
    names = [name for name in (val_names or data.names) if name in data.lengths and data.lengths[name] > offset]
    if not names:
        raise GoalError(f"{data.root}: no episode is longer than the goal offset of {offset} steps "
                        "(horizon * frameskip); lower the horizon or use goals=random")
    episodes = rng.choice(len(names), size=n, replace=n > len(names))
    starts, goals, frames = [], [], []
    for i in episodes:
        ep = data.episode(names[i])
        t = int(rng.integers(0, len(ep) - offset))
        starts.append(ep.states[t])
        goals.append(ep.states[t + offset])
        if goal_frames == "data":  # decode the stored frame only when it is the goal image
            frames.append(np.array(ep.frames[t + offset]))
    goals = np.stack(goals)
    frames = np.stack(frames) if goal_frames == "data" else env.render_states(goals)
    return GoalSet(np.stack(starts), goals, frames, "dataset")


def load_goal_image(path: str | None, resolution: int) -> np.ndarray:
    """An RGB image file -> uint8 [R, R, 3]; other sizes are resized, RGBA / grey converted."""
    from PIL import Image, UnidentifiedImageError

    if not path:
        raise GoalError("goals=image needs goal_image=PATH")
    file = Path(path)
    if not file.is_file():
        raise GoalError(f"goal image {file}: file not found")
    try:
        image = Image.open(file)
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise GoalError(f"goal image {file}: not a readable image ({err})") from None
    if image.mode not in ("RGB", "RGBA", "L", "P"):
        raise GoalError(f"goal image {file}: mode {image.mode} is not an RGB, RGBA, grey or palette image")
    if image.size[0] != image.size[1]:
        raise GoalError(f"goal image {file}: {image.size[0]}x{image.size[1]} is not square; "
                        f"the env renders {resolution}x{resolution}")
    image = image.convert("RGB")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).copy()
