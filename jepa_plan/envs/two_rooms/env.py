"""two_rooms behind the batched env protocol (`jepa_plan.envs.base.Env`).

All N episodes live in one states array and step through the vectorised `step_states`; frames
come from `render_states`. The env declares its goal sets (`door`: start and goal in different
rooms, `same_room`), collects data with `TwoRoomsExplorer`, offers its own dynamics as an
oracle world model and reads the agent's position off an image goal.
"""

from __future__ import annotations

import numpy as np

from jepa_plan.envs.base import Collected, Env
from jepa_plan.envs.two_rooms.explorer import TwoRoomsExplorer
from jepa_plan.envs.two_rooms.world import (
    TwoRoomsConfig,
    crossed_door,
    geometry,
    is_free,
    render_states,
    room_of,
    sample_free_state,
    step_states,
)


class TwoRoomsEnv(Env):
    """N two_rooms episodes stepped together; states are agent centres [N, 2] in world units."""

    GOAL_SETS = ("door", "same_room")
    state_dim = 2

    def __init__(self, cfg: TwoRoomsConfig | None = None):
        cfg = cfg if cfg is not None else TwoRoomsConfig()
        super().__init__(cfg)
        self.geo = geometry(cfg)  # validates the config
        self.action_low = np.full(2, -1.0, dtype=np.float32)
        self.action_high = np.full(2, 1.0, dtype=np.float32)
        self._states: np.ndarray | None = None

    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        bad = ~is_free(start_states, self.cfg)
        if bad.any():
            raise ValueError(f"two_rooms: start states {start_states[bad][:3].tolist()} are not free positions")
        self._states = start_states.copy()
        return render_states(self._states, self.cfg)

    def _step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        self._states[active] = step_states(self._states[active], actions[active], self.cfg)
        return render_states(self._states, self.cfg)

    def states(self) -> np.ndarray:
        if self._states is None:
            raise RuntimeError("two_rooms: call reset() before states()")
        return self._states.copy()

    def goal_distance(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(states, np.float32) - np.asarray(goals, np.float32), axis=-1)

    def render_states(self, states: np.ndarray) -> np.ndarray:
        return render_states(self.check_states(states), self.cfg)

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return sample_free_state(rng, n, self.cfg)

    def goal_pairs(self, kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`door`: start and goal in different rooms (outside the door corridor), so a plan
        must find the door; `same_room`: both in one room; `random`: anywhere. Goals that a
        start already solves are drawn again, for every kind."""
        if kind not in self.GOAL_SETS:
            return super().goal_pairs(kind, rng, n)
        rooms = rng.choice([-1, 1], size=n)
        goal_rooms = rooms if kind == "same_room" else -rooms
        starts, goals = np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
        for room in (-1, 1):  # two vectorised draws, one per room
            starts[rooms == room] = sample_free_state(rng, int((rooms == room).sum()), self.cfg, room=room)
            goals[goal_rooms == room] = sample_free_state(rng, int((goal_rooms == room).sum()), self.cfg, room=room)
        close = self.goal_distance(starts, goals) < 2 * self.cfg.success_radius
        while close.any():
            idx = np.flatnonzero(close)
            for room in (-1, 1):
                pick = idx[goal_rooms[idx] == room]
                goals[pick] = sample_free_state(rng, len(pick), self.cfg, room=room)
            close = self.goal_distance(starts, goals) < 2 * self.cfg.success_radius
        return starts, goals

    def collect(self, rng: np.random.Generator, n: int, steps: int) -> Collected:
        """The exploration policy from uniform free starts: states [n, T, 2] (state at frame t),
        actions [n, T, 2] (action taken at frame t), frames [n, T, R, R, 3]."""
        state = sample_free_state(rng, n, self.cfg)
        explorer = TwoRoomsExplorer(self.cfg, rng)
        explorer.reset(state)
        states = np.empty((n, steps, 2), dtype=np.float32)
        actions = np.empty((n, steps, 2), dtype=np.float32)
        for t in range(steps):
            states[:, t] = state
            actions[:, t] = explorer.act(state)
            state = step_states(state, actions[:, t], self.cfg)
        res = self.cfg.resolution
        frames = render_states(states.reshape(-1, 2), self.cfg).reshape(n, steps, res, res, 3)
        return Collected(states, actions, frames)

    def coverage(self, states: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """door_crossing_fraction: episodes that were fully in both rooms (`crossed_door`);
        left_room_fraction: frames with x < 0; blocked_step_fraction: steps that a wall or the
        border shortened."""
        moved = np.linalg.norm(np.diff(states, axis=1), axis=-1)
        commanded = self.cfg.max_speed * np.linalg.norm(np.clip(actions[:, :-1], -1, 1), axis=-1)
        return {
            "door_crossing_fraction": float(crossed_door(states, self.cfg).mean()),
            "left_room_fraction": float((room_of(states) < 0).mean()),
            "blocked_step_fraction": float((moved < commanded - 1e-5).mean()),
        }

    def oracle(self, frameskip: int = 1, wall_softness: float = 0.0):
        from jepa_plan.envs.two_rooms.oracle import TwoRoomsOracle

        return TwoRoomsOracle(self.cfg, frameskip=frameskip, wall_softness=wall_softness)

    def state_from_frame(self, frame: np.ndarray) -> np.ndarray:
        """The agent's centre read off its colour in an image [R, R, 3] (NaN if none is seen)."""
        import torch

        oracle = self.oracle()
        return oracle.encode(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None, None])[0, 0].numpy()
