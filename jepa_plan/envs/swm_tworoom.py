"""tworoom: stable-worldmodel's `swm/TwoRoom-v1` behind the batched env protocol.

The env is `TwoRoomEnv` of stable-worldmodel 0.1.1 (the optional extra `envs`), one
gymnasium env per episode. All lengths are the env's own pixels of its 224 x 224 image,
x to the right, y down. The geometry is the env's init values, which nothing here varies
(read off the env when this adapter is built, not copied here):
- the agent is a Gaussian dot (std = radius = 7 px); its centre is clamped to
  [border + radius, 224 - border - radius] = [21, 203] on both axes;
- a vertical wall of 10 px at x = 112 with one door (centre y = 49, half-width 14); a centre
  with x in [wall_min, wall_max] = [100, 124] touches the wall and is only legal in the door;
- a step moves the centre by speed * clip(action) = 5 px per unit action; a move into the
  wall outside the door stops the disc 0.5 px short of it (x = 99.5 or 124.5);
- success is distance < 16 px, `TwoRoomEnv.step`'s `terminated`.
State: the agent centre (x, y), float32 [2]; nothing else enters the dynamics.

Frames: the env renders at 224 px only (its geometry is in those pixels), so frames are the
env's native render area-averaged down to cfg.resolution by cv2.INTER_AREA (each output pixel
the mean of the native pixels it covers; stable-worldmodel's own wrapper uses PIL bilinear).
The native renders are batched: `_render_native` is `TwoRoomEnv._render_frame` for N agents
at once, pixel for pixel, never with the target marker.

Protocol of stable-worldmodel's TwoRoom runs (its repository's scripts, not the wheel):
episodes of 100 steps from `ExpertPolicy(action_noise=2.0 or 3.0, action_repeat_prob=0.05
or 0.1)`, 10k of them; evaluation replays 50 dataset episodes with the goal 100 steps ahead,
a budget of 150 env steps, CEM horizon 5 with action blocks of 5. In 0.1.1 the expert's
`action_repeat_prob` does nothing (it never stores its last action), so `collect` repeats
actions itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from jepa_plan.envs.base import Collected, EnvConfig, EnvPerEpisode, require

ENV_ID = "swm/TwoRoom-v1"
DOOR_MARGIN = 1.75  # px: TwoRoomEnv._apply_collisions lets a centre this far past the door's edge through
RENDER_WINDOW = 48  # px: the dot's alpha there is exp(-48^2 / (2 * 7^2)) ~ 6e-11, far below a float32 ulp of 1


@dataclass
class TwoRoomConfig(EnvConfig):
    """stable-worldmodel TwoRoom; lengths in env pixels (the 224 px image)."""

    name: str = "tworoom"
    resolution: int = 64  # frames are area-averaged from the env's 224 px render
    success_radius: float = 16.0  # TwoRoomEnv.step terminates at distance < 16
    max_episode_steps: int = 150  # stable-worldmodel's TwoRoom evaluation budget
    # collection: a share of episodes from the package's door-seeking expert, the rest a random walk
    expert_fraction: float = 0.5
    action_noise: float = 1.0  # std of the expert's Gaussian action noise (stable-worldmodel's data: 2.0, 100 steps)
    action_repeat_prob: float = 0.05  # chance an expert episode repeats its last action
    expert_other_room_prob: float = 0.75  # chance an expert's target is in the other room
    walk_momentum: float = 0.8  # random walk: a_t = m a_{t-1} + sqrt(1 - m^2) walk_std eps, clipped
    walk_std: float = 1.0
    render_batch: int = 16  # frames rendered at once


@dataclass(frozen=True)
class Geometry:
    """Free space for the agent centre, in env pixels, read off a reset TwoRoomEnv."""

    size: int  # native image side
    low: float  # centre bounds on both axes
    high: float
    wall_centre: float
    wall_min: float  # a centre in [wall_min, wall_max] touches the wall
    wall_max: float
    door_low: float  # ... and is legal there only with y in [door_low, door_high]
    door_high: float
    speed: float  # px per unit action
    radius: float  # agent radius = std of its dot


def _geometry(env) -> Geometry:
    variation = env.variation_space
    radius = float(variation["agent"]["radius"].value.item())
    half = env.wall_thickness // 2
    if env.num_doors != 1 or env.wall_axis != 1:
        raise ValueError(f"tworoom: expected one door in a vertical wall, got {env.num_doors} in axis {env.wall_axis}")
    door, door_half = float(env.door_positions[0]), float(env.door_sizes[0])
    return Geometry(
        size=env.IMG_SIZE,
        low=env.BORDER_SIZE + radius,
        high=env.IMG_SIZE - env.BORDER_SIZE - radius,
        wall_centre=float(env.WALL_CENTER),
        wall_min=env.WALL_CENTER - half - radius,
        wall_max=env.WALL_CENTER + half + radius,
        door_low=door - door_half - DOOR_MARGIN,
        door_high=door + door_half + DOOR_MARGIN,
        speed=float(variation["agent"]["speed"].value.item()),
        radius=radius,
    )


class SWMTwoRoomEnv(EnvPerEpisode):
    """N `swm/TwoRoom-v1` episodes stepped together; states are agent centres [N, 2] in env pixels."""

    GOAL_SETS = ("door", "same_room")
    state_dim = 2

    def __init__(self, cfg: TwoRoomConfig | None = None):
        cfg = cfg if cfg is not None else TwoRoomConfig()
        super().__init__(cfg)
        # stable-worldmodel's data cache (default ~/.stable_worldmodel); this env writes
        # nothing there, but the package would create it on first use
        os.environ.setdefault("STABLEWM_HOME", str(Path.home() / ".cache" / "stable-worldmodel"))
        require("stable_worldmodel", env=cfg.name, package="stable-worldmodel")
        import cv2  # opencv-python-headless, which stable_worldmodel imports too
        import gymnasium as gym
        import torch

        self._cv2, self._gym, self._torch = cv2, gym, torch
        self._scratch = raw = self._make_env()
        self.geo = _geometry(raw)
        self._check_config()
        self.action_low = np.full(2, -1.0, dtype=np.float32)
        self.action_high = np.full(2, 1.0, dtype=np.float32)

        # What every render shares: the env's background (its render of an agent far outside
        # the image, whose dot is exactly 0) and the agent's colour.
        far = torch.full((2,), -1e4)
        background = raw._render_frame(agent_pos=far).permute(1, 2, 0).contiguous()  # [H, W, 3]
        self._background_u8 = background.numpy()
        self._background = self._background_u8.astype(np.float32)
        self._agent_rgb = torch.as_tensor(raw.variation_space["agent"]["color"].value, dtype=torch.float32)
        self._grid_x, self._grid_y = raw.grid_x, raw.grid_y
        self._envs: list = []  # the episode loop's envs, grown on demand
        self._collect_envs: list = []  # collect's own, so that it leaves an episode loop as it was
        self._n = 0

    def _check_config(self) -> None:
        cfg = self.cfg
        checks = [
            (8 <= cfg.resolution <= self.geo.size, f"resolution={cfg.resolution} must be in [8, {self.geo.size}]"),
            (cfg.success_radius > 0, f"success_radius={cfg.success_radius} must be positive"),
            (cfg.max_episode_steps >= 1, f"max_episode_steps={cfg.max_episode_steps} must be at least 1"),
            (0 <= cfg.expert_fraction <= 1, f"expert_fraction={cfg.expert_fraction} must be in [0, 1]"),
            (cfg.action_noise >= 0, f"action_noise={cfg.action_noise} must be >= 0"),
            (0 <= cfg.action_repeat_prob < 1, f"action_repeat_prob={cfg.action_repeat_prob} must be in [0, 1)"),
            (0 <= cfg.expert_other_room_prob <= 1,
             f"expert_other_room_prob={cfg.expert_other_room_prob} must be in [0, 1]"),
            (0 <= cfg.walk_momentum < 1, f"walk_momentum={cfg.walk_momentum} must be in [0, 1)"),
            (cfg.walk_std > 0, f"walk_std={cfg.walk_std} must be positive"),
            (cfg.render_batch >= 1, f"render_batch={cfg.render_batch} must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TwoRoomConfig: {message}")

    def _make_env(self):
        """A TwoRoomEnv (unwrapped: past gymnasium's order check) in its init geometry.

        Its `reset` restores the init variation values, which a new env already holds, caches
        the wall and door from them, sets agent and target and renders the target image; here
        `_cache_params` does the caching and `_place` the setting, as stable-worldmodel's own
        evaluation does (`_set_state` callables), without the 224 px render nothing uses.
        """
        env = self._gym.make(ENV_ID, render_target=False, disable_env_checker=True).unwrapped
        if hasattr(self, "_grid_x"):  # share the scratch env's read-only pixel grids, 200 kB each
            env.grid_x, env.grid_y = self._grid_x, self._grid_y
        env._cache_params()
        return env

    def _place(self, envs: list, states: np.ndarray, targets: np.ndarray) -> None:
        """Put each env's agent at states [n, 2] and its target at targets [n, 2]."""
        for env, state, target in zip(envs, states, targets):
            env._set_state(state.tolist())
            env.target_position = self._torch.tensor(target.tolist(), dtype=self._torch.float32)

    # -- the batched episode loop --------------------------------------------------------
    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        bad = ~self.is_reachable(start_states)
        if bad.any():
            self._goals = None  # no episode loop until a reset succeeds
            raise ValueError(f"tworoom: start states {start_states[bad][:3].tolist()} are not reachable positions")
        # The env needs a target; give it the goal where one is known (its own distance and
        # `terminated` then agree with ours), else the start.
        self._n = len(start_states)
        self._place(self._pool(self._envs, self._n), start_states, self._targets(start_states))
        return self._render(self.states())

    @staticmethod
    def _observe(envs: list) -> np.ndarray:
        return np.array([env.agent_position.numpy() for env in envs], dtype=np.float32).reshape(-1, 2)

    # -- stateless pieces ----------------------------------------------------------------
    def goal_distance(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(states, np.float32) - np.asarray(goals, np.float32), axis=-1)

    def render_states(self, states: np.ndarray) -> np.ndarray:
        return self._render(self.check_states(states))

    def room_of(self, states: np.ndarray) -> np.ndarray:
        """states [..., 2] -> int [...]: -1 left of the wall's centre line, +1 right of it."""
        return np.where(np.asarray(states)[..., 0] < self.geo.wall_centre, -1, 1)

    def is_free(self, states: np.ndarray) -> np.ndarray:
        """states [..., 2] -> bool [...]: inside the bounds and clear of the wall (the env's
        own start constraint); door-corridor states are reachable but not free."""
        geo, states = self.geo, np.asarray(states, dtype=np.float32)
        x, y = states[..., 0], states[..., 1]
        inside = (x >= geo.low) & (x <= geo.high) & (y >= geo.low) & (y <= geo.high)
        return inside & ((x < geo.wall_min) | (x > geo.wall_max))

    def is_reachable(self, states: np.ndarray) -> np.ndarray:
        """states [..., 2] -> bool [...]: a state the dynamics can reach (free, touching the
        wall's face, or in the door corridor)."""
        geo, states = self.geo, np.asarray(states, dtype=np.float32)
        x, y = states[..., 0], states[..., 1]
        inside = (x >= geo.low) & (x <= geo.high) & (y >= geo.low) & (y <= geo.high)
        in_door = (y >= geo.door_low) & (y <= geo.door_high)
        return inside & ((x <= geo.wall_min) | (x >= geo.wall_max) | in_door)

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uniform free states [n, 2] (both rooms are the same size)."""
        return self._sample_in_rooms(rng, rng.choice([-1, 1], size=n))

    def _sample_in_rooms(self, rng: np.random.Generator, rooms: np.ndarray) -> np.ndarray:
        """rooms int [n] (-1 / +1) -> uniform free states [n, 2] in those rooms."""
        geo, n = self.geo, len(rooms)
        u = rng.random(n)  # in [0, 1): x in [low, wall_min) or (wall_max, high]
        x = np.where(rooms < 0, geo.low + u * (geo.wall_min - geo.low), geo.high - u * (geo.high - geo.wall_max))
        x = x.astype(np.float32)  # rounding may land on the wall's edge: step back off it
        x = np.where(rooms < 0, np.minimum(x, np.nextafter(np.float32(geo.wall_min), np.float32(0))),
                     np.maximum(x, np.nextafter(np.float32(geo.wall_max), np.float32(geo.size))))
        y = rng.uniform(geo.low, geo.high, size=n).astype(np.float32)
        return np.stack([x, y], axis=1)

    def goal_pairs(self, kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`door`: start and goal in different rooms, so a plan must find the door;
        `same_room`: both in one room (goals within twice the success radius of their start
        drawn again, for both); `random`: the base class's."""
        if kind not in self.GOAL_SETS:
            return super().goal_pairs(kind, rng, n)
        rooms = rng.choice([-1, 1], size=n)
        goal_rooms = rooms if kind == "same_room" else -rooms
        starts, goals = self._sample_in_rooms(rng, rooms), self._sample_in_rooms(rng, goal_rooms)
        close = self.goal_distance(starts, goals) < 2 * self.success_radius
        while close.any():
            goals[close] = self._sample_in_rooms(rng, goal_rooms[close])
            close = self.goal_distance(starts, goals) < 2 * self.success_radius
        return starts, goals

    # -- rendering -----------------------------------------------------------------------
    def _render(self, states: np.ndarray) -> np.ndarray:
        """states [N, 2] -> uint8 [N, R, R, 3]: native renders, area-averaged to R."""
        cv2, res = self._cv2, self.cfg.resolution
        out = np.empty((len(states), res, res, 3), dtype=np.uint8)
        for first in range(0, len(states), self.cfg.render_batch):
            native = self._render_native(states[first: first + self.cfg.render_batch])
            for i, frame in enumerate(native, start=first):
                out[i] = frame if res == self.geo.size else cv2.resize(frame, (res, res), interpolation=cv2.INTER_AREA)
        return out

    def _render_native(self, states: np.ndarray) -> np.ndarray:
        """states [B, 2] -> uint8 [B, 224, 224, 3], equal to TwoRoomEnv.render() pixel for pixel.

        The env's float32 steps (Gaussian dot, peak-normalised, alpha-blended, truncated) on a
        window of +-RENDER_WINDOW px around each agent; outside it the alpha is below 1e-10,
        which leaves every pixel of the env's render at its background value.
        """
        # torch's float32 kernels, as the env's: NumPy's exp differs in the last bit, which
        # moves some pixels by one level.
        torch, size, half = self._torch, self.geo.size, RENDER_WINDOW
        side = min(2 * half + 1, size)
        states = np.ascontiguousarray(states, dtype=np.float32)  # [B, 2] (x, y)
        corners = np.clip(np.floor(states).astype(np.int64) - half, 0, size - side)  # window's first column, row
        pos, first = torch.from_numpy(states), torch.from_numpy(corners).to(torch.float32)
        dx = first[:, 0, None] + torch.arange(side) - pos[:, 0, None]  # [B, side], exact small integers minus x
        dy = first[:, 1, None] + torch.arange(side) - pos[:, 1, None]
        std = max(1e-6, self.geo.radius)
        dot = torch.exp(-((dy * dy)[:, :, None] + (dx * dx)[:, None, :]) / (2.0 * std * std))  # [B, side, side]
        peak = dot.amax(dim=(1, 2), keepdim=True)
        alpha = torch.where(peak > 0, dot / peak, dot).clamp_(0, 1)[..., None]
        behind = torch.from_numpy(np.stack([self._background[r: r + side, c: c + side] for c, r in corners]))
        windows = (behind * (1.0 - alpha) + self._agent_rgb * alpha).to(torch.uint8).numpy()
        frames = np.repeat(self._background_u8[None], len(states), axis=0)
        for frame, window, (c, r) in zip(frames, windows, corners):
            frame[r: r + side, c: c + side] = window
        return frames

    def state_from_frame(self, frame: np.ndarray) -> np.ndarray:
        """The agent centre read off an image [R, R, 3] -> [2] env pixels (NaN if no agent).

        Over both the white floor and the black wall the red dot of opacity a gives
        red - green = 255 a, and area averaging keeps that linear; the centre is the vertex
        of a parabola through log a at the brightest pixel and its neighbours, per axis.
        """
        frame = np.asarray(frame, dtype=np.float32)
        res = frame.shape[0]
        if frame.shape != (res, res, 3):
            raise ValueError(f"tworoom: frame must have shape [R, R, 3], got {frame.shape}")
        alpha = np.clip((frame[..., 0] - frame[..., 1]) / 255.0, 1e-4, 1.0)  # [row = y, col = x]
        row, col = np.unravel_index(np.argmax(alpha), alpha.shape)
        if alpha[row, col] < 0.3 or not (0 < row < res - 1 and 0 < col < res - 1):
            return np.full(2, np.nan, dtype=np.float32)
        log = np.log(alpha)

        def vertex(minus: float, centre: float, plus: float) -> float:
            curve = minus - 2 * centre + plus
            return 0.0 if curve >= 0 else 0.5 * (minus - plus) / curve

        x = col + vertex(log[row, col - 1], log[row, col], log[row, col + 1])
        y = row + vertex(log[row - 1, col], log[row, col], log[row + 1, col])
        scale = self.geo.size / res  # output pixel j covers native [j s, (j + 1) s); native pixel i is at i
        return np.array([(x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5], dtype=np.float32)

    # -- collection ----------------------------------------------------------------------
    def collect(self, rng: np.random.Generator, n: int, steps: int) -> Collected:
        """n episodes of `steps` frames from free uniform starts: a cfg.expert_fraction share
        from stable-worldmodel's ExpertPolicy (noisy, via the door when its target is in the
        other room; a reached target is replaced by a new one), the rest a momentum random
        walk. states [n, T, 2] (state at frame t), actions [n, T, 2] (action taken at frame t),
        frames uint8 [n, T, R, R, 3]."""
        from stable_worldmodel.envs.two_room import ExpertPolicy

        cfg = self.cfg
        envs = self._pool(self._collect_envs, n)
        starts = self.sample_states(rng, n)
        targets = self._expert_targets(rng, starts)
        self._place(envs, starts, targets)
        expert = np.flatnonzero(rng.random(n) < cfg.expert_fraction)
        # The expert reads each env's door and wall, through a stand-in for a vector env.
        policy = ExpertPolicy(action_noise=cfg.action_noise, seed=int(rng.integers(2**32)))
        policy.set_env(SimpleNamespace(envs=[envs[i] for i in expert],
                                       action_space=self._gym.spaces.Box(-1, 1, (len(expert), 2))))

        states = np.empty((n, steps, 2), dtype=np.float32)
        actions = np.empty((n, steps, 2), dtype=np.float32)
        walk = np.clip(rng.normal(0.0, cfg.walk_std, size=(n, 2)), -1, 1).astype(np.float32)
        for t in range(steps):
            state = states[:, t] = self._observe(envs)
            # Random walk: momentum on the previous walk action.
            noise = rng.normal(0.0, cfg.walk_std, size=(n, 2))
            walk = np.clip(cfg.walk_momentum * walk + np.sqrt(1 - cfg.walk_momentum**2) * noise, -1, 1)
            actions[:, t] = walk
            # Expert: new targets for episodes that reached theirs, its action, at random the last one again.
            reached = self.goal_distance(state, targets) < cfg.success_radius
            if reached.any():
                targets[reached] = self._expert_targets(rng, state[reached])
            if len(expert):
                action = policy.get_action({"state": state[expert], "goal_state": targets[expert]})
                if t > 0:
                    repeat = rng.random(len(expert)) < cfg.action_repeat_prob
                    action[repeat] = actions[expert[repeat], t - 1]
                actions[expert, t] = action
            for env, a in zip(envs, actions[:, t]):
                env.step(a)
        frames = self._render(states.reshape(-1, 2)).reshape(n, steps, cfg.resolution, cfg.resolution, 3)
        return Collected(states, actions, frames)

    def _expert_targets(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """A free target [n, 2] per state, in the other room with cfg.expert_other_room_prob."""
        rooms = self.room_of(states)
        other = rng.random(len(states)) < self.cfg.expert_other_room_prob
        return self._sample_in_rooms(rng, np.where(other, -rooms, rooms))

    def coverage(self, states: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """door_crossing_fraction: episodes fully in both rooms (centre clear of the wall on
        each side at some frame); left_room_fraction: frames left of the wall's centre line;
        door_frame_fraction: frames in the door corridor; blocked_step_fraction: steps that a
        wall or the border shortened."""
        geo = self.geo
        x = np.asarray(states)[..., 0]
        moved = np.linalg.norm(np.diff(states, axis=1), axis=-1)
        commanded = geo.speed * np.linalg.norm(np.clip(actions[:, :-1], -1, 1), axis=-1)
        return {
            "door_crossing_fraction": float(((x < geo.wall_min).any(1) & (x > geo.wall_max).any(1)).mean()),
            "left_room_fraction": float((self.room_of(states) < 0).mean()),
            "door_frame_fraction": float(((x >= geo.wall_min) & (x <= geo.wall_max)).mean()),
            "blocked_step_fraction": float((moved < commanded - 1e-3).mean()),
        }

    def close(self) -> None:
        for env in [self._scratch, *self._envs, *self._collect_envs]:
            env.close()
        self._envs, self._collect_envs, self._n = [], [], 0
