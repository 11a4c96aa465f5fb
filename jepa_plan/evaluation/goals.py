"""Goal sources: where the (start, goal) pairs of an evaluation come from.

Every source returns a `GoalSet`; every planner in a run is evaluated on the same one.

- `dataset`: a held-out episode's frame t as start, its frame t + H * frameskip as goal
  (reachable by construction, DESIGN.md evaluation protocol);
- `random`: random free start and goal states anywhere;
- `same_room`: start and goal in the same room;
- `door`: start and goal in different rooms, so the plan must go through the door;
- `image`: one goal image file for every episode (random starts); the true goal state is
  read off the image when the env can do that (two_rooms: the agent's colour), else unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_plan.data.episodes import EpisodeStore
from jepa_plan.envs.two_rooms import TwoRoomsConfig, render_states, sample_free_state

SOURCES = ("dataset", "random", "same_room", "door", "image")


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


def make_goals(source: str, env_cfg: TwoRoomsConfig, n: int, rng: np.random.Generator, *,
               offset: int = 20, data_dir: str | None = None, val_names: list[str] | None = None,
               image: str | None = None) -> GoalSet:
    """`n` start/goal pairs from `source` (see module docstring); `offset` env steps for `dataset`."""
    if source not in SOURCES:
        raise GoalError(f"unknown goal source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "dataset":
        return dataset_goals(data_dir, val_names, n, offset, rng)
    if source == "image":
        frame = load_goal_image(image, env_cfg.resolution)
        starts = sample_free_state(rng, n, env_cfg)
        goal_state = agent_position(frame, env_cfg)
        return GoalSet(starts, np.repeat(goal_state[None], n, 0), np.repeat(frame[None], n, 0), "image")
    if source == "random":
        starts, goals = sample_free_state(rng, n, env_cfg), sample_free_state(rng, n, env_cfg)
    else:
        rooms = rng.choice([-1, 1], size=n)
        goal_rooms = rooms if source == "same_room" else -rooms
        starts, goals = np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
        for room in (-1, 1):  # two vectorised draws, one per room
            starts[rooms == room] = sample_free_state(rng, int((rooms == room).sum()), env_cfg, room=room)
            goals[goal_rooms == room] = sample_free_state(rng, int((goal_rooms == room).sum()), env_cfg, room=room)
        # Goals already solved at the start would flatter every planner: resample them.
        close = np.linalg.norm(starts - goals, axis=1) < 2 * env_cfg.success_radius
        while close.any():
            idx = np.flatnonzero(close)
            for room in (-1, 1):
                pick = idx[goal_rooms[idx] == room]
                goals[pick] = sample_free_state(rng, len(pick), env_cfg, room=room)
            close = np.linalg.norm(starts - goals, axis=1) < 2 * env_cfg.success_radius
    return GoalSet(starts, goals, render_states(goals, env_cfg), source)


def dataset_goals(data_dir: str | None, val_names: list[str] | None, n: int, offset: int,
                  rng: np.random.Generator) -> GoalSet:
    """Start = frame t of a held-out episode, goal = frame t + offset of the same episode."""
    if data_dir is None:
        raise GoalError("goals=dataset needs data_dir= (an episode data set; by default the one the model trained on)")
    store = EpisodeStore(data_dir)
    names = [name for name in (val_names or store.names) if name in store.lengths and store.lengths[name] > offset]
    if not names:
        raise GoalError(f"{data_dir}: no episode is longer than the goal offset of {offset} steps "
                        "(horizon * frameskip); lower the horizon or use goals=random")
    episodes = rng.choice(len(names), size=n, replace=n > len(names))
    starts, goals, frames = [], [], []
    for i in episodes:
        ep = store.episode(names[i])
        t = int(rng.integers(0, len(ep) - offset))
        starts.append(ep.states[t])
        goals.append(ep.states[t + offset])
        frames.append(np.array(ep.frames[t + offset]))
    return GoalSet(np.stack(starts), np.stack(goals), np.stack(frames), "dataset")


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


def agent_position(frame: np.ndarray, env_cfg: TwoRoomsConfig) -> np.ndarray:
    """The agent centre read off a two_rooms image [R, R, 3] -> [2] (NaN if no agent is seen)."""
    import torch

    from jepa_plan.envs.oracle import TwoRoomsOracle

    oracle = TwoRoomsOracle(env_cfg)
    return oracle.encode(torch.from_numpy(frame).permute(2, 0, 1)[None, None])[0, 0].numpy()
