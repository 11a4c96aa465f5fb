"""two_rooms: a point agent in two rooms joined by a door, rendered to small RGB images.

World: the square [-1, 1]^2 with y pointing up. A vertical wall at x = 0 of thickness
2 * wall_half_thickness has a door where |y| < door_half_width; x < 0 is the left room,
x > 0 the right room. The outer border is a wall of thickness wall_half_thickness.
State: the agent centre (x, y), float32 [2]. Action: a velocity in [-1, 1]^2 (clipped);
one step moves the agent by max_speed * action.

Collision geometry (one rule, used by the dynamics, the free-state test and the sampler):
the agent is a disc of agent_radius, handled as its centre moving among walls inflated by
agent_radius. Inflation uses rectangles, which is slightly conservative at the door jambs'
corners, so the drawn disc never overlaps a drawn wall. For the centre this gives
    outer bound  |x|, |y| <= bound  = 1 - wall_half_thickness - agent_radius
    wall slab    |x| <  wall_x      = wall_half_thickness + agent_radius
    door         |y| <= door_y      = door_half_width - agent_radius
and the centre may be inside the slab only in the door.

The dynamics are one pure vectorised function, `step_states`, so that a differentiable
torch oracle can copy it line for line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

# Floors differ in colour so that an encoder can tell the rooms apart from one frame.
LEFT_FLOOR = (214, 180, 130)
RIGHT_FLOOR = (120, 160, 205)
WALL_COLOUR = (35, 35, 45)
AGENT_COLOUR = (255, 40, 40)


@dataclass
class TwoRoomsConfig:
    """Parameters of the two_rooms world; plain types so OmegaConf can build it."""

    name: str = "two_rooms"
    resolution: int = 64  # image height = width, pixels
    max_speed: float = 0.1  # world units per step at |action| = 1
    door_half_width: float = 0.2
    wall_half_thickness: float = 0.04
    agent_radius: float = 0.1  # about 3 px at 64 px over a [-1, 1] world
    success_radius: float = 0.1
    max_episode_steps: int = 100


@dataclass(frozen=True)
class Geometry:
    """Free space for the agent centre, derived once from a config (see module docstring)."""

    bound: float
    wall_x: float
    door_y: float


def geometry(cfg: TwoRoomsConfig) -> Geometry:
    """Inflated-wall geometry of `cfg`; raises ValueError on a config with no usable space."""
    checks = [
        (cfg.resolution >= 8, f"resolution={cfg.resolution} must be at least 8"),
        (cfg.max_speed > 0, f"max_speed={cfg.max_speed} must be positive"),
        (cfg.agent_radius > 0, f"agent_radius={cfg.agent_radius} must be positive"),
        (cfg.wall_half_thickness > 0, f"wall_half_thickness={cfg.wall_half_thickness} must be positive"),
        (
            cfg.door_half_width > cfg.agent_radius,
            f"door_half_width={cfg.door_half_width} must exceed agent_radius={cfg.agent_radius} "
            "or the agent cannot pass the door",
        ),
        (cfg.success_radius > 0, f"success_radius={cfg.success_radius} must be positive"),
        (cfg.max_episode_steps >= 1, f"max_episode_steps={cfg.max_episode_steps} must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"TwoRoomsConfig: {message}")
    geo = Geometry(
        bound=1.0 - cfg.wall_half_thickness - cfg.agent_radius,
        wall_x=cfg.wall_half_thickness + cfg.agent_radius,
        door_y=cfg.door_half_width - cfg.agent_radius,
    )
    if geo.bound <= geo.wall_x:
        raise ValueError(
            f"TwoRoomsConfig: wall_half_thickness={cfg.wall_half_thickness} and "
            f"agent_radius={cfg.agent_radius} leave no room for the agent"
        )
    return geo


def _as_states(states: np.ndarray, what: str = "states") -> np.ndarray:
    states = np.asarray(states, dtype=np.float32)
    if states.ndim != 2 or states.shape[1] != 2:
        raise ValueError(f"{what} must have shape [N, 2], got {tuple(states.shape)}")
    return states


# ----------------------------------------------------------------------------- dynamics


def step_states(states: np.ndarray, actions: np.ndarray, cfg: TwoRoomsConfig) -> np.ndarray:
    """One environment step for N agents at once.

    states [N, 2] float (free positions), actions [N, 2] float (clipped to [-1, 1])
    -> next states [N, 2] float32.

    Motion is resolved axis by axis, x first, so a blocked agent slides along the wall:
    1. x: move, stay within the outer bound; if the agent is outside the door rows
       (|y| > door_y) it may not enter the wall slab, so it stops at the slab face of
       the side it started on.
    2. y: move, stay within the outer bound; if the agent is now inside the slab (in the
       door corridor) it may not leave the door rows.
    """
    geo = geometry(cfg)
    states = _as_states(states)
    actions = _as_states(actions, "actions")
    if len(actions) != len(states):
        raise ValueError(f"got {len(states)} states but {len(actions)} actions")
    delta = cfg.max_speed * np.clip(actions, -1.0, 1.0)
    x, y = states[:, 0], states[:, 1]

    # x motion: the wall face stops agents outside the door rows.
    x_new = np.clip(x + delta[:, 0], -geo.bound, geo.bound)
    outside_door = np.abs(y) > geo.door_y
    x_new = np.where(outside_door & (x <= -geo.wall_x), np.minimum(x_new, -geo.wall_x), x_new)
    x_new = np.where(outside_door & (x >= geo.wall_x), np.maximum(x_new, geo.wall_x), x_new)

    # y motion: inside the slab the agent is in the door corridor and must stay in it.
    y_new = np.clip(y + delta[:, 1], -geo.bound, geo.bound)
    in_slab = np.abs(x_new) < geo.wall_x
    y_new = np.where(in_slab, np.clip(y_new, -geo.door_y, geo.door_y), y_new)
    return np.stack([x_new, y_new], axis=1).astype(np.float32)


def is_free(states: np.ndarray, cfg: TwoRoomsConfig) -> np.ndarray:
    """states [..., 2] -> bool [...]: the centre is inside the bound and not in the wall."""
    geo = geometry(cfg)
    states = np.asarray(states, dtype=np.float32)
    x, y = states[..., 0], states[..., 1]
    inside = (np.abs(x) <= geo.bound) & (np.abs(y) <= geo.bound)
    in_wall = (np.abs(x) < geo.wall_x) & (np.abs(y) > geo.door_y)
    return inside & ~in_wall & np.isfinite(x) & np.isfinite(y)


def room_of(states: np.ndarray) -> np.ndarray:
    """states [..., 2] -> int [...]: -1 for the left room (x < 0), +1 for the right."""
    states = np.asarray(states)
    return np.where(states[..., 0] < 0, -1, 1)


def crossed_door(states: np.ndarray, cfg: TwoRoomsConfig) -> np.ndarray:
    """states [N, T, 2] -> bool [N]: the episode has been fully in both rooms.

    Stricter than a change of `room_of`: states in the door corridor (|x| < wall_x) count
    for neither room, so nudging the centre just past x = 0 is not a crossing.
    """
    geo = geometry(cfg)
    x = np.asarray(states)[..., 0]
    return (x <= -geo.wall_x).any(axis=-1) & (x >= geo.wall_x).any(axis=-1)


def sample_free_state(
    rng: np.random.Generator, n: int, cfg: TwoRoomsConfig, room: int | None = None
) -> np.ndarray:
    """n uniform free positions -> float32 [n, 2]; room = -1 or +1 keeps them in one room
    (outside the door corridor), None samples both rooms and the door."""
    geo = geometry(cfg)
    if room not in (None, -1, 1):
        raise ValueError(f"room must be -1, +1 or None, got {room!r}")
    out = np.empty((0, 2), dtype=np.float32)
    while len(out) < n:
        # Rejection from the square: the wall covers under a sixth of it, so this loops once or twice.
        cand = rng.uniform(-geo.bound, geo.bound, size=(2 * (n - len(out)) + 8, 2)).astype(np.float32)
        keep = is_free(cand, cfg)
        if room is not None:
            keep &= room * cand[:, 0] >= geo.wall_x
        out = np.concatenate([out, cand[keep]])
    return out[:n]


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8)
def _background(resolution: int, wall_half_thickness: float, door_half_width: float) -> np.ndarray:
    """uint8 [H, W, 3] floors, wall and border; computed once per geometry, read-only."""
    x, y = pixel_centres(resolution)
    xx, yy = np.meshgrid(x, y)  # [H, W]: row i is y[i], column j is x[j]
    image = np.where((xx < 0)[..., None], LEFT_FLOOR, RIGHT_FLOOR).astype(np.uint8)
    border = (np.abs(xx) > 1 - wall_half_thickness) | (np.abs(yy) > 1 - wall_half_thickness)
    wall = (np.abs(xx) < wall_half_thickness) & (np.abs(yy) >= door_half_width)
    image[border | wall] = WALL_COLOUR
    image.setflags(write=False)
    return image


def pixel_centres(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """World x of each column and y of each row (row 0 is the top, y = +1), each [H]."""
    centres = -1.0 + (np.arange(resolution) + 0.5) * (2.0 / resolution)
    return centres, -centres


def render_states(states: np.ndarray, cfg: TwoRoomsConfig) -> np.ndarray:
    """states [N, 2] -> uint8 images [N, H, W, 3]: the background plus a filled agent disc.

    Only a small pixel patch around each agent is tested against the disc, so the cost is
    one background copy per image plus O(N * patch^2).
    """
    states = _as_states(states)
    res = cfg.resolution
    background = _background(res, cfg.wall_half_thickness, cfg.door_half_width)
    images = np.broadcast_to(background, (len(states), res, res, 3)).copy()
    if len(states) == 0:
        return images

    pixel = 2.0 / res
    half = int(np.ceil(cfg.agent_radius / pixel)) + 1
    offsets = np.arange(-half, half + 1)
    # Nearest pixel to each centre, then a (2*half+1)^2 patch around it.
    col0 = np.round((states[:, 0] + 1.0) / pixel - 0.5).astype(np.int64)
    row0 = np.round((1.0 - states[:, 1]) / pixel - 0.5).astype(np.int64)
    cols = col0[:, None] + offsets  # [N, P]
    rows = row0[:, None] + offsets  # [N, P]
    px = -1.0 + (cols + 0.5) * pixel
    py = 1.0 - (rows + 0.5) * pixel
    dx2 = (px - states[:, :1]) ** 2  # [N, P] over columns
    dy2 = (py - states[:, 1:]) ** 2  # [N, P] over rows
    inside = dy2[:, :, None] + dx2[:, None, :] <= cfg.agent_radius**2  # [N, P(rows), P(cols)]
    inside &= ((rows >= 0) & (rows < res))[:, :, None] & ((cols >= 0) & (cols < res))[:, None, :]
    n, i, j = np.nonzero(inside)
    images[n, rows[n, i], cols[n, j]] = AGENT_COLOUR
    return images


# ----------------------------------------------------------------------------- exploration


class TwoRoomsExplorer:
    """Scripted exploration policy for N two_rooms episodes at once (numpy, no Python loop
    over episodes).

    A plain momentum random walk crosses the door in about a fifth of 50-step episodes, so
    each episode follows a plan drawn from a mixture:
    - door (p = door_prob): waypoints to the door on its own side, through it, then to a
      random target in the other room;
    - goal (p = goal_prob): a random target in the same room;
    - walk (the rest): momentum random walk a_t = 0.8 a_{t-1} + noise.
    Steered actions are `speed * direction + momentum noise`, with speed and noise scale
    drawn per plan, so actions cover the whole box, small ones included (the pull to a
    waypoint fades as the agent reaches it). The walk and the noise near the door jambs
    supply the collisions (about a fifth of steps are shortened by a wall or the border).
    A finished or stale plan is replaced by a fresh draw from the mixture.
    With the defaults about 55% of 50-step episodes cross the door.
    """

    MOMENTUM = 0.8
    WALK, GOAL, DOOR = 0, 1, 2

    def __init__(
        self,
        cfg: TwoRoomsConfig,
        rng: np.random.Generator,
        door_prob: float = 0.45,
        goal_prob: float = 0.3,
        max_plan_steps: int = 60,
    ):
        if door_prob < 0 or goal_prob < 0 or door_prob + goal_prob > 1:
            raise ValueError(f"need door_prob, goal_prob >= 0 with sum <= 1, got {door_prob}, {goal_prob}")
        self.cfg = cfg
        self.geo = geometry(cfg)
        self.rng = rng
        self.door_prob = door_prob
        self.goal_prob = goal_prob
        self.max_plan_steps = max_plan_steps

    def reset(self, states: np.ndarray) -> None:
        """Start N episodes at states [N, 2]."""
        states = _as_states(states)
        n = len(states)
        self.mode = np.zeros(n, dtype=np.int64)
        self.waypoints = np.zeros((n, 3, 2), dtype=np.float32)
        self.n_waypoints = np.zeros(n, dtype=np.int64)
        self.index = np.zeros(n, dtype=np.int64)
        self.age = np.zeros(n, dtype=np.int64)
        self.speed = np.zeros(n, dtype=np.float32)
        self.noise_scale = np.zeros(n, dtype=np.float32)
        self.noise = self.rng.normal(0.0, 0.3, size=(n, 2)).astype(np.float32)
        self._new_plans(np.arange(n), states)

    def act(self, states: np.ndarray) -> np.ndarray:
        """states [N, 2] -> actions [N, 2] float32 in [-1, 1]."""
        states = _as_states(states)
        n = len(states)
        rows = np.arange(n)

        # Advance waypoints that were reached; replace finished or stale plans.
        steered = self.mode != self.WALK
        target = self.waypoints[rows, np.minimum(self.index, 2)]
        reached = steered & (np.linalg.norm(target - states, axis=1) < 0.6 * self.cfg.max_speed)
        self.index += reached
        self.age += 1
        done = (steered & (self.index >= self.n_waypoints)) | (self.age > self.max_plan_steps)
        if done.any():
            self._new_plans(np.flatnonzero(done), states[done])

        # Momentum noise, shared by all modes; the walk uses it alone.
        fresh = self.rng.normal(size=(n, 2)).astype(np.float32)
        self.noise = self.MOMENTUM * self.noise + self.noise_scale[:, None] * fresh

        # Steering: full speed far from the waypoint, proportional within one step of it.
        target = self.waypoints[rows, np.minimum(self.index, 2)]
        delta = (target - states) / self.cfg.max_speed
        norm = np.maximum(np.linalg.norm(delta, axis=1, keepdims=True), 1.0)
        steer = np.where((self.mode != self.WALK)[:, None], delta / norm, 0.0)
        actions = self.speed[:, None] * steer + self.noise
        return np.clip(actions, -1.0, 1.0).astype(np.float32)

    def _new_plans(self, idx: np.ndarray, states: np.ndarray) -> None:
        """Draw a mode, waypoints, speed and noise scale for episodes idx at states [len(idx), 2]."""
        rng, geo, k = self.rng, self.geo, len(idx)
        u = rng.uniform(size=k)
        mode = np.select([u < self.door_prob, u < self.door_prob + self.goal_prob], [self.DOOR, self.GOAL], self.WALK)
        side = room_of(states)
        waypoints = np.zeros((k, 3, 2), dtype=np.float32)  # rows past n_waypoints are unused

        # goal: one target in the agent's own room.
        goal = mode == self.GOAL
        waypoints[goal, 0] = self._targets_in(side[goal])
        # door: just outside the door on this side, just outside on the other, then a target there.
        door = mode == self.DOOR
        m = int(door.sum())
        s = side[door].astype(np.float32)
        y_in, y_out = (rng.uniform(-0.7, 0.7, size=(2, m)) * geo.door_y).astype(np.float32)
        d_in, d_out = rng.uniform(0.05, 0.15, size=(2, m)).astype(np.float32)
        waypoints[door, 0] = np.stack([s * (geo.wall_x + d_in), y_in], axis=1)
        waypoints[door, 1] = np.stack([-s * (geo.wall_x + d_out), y_out], axis=1)
        waypoints[door, 2] = self._targets_in(-side[door])

        self.mode[idx] = mode
        self.waypoints[idx] = waypoints
        self.n_waypoints[idx] = np.select([door, goal], [3, 1], 0)
        self.index[idx] = 0
        self.age[idx] = 0
        self.speed[idx] = rng.uniform(0.2, 1.0, size=k)
        # The walk needs more noise than steered plans: it is all the walk has.
        self.noise_scale[idx] = np.where(
            mode == self.WALK, rng.uniform(0.2, 0.5, size=k), rng.uniform(0.05, 0.3, size=k)
        )

    def _targets_in(self, rooms: np.ndarray) -> np.ndarray:
        """rooms [k] of -1/+1 -> one uniform target per entry in that room, [k, 2]."""
        out = np.empty((len(rooms), 2), dtype=np.float32)
        for room in (-1, 1):
            sel = rooms == room
            out[sel] = sample_free_state(self.rng, int(sel.sum()), self.cfg, room=room)
        return out


# ----------------------------------------------------------------------------- gymnasium env


class TwoRoomsEnv(gym.Env):
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
            raise ValueError(f"TwoRoomsEnv: render_mode={render_mode!r} is not supported; use 'rgb_array'")
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
            raise ValueError(f"TwoRoomsEnv.reset: unknown options {sorted(unknown)}; valid: ['goal_state', 'state']")
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
            raise RuntimeError("TwoRoomsEnv: call reset() before step()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (2,) or not np.isfinite(action).all():
            raise ValueError(f"TwoRoomsEnv.step: action must be 2 finite numbers, got {action!r}")
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
                f"TwoRoomsEnv: {what}={state.tolist()} is not a free position "
                f"(|x|, |y| <= {self.geo.bound:.3f}, not in the wall |x| < {self.geo.wall_x:.3f} "
                f"outside the door |y| <= {self.geo.door_y:.3f})"
            )
        return state

    def get_state(self) -> np.ndarray:
        """Current agent position, float32 [2] (a copy)."""
        if self._state is None:
            raise RuntimeError("TwoRoomsEnv: call reset() before get_state()")
        return self._state.copy()

    def set_state(self, state) -> None:
        """Teleport the agent to a free position [2]."""
        self._state = self._checked_state(state, "state")

    def render(self) -> np.ndarray:
        """Current frame, uint8 [H, W, 3]."""
        if self._state is None:
            raise RuntimeError("TwoRoomsEnv: call reset() before render()")
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


class TwoRoomsBatch:
    """N two_rooms episodes stepped together (evaluation): states [N, 2] in, frames out.

    The MPC loop drives every episode of a run at once through this, never a Python loop
    over episodes.
    """

    def __init__(self, cfg: TwoRoomsConfig):
        self.cfg = cfg

    def step(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """states [N, 2], env actions [N, 2] -> next states [N, 2]."""
        return step_states(states, actions, self.cfg)

    def render(self, states: np.ndarray) -> np.ndarray:
        """states [N, 2] -> uint8 [N, H, W, 3]."""
        return render_states(states, self.cfg)

    def distance(self, states: np.ndarray, goal_states: np.ndarray) -> np.ndarray:
        """[N, 2], [N, 2] -> Euclidean distance [N] (NaN where the goal state is unknown)."""
        return np.linalg.norm(np.asarray(states, np.float32) - np.asarray(goal_states, np.float32), axis=-1)

    def is_success(self, states: np.ndarray, goal_states: np.ndarray) -> np.ndarray:
        return self.distance(states, goal_states) < self.cfg.success_radius
