"""tworoom: stable-worldmodel's `swm/TwoRoom-v1` behind the batched env protocol.

The env is `TwoRoomEnv` of stable-worldmodel 0.1.1 (the optional extra `envs`), one
gymnasium env per episode. All lengths are the env's own pixels of its 224 x 224 image,
x to the right, y down. Every reset restores the env's init values, so its geometry is fixed
(read off the env when this adapter is built, not copied here):
- the agent is a Gaussian dot (std = radius = 7 px); its centre is clamped to
  [border + radius, 224 - border - radius] = [21, 203] on both axes;
- a vertical wall of 10 px at x = 112 with one door (centre y = 49, half-width 14); a centre
  with x in [wall_min, wall_max] = [100, 124] touches the wall and is only legal in the door;
- a step moves the centre by speed * clip(action) = 5 px per unit action; a move into the
  wall outside the door stops 0.5 px before the wall's face (the env's `_apply_collisions`);
- success is distance < 16 px, `TwoRoomEnv.step`'s `terminated`.
State: the agent centre (x, y), float32 [2]; nothing else enters the dynamics.

Frames: the env renders at 224 px only (its geometry is in those pixels), so frames are the
env's native render area-averaged down to cfg.resolution (each output pixel the mean of the
native pixels it covers, as cv2.INTER_AREA; stable-worldmodel's own wrapper uses PIL
bilinear). The N renders are batched: `_render_native` is `TwoRoomEnv._render_frame` for N
agents at once on the env's own background, never with the target marker.

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

from jepa_plan.envs.base import Collected, Env, EnvConfig, require

ENV_ID = "swm/TwoRoom-v1"
DOOR_MARGIN = 1.75  # px: TwoRoomEnv._apply_collisions lets a centre this far past the door's edge through


@dataclass
class TwoRoomConfig(EnvConfig):
    """stable-worldmodel TwoRoom; lengths in env pixels (the 224 px image)."""

    name: str = "tworoom"
    resolution: int = 64  # frames are area-averaged from the env's 224 px render
    success_radius: float = 16.0  # TwoRoomEnv.step terminates at distance < 16
    max_episode_steps: int = 150  # stable-worldmodel's TwoRoom evaluation budget
    # collection: a share of episodes from the package's door-seeking expert, the rest a random walk
    expert_fraction: float = 0.5
    action_noise: float = 2.0  # std of the Gaussian noise the expert adds (as stable-worldmodel's data)
    action_repeat_prob: float = 0.05  # chance an expert episode repeats its last action
    expert_other_room_prob: float = 0.75  # chance an expert's target is in the other room
    walk_momentum: float = 0.8  # random walk: a_t = m a_{t-1} + sqrt(1 - m^2) walk_std eps, clipped
    walk_std: float = 1.0
    render_batch: int = 64  # frames rendered at once (memory: about 2 MB per frame)


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


def area_matrix(size: int, resolution: int) -> np.ndarray:
    """[resolution, size] float32: row i averages the native pixels that output pixel i covers
    (fractional overlaps weighted by their length), so A @ image @ A.T is an area resize."""
    edges = np.arange(resolution + 1) * (size / resolution)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size)[None]
    overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None)
    return (overlap / (size / resolution)).astype(np.float32)


class SWMTwoRoomEnv(Env):
    """N `swm/TwoRoom-v1` episodes stepped together; states are agent centres [N, 2] in env pixels."""

    GOAL_SETS = ("door", "same_room")
    state_dim = 2

    def __init__(self, cfg: TwoRoomConfig | None = None):
        cfg = cfg if cfg is not None else TwoRoomConfig()
        super().__init__(cfg)
        # stable-worldmodel's dataset cache; nothing here downloads, but keep it out of ~
        os.environ.setdefault("STABLEWM_HOME", str(Path.home() / ".cache" / "stable-worldmodel"))
        require("stable_worldmodel", env=cfg.name, package="stable-worldmodel")
        import gymnasium as gym
        import torch

        self._gym, self._torch = gym, torch
        self._scratch = gym.make(ENV_ID, render_target=False, disable_env_checker=True)
        self._scratch.reset(options={"variation": ()})  # caches the wall and door
        raw = self._scratch.unwrapped
        self.geo = _geometry(raw)
        self._check_config()
        self.action_low = np.full(2, -1.0, dtype=np.float32)
        self.action_high = np.full(2, 1.0, dtype=np.float32)

        # What every render shares: the env's background (its render of an agent far outside
        # the image, whose dot is exactly 0), pixel grids, agent colour and the resize.
        far = torch.full((2,), -1e4)
        self._background = raw._render_frame(agent_pos=far).to(torch.float32)  # [3, H, W]
        self._grid_x, self._grid_y = raw.grid_x, raw.grid_y
        self._agent_rgb = torch.as_tensor(raw.variation_space["agent"]["color"].value, dtype=torch.float32)
        self._area = torch.from_numpy(area_matrix(self.geo.size, cfg.resolution))
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

    def _pool(self, envs: list, n: int) -> list:
        """The first n envs of `envs`, making more as needed; they share the scratch env's
        read-only pixel grids (400 kB each) rather than holding their own."""
        for _ in range(n - len(envs)):
            env = self._gym.make(ENV_ID, render_target=False, disable_env_checker=True)
            env.unwrapped.grid_x, env.unwrapped.grid_y = self._grid_x, self._grid_y
            envs.append(env)
        return envs[:n]

    # -- the batched episode loop --------------------------------------------------------
    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        self._check_reachable(start_states, "start_states")
        # The env needs a target; give it the goal where one is known (its own distance and
        # `terminated` then agree with ours), else the start.
        known = np.isfinite(self._goals).all(axis=1, keepdims=True)
        targets = np.where(known, self._goals, start_states)
        self._n = len(start_states)
        for env, start, target in zip(self._pool(self._envs, self._n), start_states, targets):
            # copies: the env keeps the array it is given as its position until the first step
            env.reset(options={"state": start.copy(), "target_state": target.copy(), "variation": ()})
        return self._render(self.states())

    def _step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        for i in np.flatnonzero(active):
            self._envs[i].step(actions[i])
        return self._render(self.states())

    def states(self) -> np.ndarray:
        if self._goals is None:
            raise RuntimeError("tworoom: call reset() before states()")
        return self._positions(self._envs[: self._n])

    @staticmethod
    def _positions(envs: list) -> np.ndarray:
        return np.array([env.unwrapped.agent_position.numpy() for env in envs], dtype=np.float32).reshape(-1, 2)

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

    def _check_reachable(self, states: np.ndarray, what: str) -> None:
        bad = ~self.is_reachable(states)
        if bad.any():
            raise ValueError(f"tworoom: {what} {states[bad][:3].tolist()} are not reachable agent positions")

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uniform free states [n, 2] (both rooms are the same size)."""
        return self._sample_in_rooms(rng, rng.choice([-1, 1], size=n))

    def _sample_in_rooms(self, rng: np.random.Generator, rooms: np.ndarray) -> np.ndarray:
        """rooms int [n] (-1 / +1) -> uniform free states [n, 2] in those rooms."""
        geo, n = self.geo, len(rooms)
        u = rng.random(n)  # in [0, 1): x in [low, wall_min) or (wall_max, high]
        x = np.where(rooms < 0, geo.low + u * (geo.wall_min - geo.low), geo.high - u * (geo.high - geo.wall_max))
        y = rng.uniform(geo.low, geo.high, size=n)
        return np.stack([x, y], axis=1).astype(np.float32)

    def goal_pairs(self, kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`door`: start and goal in different rooms, so a plan must find the door;
        `same_room`: both in one room; `random`: anywhere. Goals within twice the success
        radius of their start are drawn again."""
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
        torch, res = self._torch, self.cfg.resolution
        out = np.empty((len(states), res, res, 3), dtype=np.uint8)
        for first in range(0, len(states), self.cfg.render_batch):
            native = self._render_native(states[first: first + self.cfg.render_batch])  # [B, 3, H, W]
            if res != self.geo.size:
                native = (self._area @ native.to(torch.float32) @ self._area.T).round().to(torch.uint8)
            out[first: first + len(native)] = native.permute(0, 2, 3, 1).numpy()
        return out

    def _render_native(self, states: np.ndarray):
        """states [B, 2] -> uint8 tensor [B, 3, 224, 224], TwoRoomEnv._render_frame batched:
        the agent's Gaussian dot, peak-normalised, alpha-blended over the background."""
        torch = self._torch
        pos = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32))
        dx = self._grid_x[None] - pos[:, 0, None, None]
        dy = self._grid_y[None] - pos[:, 1, None, None]
        std = max(1e-6, self.geo.radius)
        dot = torch.exp(-(dx * dx + dy * dy) / (2.0 * std * std))  # [B, H, W]
        peak = dot.amax(dim=(1, 2), keepdim=True)
        alpha = torch.where(peak > 0, dot / peak, dot).clamp(0, 1)[:, None]
        blended = self._background[None] * (1.0 - alpha) + self._agent_rgb[None, :, None, None] * alpha
        return blended.to(torch.uint8)  # truncates, as the env does

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
        for env, start, target in zip(envs, starts, targets):
            env.reset(options={"state": start.copy(), "target_state": target.copy(), "variation": ()})
        expert = rng.random(n) < cfg.expert_fraction
        policy = ExpertPolicy(action_noise=cfg.action_noise, seed=int(rng.integers(2**32)))
        policy.set_env(SimpleNamespace(envs=envs, action_space=self._gym.spaces.Box(-1, 1, (n, 2))))

        states = np.empty((n, steps, 2), dtype=np.float32)
        actions = np.empty((n, steps, 2), dtype=np.float32)
        walk = np.clip(rng.normal(0.0, cfg.walk_std, size=(n, 2)), -1, 1).astype(np.float32)
        previous = None
        for t in range(steps):
            state = states[:, t] = self._positions(envs)
            # Expert: new targets for episodes that reached theirs, then its action, repeated at random.
            reached = self.goal_distance(state, targets) < cfg.success_radius
            if reached.any():
                targets[reached] = self._expert_targets(rng, state[reached])
            action = policy.get_action({"state": state, "goal_state": targets})
            if previous is not None:
                repeat = rng.random(n) < cfg.action_repeat_prob
                action[repeat] = previous[repeat]
            previous = action
            # Random walk: momentum on the previous walk action.
            noise = rng.normal(0.0, cfg.walk_std, size=(n, 2))
            walk = np.clip(cfg.walk_momentum * walk + np.sqrt(1 - cfg.walk_momentum**2) * noise, -1, 1)
            actions[:, t] = np.where(expert[:, None], action, walk)
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
