"""pointmaze: gymnasium-robotics PointMaze v3 behind the batched env protocol (envs/base.py).

A force-actuated ball (collision radius 0.1, drawn with radius 0.2) in a maze of unit cells;
see reference/benchmarks.md, "gymnasium-robotics PointMaze v3".

    env = make_env({"name": "pointmaze_umaze"})   # or pointmaze_medium; needs the `envs` extra
    frames = env.reset(start_states, goal_states)  # states [N, 4] = x, y, vx, vy

World: cell (i, j) of the map (row i from the top) has its centre at
x = j + 0.5 - cols / 2, y = rows / 2 - i - 0.5. Action: force in [-1, 1]^2 (gear 100 on a
4.2 kg ball, about 24 m/s^2 at |a| = 1); one env step is `action_repeat` gymnasium steps of
dt = 0.01 s, each clipping the velocity to [-5, 5] m/s as gymnasium-robotics does. Velocity
decays only through joint damping (time constant mass / damping, about 4 s), so a single frame
does not determine the state: a model that sees one frame cannot know vx, vy.

Success is gymnasium-robotics' own: ||(x, y) - goal (x, y)|| <= 0.45; goal velocity is ignored.

Simulation: one gymnasium PointMaze env supplies the MuJoCo model, the maze and the renderer
(top-down camera, goal ball hidden, rendered at R x R). The N episodes are N `MjData` of that
model, stepped by `physics_step`, which repeats `PointEnv.step` line for line (a test checks
they agree bit for bit): N gymnasium envs would cost 0.1 s and about 10 MB each, and each
renderer an OpenGL context of about 90 MB. Frames are rendered one state at a time through the
shared renderer, which is also what `render_states` uses, so a goal image and an episode frame
of the same state are identical.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from jepa_plan.envs.base import Collected, Env, EnvConfig, require

MAZES = ("UMaze", "Open", "Medium", "Large")  # gymnasium ids PointMaze_{maze}-v3
MAX_SPEED = 5.0  # gymnasium-robotics PointEnv._clip_velocity
BALL_RADIUS = 0.1  # collision sphere of the ball (point.xml); the drawn site has radius 0.2
CAMERA_FOVY_DEG = 45.0  # MuJoCo's default free-camera field of view


@dataclass
class PointMazeConfig(EnvConfig):
    """Parameters of a PointMaze env; plain types so OmegaConf can build it."""

    name: str = "pointmaze_umaze"
    resolution: int = 64  # frames are R x R RGB, rendered at that size
    maze: str = "UMaze"  # one of MAZES
    success_radius: float = 0.45  # gymnasium-robotics: success when distance <= 0.45
    max_episode_steps: int = 300  # gymnasium-robotics' limit: UMaze 300, Medium 600, Large 800
    action_repeat: int = 1  # gymnasium steps (dt = 0.01 s each) per env step, same force
    wall_clearance: float = 0.15  # sampled centres keep this far from walls (ball radius 0.1)
    far_min_cells: int = 3  # goal set "far": start and goal cells this many cells apart along the maze
    explore_waypoint_prob: float = 0.7  # collected episodes that follow BFS waypoints; the rest random forces


@dataclass
class PointMazeUMazeConfig(PointMazeConfig):
    name: str = "pointmaze_umaze"
    maze: str = "UMaze"
    max_episode_steps: int = 300


@dataclass
class PointMazeMediumConfig(PointMazeConfig):
    name: str = "pointmaze_medium"
    maze: str = "Medium"
    max_episode_steps: int = 600


def check_config(cfg: PointMazeConfig) -> None:
    """Raise ValueError naming the field and the valid values on a config that cannot work."""
    checks = [
        (cfg.maze in MAZES, f"maze={cfg.maze!r} must be one of {list(MAZES)}"),
        (cfg.resolution >= 8, f"resolution={cfg.resolution} must be at least 8"),
        (cfg.success_radius > 0, f"success_radius={cfg.success_radius} must be positive"),
        (cfg.max_episode_steps >= 1, f"max_episode_steps={cfg.max_episode_steps} must be at least 1"),
        (cfg.action_repeat >= 1, f"action_repeat={cfg.action_repeat} must be at least 1"),
        (0 <= cfg.wall_clearance < 0.5, f"wall_clearance={cfg.wall_clearance} must be in [0, 0.5)"),
        (cfg.far_min_cells >= 1, f"far_min_cells={cfg.far_min_cells} must be at least 1"),
        (0 <= cfg.explore_waypoint_prob <= 1,
         f"explore_waypoint_prob={cfg.explore_waypoint_prob} must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{type(cfg).__name__} ({cfg.name}): {message}")


# ----------------------------------------------------------------------------- maze geometry


class MazeGeometry:
    """Cells, walls and shortest paths of a maze map (1 = wall; 0, "r", "g", "c" = free).

    Free cells are numbered 0..F-1 in row-major order: `free_cells` [F, 2] holds their (i, j),
    `path_cells` [F, F] the number of cell moves between two of them (4-neighbour BFS) and
    `next_cell` [F, F] the first cell to enter on a shortest path from a to b (a when a == b).
    """

    def __init__(self, maze_map: list[list[Any]]):
        self.free = np.array([[cell != 1 for cell in row] for row in maze_map], dtype=bool)  # [rows, cols]
        self.rows, self.cols = self.free.shape
        self.free_cells = np.argwhere(self.free)  # [F, 2]
        self.index = np.full(self.free.shape, -1, dtype=np.int64)  # [rows, cols] -> free index or -1
        self.index[self.free] = np.arange(len(self.free_cells))
        self.centres = self.cell_centre(self.free_cells)  # [F, 2]
        self.wall_cells = np.argwhere(~self.free)  # [W, 2]
        self.path_cells, self.next_cell = self._shortest_paths()

    def cell_centre(self, cells: np.ndarray) -> np.ndarray:
        """(i, j) [..., 2] -> cell centres (x, y) [..., 2]."""
        cells = np.asarray(cells)
        x = cells[..., 1] + 0.5 - self.cols / 2
        y = self.rows / 2 - cells[..., 0] - 0.5
        return np.stack([x, y], axis=-1).astype(np.float64)

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Positions (x, y) [..., 2] -> (i, j) [..., 2], clipped to the map."""
        xy = np.asarray(xy, dtype=np.float64)
        i = np.clip(np.floor(self.rows / 2 - xy[..., 1]), 0, self.rows - 1).astype(np.int64)
        j = np.clip(np.floor(xy[..., 0] + self.cols / 2), 0, self.cols - 1).astype(np.int64)
        return np.stack([i, j], axis=-1)

    def free_index(self, xy: np.ndarray) -> np.ndarray:
        """Positions [..., 2] -> index of their free cell [...], -1 inside a wall cell."""
        cells = self.cell_of(xy)
        return self.index[cells[..., 0], cells[..., 1]]

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """Positions [..., 2] -> distance to the nearest wall cell [...] (0 inside a wall)."""
        xy = np.asarray(xy, dtype=np.float64)[..., None, :]  # [..., 1, 2]
        lo = self.cell_centre(self.wall_cells) - 0.5  # [W, 2] lower-left corners
        gap = np.maximum(np.maximum(lo - xy, xy - (lo + 1.0)), 0.0)  # [..., W, 2]
        return np.sqrt((gap**2).sum(-1)).min(-1)

    def sample_xy(self, rng: np.random.Generator, cells: np.ndarray, clearance: float) -> np.ndarray:
        """A uniform position in each free cell of `cells` (free indices [n]) at least
        `clearance` from every wall -> [n, 2] float64 (rejection sampling per cell)."""
        cells = np.asarray(cells, dtype=np.int64)
        out = np.empty((len(cells), 2))
        todo = np.arange(len(cells))
        while len(todo):
            cand = self.centres[cells[todo]] + rng.uniform(-0.5, 0.5, size=(len(todo), 2))
            ok = self.clearance(cand) >= clearance
            out[todo[ok]] = cand[ok]
            todo = todo[~ok]
        return out

    def _shortest_paths(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.free_cells)
        dist = np.full((n, n), -1, dtype=np.int64)
        neighbours = [
            [self.index[i + di, j + dj] for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
             if 0 <= i + di < self.rows and 0 <= j + dj < self.cols and self.free[i + di, j + dj]]
            for i, j in self.free_cells
        ]
        for source in range(n):
            dist[source, source] = 0
            queue = deque([source])
            while queue:
                a = queue.popleft()
                for b in neighbours[a]:
                    if dist[source, b] < 0:
                        dist[source, b] = dist[source, a] + 1
                        queue.append(b)
        # next_cell[a, b]: a neighbour of a one move closer to b.
        next_cell = np.tile(np.arange(n)[:, None], (1, n))
        for a in range(n):
            for b in range(n):
                closer = [c for c in neighbours[a] if 0 <= dist[b, c] == dist[b, a] - 1]
                if a != b and closer:
                    next_cell[a, b] = closer[0]
        return dist, next_cell


# ----------------------------------------------------------------------------- simulation


def physics_step(mujoco: Any, model: Any, data: Any, action: np.ndarray) -> None:
    """One gymnasium-robotics `PointEnv.step` on `data` (point.py): clip the velocity to
    [-MAX_SPEED, MAX_SPEED] (through set_state, hence mj_forward), apply the force, mj_step
    (frame_skip 1), mj_rnePostConstraint."""
    data.qvel[:] = np.clip(data.qvel, -MAX_SPEED, MAX_SPEED)
    mujoco.mj_forward(model, data)
    data.ctrl[:] = np.clip(action, -1.0, 1.0)
    mujoco.mj_step(model, data, nstep=1)
    mujoco.mj_rnePostConstraint(model, data)


class PointMazeEnv(Env):
    """N PointMaze episodes stepped together; see the module docstring."""

    GOAL_SETS = ("far",)
    state_dim = 4
    action_low = np.full(2, -1.0, dtype=np.float32)
    action_high = np.full(2, 1.0, dtype=np.float32)

    def __init__(self, cfg: PointMazeConfig):
        check_config(cfg)
        super().__init__(cfg)
        # Headless rendering; read by gymnasium's renderer when it makes its GL context.
        os.environ.setdefault("MUJOCO_GL", "egl")
        self._mujoco = require("mujoco", env=cfg.name)
        require("gymnasium_robotics", env=cfg.name, package="gymnasium-robotics")  # registers PointMaze_*

        # The scratch env holds the model, the maze (map, cell <-> xy) and the one renderer; its
        # own state is set only to render.
        self.scratch = gym.make(f"PointMaze_{cfg.maze}-v3", render_mode="rgb_array",
                                 width=cfg.resolution, height=cfg.resolution).unwrapped
        self.scratch.position_noise_range = 0.0
        self.scratch.reset(seed=0)
        point_env = self.scratch.point_env
        self.model = point_env.model
        self.geometry = MazeGeometry(self.scratch.maze.maze_map)
        size = max(self.geometry.rows, self.geometry.cols)
        # Top-down camera whose 45-degree view spans the whole map; set before the first render.
        point_env.mujoco_renderer.default_cam_config = {
            "distance": size / 2 / math.tan(math.radians(CAMERA_FOVY_DEG / 2)),
            "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}
        self.model.site_rgba[self.scratch.target_site_id, 3] = 0.0  # hide the goal ball only
        self.pixels_per_unit = cfg.resolution / size
        # Force per unit action over the ball's mass: the explorer's controller gains use it.
        particle = self._mujoco.mj_name2id(self.model, self._mujoco.mjtObj.mjOBJ_BODY, "particle")
        self.accel_per_action = float(self.model.actuator_gear[0, 0] / self.model.body_mass[particle])

        if self.geometry.path_cells.max() < cfg.far_min_cells:
            raise ValueError(f"{cfg.name}: far_min_cells={cfg.far_min_cells} exceeds the longest path "
                             f"in maze {cfg.maze!r} ({self.geometry.path_cells.max()} cells)")
        self._datas: list[Any] = []
        self._frames: np.ndarray | None = None

    # -- the batched episode loop --------------------------------------------------------
    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        """Fresh MjData per episode (so a start state alone decides the episode), set to the
        exact start state -> frames [N, R, R, 3]."""
        mujoco = self._mujoco
        self._datas = [mujoco.MjData(self.model) for _ in range(len(start_states))]
        for data, state in zip(self._datas, start_states.astype(np.float64)):
            data.qpos[:] = state[:2]
            data.qvel[:] = state[2:]
            mujoco.mj_forward(self.model, data)
        self._frames = self._render(start_states[:, :2], self._goals[:, :2])
        return self._frames.copy()

    def _step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Step the active episodes `action_repeat` gymnasium steps; inactive ones keep state and frame."""
        for i in np.flatnonzero(active):
            for _ in range(self.cfg.action_repeat):
                physics_step(self._mujoco, self.model, self._datas[i], actions[i].astype(np.float64))
        if active.any():
            self._frames[active] = self._render(self.states()[active, :2], self._goals[active, :2])
        return self._frames.copy()

    def states(self) -> np.ndarray:
        if not self._datas:
            raise RuntimeError(f"{self.name}: call reset() before states()")
        return np.array([np.concatenate([d.qpos, d.qvel]) for d in self._datas], dtype=np.float32)

    # -- stateless pieces ----------------------------------------------------------------
    def goal_distance(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """[..., 4], [..., 4] -> [...]: distance of the (x, y) parts; velocities are ignored."""
        diff = np.asarray(states, dtype=np.float64)[..., :2] - np.asarray(goals, dtype=np.float64)[..., :2]
        return np.sqrt((diff**2).sum(-1))

    def is_success(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """gymnasium-robotics' criterion, distance <= success_radius (NaN compares False)."""
        return self.goal_distance(states, goals) <= self.success_radius

    def render_states(self, states: np.ndarray) -> np.ndarray:
        """[N, 4] -> uint8 [N, R, R, 3]; only the position shows, the goal ball is hidden."""
        return self._render(self.check_states(states)[:, :2])

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n positions uniform over the free cells, at least wall_clearance from walls, at rest -> [n, 4]."""
        cells = rng.integers(len(self.geometry.free_cells), size=n)
        xy = self.geometry.sample_xy(rng, cells, self.cfg.wall_clearance)
        return np.concatenate([xy, np.zeros((n, 2))], axis=1).astype(np.float32)

    def _render(self, xy: np.ndarray, goals_xy: np.ndarray | None = None) -> np.ndarray:
        """Positions [N, 2] (and goal positions [N, 2], NaN = none) -> uint8 [N, R, R, 3].

        The goal ball is placed at the goal as gymnasium-robotics does, and is invisible (alpha
        0), so frames do not depend on goals."""
        scratch, res = self.scratch, self.cfg.resolution
        frames = np.empty((len(xy), res, res, 3), dtype=np.uint8)
        for k in range(len(xy)):
            if goals_xy is not None and np.isfinite(goals_xy[k]).all():
                scratch.goal = goals_xy[k].astype(np.float64)
                scratch.update_target_site_pos()
            scratch.point_env.set_state(np.asarray(xy[k], dtype=np.float64), np.zeros(2))
            frames[k] = scratch.render()
        return frames

    # -- goal sets, collection -----------------------------------------------------------
    def goal_pairs(self, kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Goal set "random" (base class) or "far": start and goal cells at least far_min_cells moves
        apart along the maze, both uniform otherwise."""
        if kind != "far":
            return super().goal_pairs(kind, rng, n)
        starts, goals = self.sample_states(rng, n), self.sample_states(rng, n)
        near = self.cells_apart(starts, goals) < self.cfg.far_min_cells
        while near.any():
            goals[near] = self.sample_states(rng, int(near.sum()))
            near = self.cells_apart(starts, goals) < self.cfg.far_min_cells
        return starts, goals

    def cells_apart(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """States [n, 4], [n, 4] -> cell moves between their cells [n]."""
        geo = self.geometry
        return geo.path_cells[geo.free_index(a[:, :2]), geo.free_index(b[:, :2])]

    def collect(self, rng: np.random.Generator, n: int, steps: int) -> Collected:
        """n episodes of `steps` frames of PointMazeExplorer from sample_states starts.
        Uses (and leaves reset) this env's episodes."""
        res = self.cfg.resolution
        states = np.empty((n, steps, 4), dtype=np.float32)
        actions = np.empty((n, steps, 2), dtype=np.float32)
        frames = np.empty((n, steps, res, res, 3), dtype=np.uint8)
        starts = self.sample_states(rng, n)
        frame = self.reset(starts, np.full_like(starts, np.nan))
        explorer = PointMazeExplorer(self.geometry, rng, n, self.accel_per_action, self.cfg)
        for t in range(steps):
            states[:, t], frames[:, t] = self.states(), frame
            actions[:, t] = explorer.act(states[:, t])
            if t + 1 < steps:
                frame = self.step(actions[:, t])
        return Collected(states=states, actions=actions, frames=frames)

    def coverage(self, states: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """Coverage of a data set: states [n, T, 4], actions [n, T, 2] -> statistics.

        cell_visit_fraction: free cells visited by any state; cell_visit_balance: entropy of
        the state counts over free cells / log F (1 = uniform); mean_cells_per_episode;
        mean_cells_from_start: the farthest cell an episode reaches, in moves from its start
        cell; speed_mean, speed_p95, speed_clipped_fraction (vx or vy at the 5 m/s clip);
        near_wall_fraction: states touching a wall; action_abs_mean; step_pixels_mean: how far
        the ball moves on the frame per env step; velocity_autocorr_lag1/5: correlation of
        (vx, vy) with itself 1 and 5 env steps later (near 1: velocity persists, one frame
        does not tell it).
        """
        states, geo = np.asarray(states, dtype=np.float64), self.geometry
        n, steps = states.shape[:2]
        n_free = len(geo.free_cells)
        cell = geo.free_index(states[..., :2])  # [n, T]
        in_free = cell >= 0
        counts = np.bincount(cell[in_free], minlength=n_free)
        p = counts / max(counts.sum(), 1)
        entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
        visited = np.zeros((n, n_free), dtype=bool)
        episode = np.broadcast_to(np.arange(n)[:, None], cell.shape)
        visited[episode[in_free], cell[in_free]] = True
        start = np.broadcast_to(cell[:, :1], cell.shape)
        reach = np.where(in_free & (start >= 0), geo.path_cells[start, np.maximum(cell, 0)], 0)
        speed = np.linalg.norm(states[..., 2:], axis=-1)
        step = np.linalg.norm(np.diff(states[..., :2], axis=1), axis=-1)
        return {
            "cell_visit_fraction": float((counts > 0).mean()),
            "cell_visit_balance": float(entropy / np.log(n_free)) if n_free > 1 else 1.0,
            "mean_cells_per_episode": float(visited.sum(1).mean()),
            "mean_cells_from_start": float(reach.max(1).mean()),
            "speed_mean": float(speed.mean()),
            "speed_p95": float(np.percentile(speed, 95)),
            "speed_clipped_fraction": float((np.abs(states[..., 2:]) >= 0.98 * MAX_SPEED).any(-1).mean()),
            "near_wall_fraction": float((geo.clearance(states[..., :2]) < BALL_RADIUS + 0.01).mean()),
            "action_abs_mean": float(np.abs(actions).mean()),
            "step_pixels_mean": float(step.mean() * self.pixels_per_unit) if steps > 1 else 0.0,
            "velocity_autocorr_lag1": velocity_autocorr(states, 1),
            "velocity_autocorr_lag5": velocity_autocorr(states, 5),
        }

    def close(self) -> None:
        self.scratch.close()
        self._datas, self._frames = [], None


def velocity_autocorr(states: np.ndarray, lag: int) -> float:
    """states [n, T, 4] -> Pearson correlation of (vx, vy) at t and t + lag, pooled over
    episodes, times and both axes (NaN when episodes are shorter than lag + 1)."""
    v = np.asarray(states, dtype=np.float64)[..., 2:]
    if v.shape[1] <= lag:
        return float("nan")
    a, b = v[:, :-lag].ravel(), v[:, lag:].ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


# ----------------------------------------------------------------------------- exploration


class PointMazeExplorer:
    """Scripted exploration for N PointMaze episodes at once (numpy over episodes).

    Each episode is drawn as one of two kinds:
    - waypoints (p = explore_waypoint_prob): head for a random free target cell along the BFS
      path through cell centres (the last leg to a random point in the target cell) with a
      PD controller on the force, plus momentum noise; on arrival draw a new target. Gains
      are critically damped at a natural frequency drawn per episode, so speeds vary.
    - random: momentum random forces a_t = m a_{t-1} + sqrt(1 - m^2) sigma eps.
    """

    momentum = 0.9  # noise correlation per env step
    arrive_radius = 0.3  # distance to the target point that counts as arrived

    def __init__(self, geometry: MazeGeometry, rng: np.random.Generator, n: int,
                 accel_per_action: float, cfg: PointMazeConfig):
        self.geometry, self.rng, self.cfg = geometry, rng, cfg
        self.waypoints = rng.random(n) < cfg.explore_waypoint_prob
        omega = rng.uniform(2.0, 6.0, size=(n, 1))  # rad/s of the closed loop x'' = -omega^2 e - 2 omega x'
        self.kp = omega**2 / accel_per_action
        self.kd = 2 * omega / accel_per_action
        self.sigma = np.where(self.waypoints, rng.uniform(0.05, 0.5, n), rng.uniform(0.3, 1.0, n))[:, None]
        self.noise = rng.standard_normal((n, 2))
        self.target = rng.integers(len(geometry.free_cells), size=n)
        self.target_xy = geometry.sample_xy(rng, self.target, cfg.wall_clearance)

    def act(self, states: np.ndarray) -> np.ndarray:
        """states [N, 4] -> actions float32 [N, 2] in [-1, 1]."""
        xy, vel = states[:, :2].astype(np.float64), states[:, 2:].astype(np.float64)
        cell = self.geometry.free_index(xy)

        # New targets for episodes that arrived
        arrived = (cell == self.target) & (np.linalg.norm(xy - self.target_xy, axis=1) < self.arrive_radius)
        if arrived.any():
            new = self.rng.integers(len(self.geometry.free_cells), size=int(arrived.sum()))
            self.target[arrived] = new
            self.target_xy[arrived] = self.geometry.sample_xy(self.rng, new, self.cfg.wall_clearance)

        # Next waypoint: the next cell's centre, or the target point on the last leg
        nxt = self.geometry.next_cell[np.maximum(cell, 0), self.target]
        waypoint = np.where((nxt == self.target)[:, None], self.target_xy, self.geometry.centres[nxt])
        steer = self.kp * (waypoint - xy) - self.kd * vel
        steer[cell < 0] = 0.0  # the centre is inside a wall cell (contact): noise only

        # Momentum noise
        m = self.momentum
        self.noise = m * self.noise + math.sqrt(1 - m**2) * self.rng.standard_normal(self.noise.shape)
        actions = np.where(self.waypoints[:, None], steer, 0.0) + self.sigma * self.noise
        return np.clip(actions, -1.0, 1.0).astype(np.float32)
