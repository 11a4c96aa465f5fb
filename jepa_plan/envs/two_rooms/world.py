"""two_rooms world: a point agent in two rooms joined by a door, rendered to small RGB images.

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

import numpy as np

from jepa_plan.envs.base import EnvConfig

# Floors differ in colour so that an encoder can tell the rooms apart from one frame.
LEFT_FLOOR = (214, 180, 130)
RIGHT_FLOOR = (120, 160, 205)
WALL_COLOUR = (35, 35, 45)
AGENT_COLOUR = (255, 40, 40)


@dataclass
class TwoRoomsConfig(EnvConfig):
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
