"""two_rooms as a single-episode gymnasium env (`reset` / `step` on one agent), for users who
want the standard gymnasium API; evaluation uses the batched `TwoRoomsEnv`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from jepa_plan.envs.two_rooms.world import TwoRoomsConfig, geometry, is_free, render_states, room_of, sample_free_state, step_states


class TwoRoomsGymEnv(gym.Env):
    """Gymnasium env over `step_states` and `render_states`.

    Observations are uint8 [H, W, 3] images; actions float32 [2] in [-1, 1]. Without a goal
    the reward is 0; with `reset(options={"goal_state": g})` it is -distance to g and the
    episode terminates on success. Episodes truncate at cfg.max_episode_steps.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cfg: TwoRoomsConfig | None = None, render_mode: str | None = "rgb_array"):
        self.cfg = cfg if cfg is not None else TwoRoomsConfig()
        self.geo = geometry(self.cfg)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"TwoRoomsGymEnv: render_mode={render_mode!r} is not supported; use 'rgb_array'")
        self.render_mode = render_mode
        res = self.cfg.resolution
        self.observation_space = gym.spaces.Box(0, 255, shape=(res, res, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._state: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state", "goal_state"}
        if unknown:
            raise ValueError(f"TwoRoomsGymEnv.reset: unknown options {sorted(unknown)}; valid: ['goal_state', 'state']")
        if options.get("state") is not None:
            state = self._checked_state(options["state"], "options['state']")
        else:
            state = sample_free_state(self.np_random, 1, self.cfg)[0]
        goal = options.get("goal_state")
        self._goal = None if goal is None else self._checked_state(goal, "options['goal_state']")
        self._state = state
        self._steps = 0
        return self.render(), self._info()

    def step(self, action):
        if self._state is None:
            raise RuntimeError("TwoRoomsGymEnv: call reset() before step()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (2,) or not np.isfinite(action).all():
            raise ValueError(f"TwoRoomsGymEnv.step: action must be 2 finite numbers, got {action!r}")
        self._state = step_states(self._state[None], action[None], self.cfg)[0]
        self._steps += 1
        reward, terminated = 0.0, False
        if self._goal is not None:
            reward = -float(np.linalg.norm(self._state - self._goal))
            terminated = bool(self.is_success(self._state, self._goal))
        truncated = self._steps >= self.cfg.max_episode_steps
        return self.render(), reward, terminated, truncated, self._info()

    def _info(self) -> dict:
        info = {"state": self._state.copy()}
        if self._goal is not None:
            info["goal_state"] = self._goal.copy()
            info["is_success"] = bool(self.is_success(self._state, self._goal))
        return info

    def _checked_state(self, state, what: str) -> np.ndarray:
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if state.shape != (2,) or not is_free(state, self.cfg):
            raise ValueError(
                f"TwoRoomsGymEnv: {what}={state.tolist()} is not a free position "
                f"(|x|, |y| <= {self.geo.bound:.3f}, not in the wall |x| < {self.geo.wall_x:.3f} "
                f"outside the door |y| <= {self.geo.door_y:.3f})"
            )
        return state

    def get_state(self) -> np.ndarray:
        """Current agent position, float32 [2] (a copy)."""
        if self._state is None:
            raise RuntimeError("TwoRoomsGymEnv: call reset() before get_state()")
        return self._state.copy()

    def set_state(self, state) -> None:
        """Teleport the agent to a free position [2]."""
        self._state = self._checked_state(state, "state")

    def render(self) -> np.ndarray:
        """Current frame, uint8 [H, W, 3]."""
        if self._state is None:
            raise RuntimeError("TwoRoomsGymEnv: call reset() before render()")
        return render_states(self._state[None], self.cfg)[0]

    def render_state(self, state) -> np.ndarray:
        """Image of any state(s): [2] -> uint8 [H, W, 3]; [N, 2] -> uint8 [N, H, W, 3]."""
        state = np.asarray(state, dtype=np.float32)
        if state.ndim == 1:
            return render_states(state[None], self.cfg)[0]
        return render_states(state, self.cfg)

    def is_success(self, state, goal_state):
        """Distance < success_radius over leading dims [..., 2]; bool, or bool array if batched."""
        dist = np.linalg.norm(np.asarray(state, np.float32) - np.asarray(goal_state, np.float32), axis=-1)
        success = dist < self.cfg.success_radius
        return bool(success) if success.ndim == 0 else success

    def sample_free_state(self, rng: np.random.Generator | None = None, n: int = 1, room: int | None = None):
        """n free positions [n, 2]; uses the env's seeded generator when rng is None."""
        return sample_free_state(self.np_random if rng is None else rng, n, self.cfg, room)

    @staticmethod
    def room_of(states) -> np.ndarray:
        """states [..., 2] -> -1 (left) / +1 (right)."""
        return room_of(states)
