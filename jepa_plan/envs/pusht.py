"""pusht: stable-worldmodel's `swm/PushT-v1` behind the batched env protocol.

The env is `PushT` of stable-worldmodel 0.1.1 (the optional extra `envs`, which brings pymunk,
pygame and shapely for it), one gymnasium env per episode, built with `with_target=False` so
that no frame carries the green goal overlay. Lengths are the env's own pixels of its 512 x 512
window, x to the right, y down; angles in radians. What the adapter relies on is read off a
reset env when it is built (`Geometry`), not copied here:
- the agent is a kinematic disc (radius 15) that a PD controller drives towards
  agent + 100 * action in 10 substeps of 0.01 s; it passes through the walls;
- the block is a T of two boxes (120 x 30 bar, 30 x 90 stem); its position is its body
  origin, the middle of the bar's outer edge, not its centre of gravity (45 px down the stem),
  about which it turns; contacts are frictionless and the space's damping is 0, so the block
  moves only while pushed (its velocity is wiped every substep);
- walls at 5 and 506 px; the env's own resets draw the agent in [50, 450]^2 and the block in
  [100, 400]^2 at any angle, which `sample_states` follows without the overlaps those draws
  allow (agent on block; the stem, 120 px from the block's position, through a wall).

State, float32 [7], the env's own `state` observation (see `STATE_FIELDS`):
    [agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy]
The angle is returned modulo 2 pi; the agent's velocity carries over between steps (the PD
controller damps it), so it is part of the state. The block's velocities are not (nor in
stable-worldmodel's state): a block being pushed keeps one substep's contact velocity into the
next step, a reset zeroes it, so a replay from a mid-push state drifts by a px or two in its
first step (replays from a resting block are exact).

Success is `PushT.eval_state`: ||goal[:4] - state[:4]|| < 20, the agent's AND the block's
position errors together, and the block's angle error (wrapped) < pi / 9. `distance()` is the
larger of the two errors, each divided by its threshold, so success is distance < 1.

Frames: the env's 512 px canvas, area-averaged to cfg.resolution by cv2.INTER_AREA (the env's
own `resolution` argument resizes bilinearly, which aliases the 30 px T at 64 px). `_canvas`
draws that canvas as `PushT.render` does, pixel for pixel, but reads it out contiguously, in
half the time. Episode frames and goal images go through one scratch env, so a goal image and
a frame of the same state are identical.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_plan.envs.base import Collected, EnvConfig, EnvPerEpisode, require

ENV_ID = "swm/PushT-v1"
STATE_FIELDS = ("agent_x", "agent_y", "block_x", "block_y", "block_angle", "agent_vx", "agent_vy")
AGENT_XY, BLOCK_XY, BLOCK_ANGLE, AGENT_VELOCITY = slice(0, 2), slice(2, 4), 4, slice(5, 7)
BLOCK_POSE = slice(2, 5)  # block x, y, angle
CLEARANCE = 2.0  # px: sampled agents keep this far from the block, blocks from the walls


@dataclass
class PushTConfig(EnvConfig):
    """stable-worldmodel Push-T; lengths in env pixels (the 512 px window)."""

    name: str = "pusht"
    resolution: int = 64  # frames are area-averaged from the 512 px canvas (96 or 224 for full runs)
    position_threshold: float = 20.0  # PushT.eval_state: ||goal[:4] - state[:4]|| < 20
    angle_threshold: float = math.pi / 9  # ... and wrapped block angle error < pi / 9
    max_episode_steps: int = 300  # the Push-T task's usual limit (gym-pusht, Diffusion Policy)
    # collection: a share of episodes from our scripted expert, the rest stable-worldmodel's WeakPolicy
    expert_fraction: float = 0.7
    expert_noise: float = 0.2  # std of the Gaussian noise on the expert's actions (1 = 100 px of PD target)
    weak_dist_constraint: float = 100.0  # WeakPolicy: agent targets within this box around the block
    coverage_goals: int = 500  # random goals that `coverage` measures the data against


@dataclass(frozen=True)
class Geometry:
    """What the adapter and the expert need of a reset PushT env, in env pixels."""

    size: int  # window side
    pieces: np.ndarray  # [P, V, 2] the block's convex pieces in its body frame (origin = its position)
    cog: np.ndarray  # [2] its centre of gravity in that frame
    agent_radius: float
    block_mass: float
    block_moment: float  # the moment of inertia the env gives it (not a uniform T's)
    agent_low: float  # the env's start draws: agent in [agent_low, agent_high]^2,
    agent_high: float
    block_low: float  # block in [block_low, block_high]^2
    block_high: float
    inner_low: float  # the walls' inner faces, on both axes
    inner_high: float

    def block_distance(self, points: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """Distance from points [..., 2] to blocks at poses [..., 3] (x, y, angle) -> [...]
        (negative inside: minus the depth into the nearest piece)."""
        points, poses = np.asarray(points, np.float64), np.asarray(poses, np.float64)
        c, s = np.cos(poses[..., 2]), np.sin(poses[..., 2])
        dx, dy = points[..., 0] - poses[..., 0], points[..., 1] - poses[..., 1]
        local = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)  # rotate by -angle
        return polygon_distance(local, self.pieces)

    def block_to_world(self, local: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """Block-frame points [K, 2] at poses [N, 3] -> world points [N, K, 2]."""
        c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
        x, y = local[None, :, 0], local[None, :, 1]
        return np.stack([poses[:, :1] + c * x - s * y, poses[:, 1:2] + s * x + c * y], axis=-1)


def polygon_distance(points: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Distance from points [..., 2] to the union of convex polygons [P, V, 2] -> [...];
    inside, minus the distance to the nearest edge of the piece it is in."""
    a = pieces  # [P, V, 2] edge starts
    b = np.roll(pieces, -1, axis=1)  # edge ends
    edge = b - a
    p = points[..., None, None, :]  # [..., 1, 1, 2]
    t = np.clip(((p - a) * edge).sum(-1) / (edge * edge).sum(-1), 0.0, 1.0)
    to_edge = np.linalg.norm(p - (a + t[..., None] * edge), axis=-1).min(-1)  # [..., P]
    # inside a convex piece: on the inner side of every edge
    cross = edge[..., 0] * (p[..., 1] - a[..., 1]) - edge[..., 1] * (p[..., 0] - a[..., 0])  # [..., P, V]
    orientation = np.sign(edge[:, :1, 0] * edge[:, 1:2, 1] - edge[:, :1, 1] * edge[:, 1:2, 0])  # [P, 1]
    inside = (cross * orientation >= 0).all(-1)
    return np.where(inside, -to_edge, to_edge).min(-1)


def _geometry(env) -> Geometry:
    block, (agent_shape,) = env.block, list(env.agent.shapes)
    pieces = [np.array([tuple(v) for v in shape.get_vertices()], dtype=np.float64) for shape in block.shapes]
    if len({len(piece) for piece in pieces}) != 1:
        raise ValueError(f"pusht: expected block pieces with equal vertex counts, got {[len(p) for p in pieces]}")
    variation = env.variation_space
    agent_range = variation["agent"]["start_position"]
    block_range = variation["block"]["start_position"]
    walls = list(env.space.static_body.shapes)
    wall_xs = [min(w.a.x, w.b.x) for w in walls] + [max(w.a.x, w.b.x) for w in walls]
    radius = float(walls[0].radius)
    return Geometry(
        size=int(env.window_size),
        pieces=np.stack(pieces),
        cog=np.array(tuple(block.center_of_gravity), dtype=np.float64),
        agent_radius=float(agent_shape.radius),
        block_mass=float(block.mass),
        block_moment=float(block.moment),
        agent_low=float(np.max(agent_range.low)), agent_high=float(np.min(agent_range.high)),
        block_low=float(np.max(block_range.low)), block_high=float(np.min(block_range.high)),
        inner_low=min(wall_xs) + radius, inner_high=max(wall_xs) - radius,
    )


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles [...] -> the same angles in [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def block_pose_features(states: np.ndarray) -> np.ndarray:
    """States [..., 7] -> block (x, y, sin angle, cos angle) [..., 4], continuous in the angle."""
    states = np.asarray(states)
    angle = states[..., BLOCK_ANGLE]
    return np.concatenate([states[..., BLOCK_XY], np.sin(angle)[..., None], np.cos(angle)[..., None]], axis=-1)


class PushTEnv(EnvPerEpisode):
    """N `swm/PushT-v1` episodes stepped together; states [N, 7] as in the module docstring."""

    state_dim = 7
    PROBE_GROUPS = {"agent_xy": ("agent_x", "agent_y"), "block_xy": ("block_x", "block_y"),
                    "block_angle": ("block_sin", "block_cos")}

    @classmethod
    def probe_features(cls, states: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The agent's position, the block's pose with its angle as (sin, cos), the agent's velocity."""
        states = np.asarray(states)
        features = np.concatenate([states[..., AGENT_XY], block_pose_features(states), states[..., AGENT_VELOCITY]], axis=-1)
        return features, ["agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos", "agent_vx", "agent_vy"]

    def __init__(self, cfg: PushTConfig | None = None):
        cfg = cfg if cfg is not None else PushTConfig()
        super().__init__(cfg)
        # stable-worldmodel's data cache (default ~/.stable_worldmodel); this env writes nothing there
        os.environ.setdefault("STABLEWM_HOME", str(Path.home() / ".cache" / "stable-worldmodel"))
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        for module, package in (("pymunk", "pymunk"), ("pygame", "pygame"), ("shapely", "shapely"),
                                ("stable_worldmodel", "stable-worldmodel")):
            require(module, env=cfg.name, package=package)
        import cv2  # opencv-python-headless, which stable_worldmodel imports too
        import gymnasium as gym
        import pygame
        from stable_worldmodel.envs.utils import DrawOptions

        self._cv2, self._gym, self._pygame, self._draw_options = cv2, gym, pygame, DrawOptions
        self._scratch = self._make_env()  # renders every frame and goal image
        self.geo = _geometry(self._scratch)
        self._check_config()
        self.action_low = np.full(2, -1.0, dtype=np.float32)
        self.action_high = np.full(2, 1.0, dtype=np.float32)
        self._envs: list = []  # the episode loop's envs, grown on demand
        self._collect_envs: list = []  # collect's own, so that it leaves an episode loop as it was
        self._n = 0

    def _check_config(self) -> None:
        cfg = self.cfg
        checks = [
            (8 <= cfg.resolution <= self.geo.size, f"resolution={cfg.resolution} must be in [8, {self.geo.size}]"),
            (cfg.position_threshold > 0, f"position_threshold={cfg.position_threshold} must be positive"),
            (0 < cfg.angle_threshold <= math.pi, f"angle_threshold={cfg.angle_threshold} must be in (0, pi]"),
            (cfg.max_episode_steps >= 1, f"max_episode_steps={cfg.max_episode_steps} must be at least 1"),
            (0 <= cfg.expert_fraction <= 1, f"expert_fraction={cfg.expert_fraction} must be in [0, 1]"),
            (cfg.expert_noise >= 0, f"expert_noise={cfg.expert_noise} must be >= 0"),
            (cfg.weak_dist_constraint > 0, f"weak_dist_constraint={cfg.weak_dist_constraint} must be positive"),
            (cfg.coverage_goals >= 1, f"coverage_goals={cfg.coverage_goals} must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"PushTConfig: {message}")

    def _make_env(self):
        """A PushT (unwrapped, past gymnasium's checks), reset once so that its pymunk space
        exists; rendering at the window size leaves the resizing to `_render`."""
        env = self._gym.make(ENV_ID, with_target=False, resolution=512, disable_env_checker=True).unwrapped
        with warnings.catch_warnings():  # its variation space casts lists to arrays, with a warning
            warnings.simplefilter("ignore")
            env.reset(seed=0)
        return env

    @staticmethod
    def _place(env, state: np.ndarray, goal: np.ndarray | None = None) -> None:
        """Put env's bodies in `state` [7] (block at rest) and its goal at `goal` [7].

        `PushT._set_state` would also run one physics substep, which moves an agent with a
        velocity; setting the bodies and reindexing their shapes leaves the state as given.
        """
        x, y, bx, by, angle, vx, vy = (float(v) for v in state)
        env.agent.position, env.agent.velocity = (x, y), (vx, vy)
        env.block.angle = angle  # first: pymunk turns a body about its centre of gravity,
        env.block.position = (bx, by)  # so setting the angle after the position would move it
        env.block.velocity, env.block.angular_velocity = (0.0, 0.0), 0.0
        env.space.reindex_shapes_for_body(env.agent)
        env.space.reindex_shapes_for_body(env.block)
        env.latest_action = None
        if goal is not None:  # the env's own step() judges `terminated` against it
            env.goal_state = np.asarray(goal, dtype=np.float64)

    # -- the batched episode loop --------------------------------------------------------
    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        self._n = len(start_states)
        for env, state, goal in zip(self._pool(self._envs, self._n), start_states, self._targets(start_states)):
            self._place(env, state, goal)
        return self._render(self.states())

    @staticmethod
    def _observe(envs: list) -> np.ndarray:
        return np.array([env._get_obs() for env in envs], dtype=np.float32).reshape(-1, 7)

    # -- stateless pieces ----------------------------------------------------------------
    def pose_errors(self, states: np.ndarray, goals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[..., 7], [..., 7] -> (position error [...] = ||goal[:4] - state[:4]||, the agent's
        and the block's together, as PushT.eval_state; wrapped block angle error [...])."""
        states, goals = np.asarray(states, np.float64), np.asarray(goals, np.float64)
        position = np.linalg.norm(goals[..., :4] - states[..., :4], axis=-1)
        angle = np.abs(wrap_angle(goals[..., BLOCK_ANGLE] - states[..., BLOCK_ANGLE]))
        return position, angle

    def goal_distance(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """max(position error / position_threshold, angle error / angle_threshold) [...]:
        below 1 exactly when the env counts success."""
        position, angle = self.pose_errors(states, goals)
        return np.maximum(position / self.cfg.position_threshold, angle / self.cfg.angle_threshold)

    def is_success(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        position, angle = self.pose_errors(states, goals)
        return (position < self.cfg.position_threshold) & (angle < self.cfg.angle_threshold)

    @property
    def success_radius(self) -> float:
        return 1.0  # goal_distance is in units of the thresholds

    def render_states(self, states: np.ndarray) -> np.ndarray:
        return self._render(self.check_states(states))

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n states [n, 7] as the env's own resets draw them (agent and block uniform in their
        start boxes, block angle uniform in [0, 2 pi), at rest), redrawn until the agent is
        clear of the block and the block clear of the walls."""
        geo = self.geo
        out = np.zeros((n, 7), dtype=np.float32)
        todo = np.arange(n)
        while len(todo):
            k = len(todo)
            out[todo, AGENT_XY] = rng.uniform(geo.agent_low, geo.agent_high, size=(k, 2))
            out[todo, BLOCK_XY] = rng.uniform(geo.block_low, geo.block_high, size=(k, 2))
            out[todo, BLOCK_ANGLE] = rng.uniform(0.0, 2 * np.pi, size=k)
            out[todo, BLOCK_ANGLE] %= np.float32(2 * np.pi)  # float32 rounding may reach 2 pi
            clear = geo.block_distance(out[todo, AGENT_XY], out[todo, BLOCK_POSE]) >= geo.agent_radius + CLEARANCE
            corners = geo.block_to_world(geo.pieces.reshape(-1, 2), out[todo, BLOCK_POSE].astype(np.float64))
            inside = ((corners >= geo.inner_low + CLEARANCE) & (corners <= geo.inner_high - CLEARANCE)).all((1, 2))
            todo = todo[~(clear & inside)]
        return out

    # -- rendering -----------------------------------------------------------------------
    def _render(self, states: np.ndarray) -> np.ndarray:
        """states [N, 7] -> uint8 [N, R, R, 3]: the scratch env's canvas, area-averaged to R."""
        cv2, res, env = self._cv2, self.cfg.resolution, self._scratch
        out = np.empty((len(states), res, res, 3), dtype=np.uint8)
        for i, state in enumerate(states):
            self._place(env, state)
            frame = self._canvas(env)
            out[i] = frame if res == frame.shape[0] else cv2.resize(frame, (res, res), interpolation=cv2.INTER_AREA)
        return out

    def _canvas(self, env) -> np.ndarray:
        """uint8 [512, 512, 3]: `PushT._render_frame` without the goal overlay (the bodies keep
        the colours the env gave them), read out as bytes rather than through a strided copy."""
        pygame, size = self._pygame, self.geo.size
        canvas = pygame.Surface((size, size))
        canvas.fill(env.variation_space["background"]["color"].value)
        env.space.debug_draw(self._draw_options(canvas))
        return np.frombuffer(pygame.image.tobytes(canvas, "RGB"), dtype=np.uint8).reshape(size, size, 3)

    # -- collection ----------------------------------------------------------------------
    def collect(self, rng: np.random.Generator, n: int, steps: int) -> Collected:
        """n episodes of `steps` frames from `sample_states` starts: a cfg.expert_fraction
        share from the scripted expert (`pusht_policies.PushTExpert`, Gaussian action noise
        cfg.expert_noise) pushing the block to random target poses (a reached target is
        replaced by a new one), the rest from stable-worldmodel's WeakPolicy (random actions
        near the block). states [n, T, 7] (state at frame t), actions [n, T, 2] (action taken
        at frame t), frames uint8 [n, T, R, R, 3]."""
        from jepa_plan.envs.pusht_policies import PushTExpert, weak_policy  # it imports this module

        cfg = self.cfg
        envs = self._pool(self._collect_envs, n)
        starts, targets = self.goal_pairs("random", rng, n)
        for env, state, target in zip(envs, starts, targets):
            self._place(env, state, target)
        is_expert = rng.random(n) < cfg.expert_fraction
        expert, weak = np.flatnonzero(is_expert), np.flatnonzero(~is_expert)
        expert_policy = PushTExpert(self.geo, noise=cfg.expert_noise)
        weak_actions = weak_policy([envs[i] for i in weak], cfg.weak_dist_constraint, int(rng.integers(2**32)))

        states = np.empty((n, steps, 7), dtype=np.float32)
        actions = np.empty((n, steps, 2), dtype=np.float32)
        for t in range(steps):
            state = states[:, t] = self._observe(envs)
            # Expert: a new target for episodes that reached theirs, then its action.
            if len(expert):
                reached = expert_policy.block_placed(state[expert], targets[expert])
                if reached.any():
                    targets[expert[reached]] = self.sample_states(rng, int(reached.sum()))
                actions[expert, t] = expert_policy.act(state[expert], targets[expert], rng)
            if len(weak):
                actions[weak, t] = weak_actions()
            for env, a in zip(envs, actions[:, t]):
                env.step(a)
        frames = self._render(states.reshape(-1, 7)).reshape(n, steps, cfg.resolution, cfg.resolution, 3)
        return Collected(states, actions, frames)

    def coverage(self, states: np.ndarray, actions: np.ndarray,
                 goal_states: np.ndarray | None = None) -> dict[str, float]:
        """Coverage of a data set (states [n, T, 7]) against the block poses of evaluation
        goals (goal_states [G, 7]; by default cfg.coverage_goals random goals from
        `sample_states` with a fixed seed): see `pusht_policies.block_coverage`."""
        from jepa_plan.envs.pusht_policies import block_coverage  # it imports this module

        if goal_states is None:
            goal_states = self.sample_states(np.random.default_rng(0), self.cfg.coverage_goals)
        return block_coverage(states, goal_states, self.cfg.position_threshold, self.cfg.angle_threshold)

    def close(self) -> None:
        for env in [self._scratch, *self._envs, *self._collect_envs]:
            env.close()
        self._envs, self._collect_envs, self._n = [], [], 0
