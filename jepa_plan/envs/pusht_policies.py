"""Push-T data collection: a scripted expert, stable-worldmodel's WeakPolicy, and the coverage
statistics of what they collect (states as in `jepa_plan.envs.pusht`).

No package ships a Push-T expert: stable-worldmodel's only Push-T policy, `WeakPolicy`, draws
uniform random relative actions and clips the agent's target to a box around the block, so it
touches the block often but pushes it nowhere in particular. `PushTExpert` is ours.

Pushing, as the env simulates it: the agent is a kinematic disc, contacts are frictionless and
the block's velocity is wiped every substep, so a push at boundary point p (relative to the
block's centre of gravity) along the inward normal d gives the block the velocity twist of one
impulse, (d / m, (p x d) / I). In coordinates (x, y, L angle), L = sqrt(I / m) the radius of
gyration, that twist points along (d, (p x d) / L): through the centre of gravity a push only
translates, off centre it also turns the block.

The expert, each step and batched over episodes:
1. the desired change of the block pose, (dx, dy, L dangle) of its centre of gravity;
2. the contact whose twist points most along it, among points on the block's exposed edges
   whose approach point lies inside the walls (kept while within `switch_margin` of the best,
   so the agent does not dither between contacts);
3. at the contact, on its normal: push along the inward normal, further the larger the error;
   elsewhere: go to a point just off the contact, around the block (a waypoint on a circle
   that clears it) when the straight line would hit it;
4. once the block is placed, park the agent at the goal's agent position when one is given
   (the env's success counts the agent's position too).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from jepa_plan.envs.pusht import BLOCK_ANGLE, BLOCK_POSE, BLOCK_XY, Geometry, polygon_distance
from jepa_plan.envs.pusht import wrap_angle as _wrap

ACTION_SCALE = 100.0  # PushT: the PD target is agent + 100 * action


def _rotate(vectors: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Block-frame vectors [K, 2] turned by angles [N] -> [N, K, 2]."""
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    return np.stack([c * vectors[:, 0] - s * vectors[:, 1], s * vectors[:, 0] + c * vectors[:, 1]], axis=-1)


class PushTExpert:
    """Scripted, optionally noisy pusher for N episodes at once (see the module docstring).

        expert = PushTExpert(env.geo, noise=0.2)
        actions = expert.act(states [N, 7], goals [N, 7], rng)   # -> [N, 2] in [-1, 1]

    goals' block pose (x, y, angle) is the target; their agent position, where finite, is where
    the agent parks once the block is placed. The expert remembers each episode's contact:
    call `reset()` when the episodes change.
    """

    def __init__(self, geo: Geometry, noise: float = 0.0, *, contact_spacing: float = 4.0,
                 angle_weight: float = 1.5, switch_margin: float = 0.15, approach_gap: float = 10.0,
                 push_gain: float = 0.5, push_max: float = 25.0, travel_speed: float = 0.6,
                 placed_position: float = 6.0, placed_angle: float = 0.1):
        self.geo, self.noise = geo, noise
        self.angle_weight, self.switch_margin, self.approach_gap = angle_weight, switch_margin, approach_gap
        self.push_gain, self.push_max, self.travel_speed = push_gain, push_max, travel_speed
        self.placed_position, self.placed_angle = placed_position, placed_angle
        self.gyration = float(np.sqrt(geo.block_moment / geo.block_mass))
        self.points, self.normals = self._contacts(contact_spacing)  # [K, 2] each, block frame
        pushes = -self.normals
        lever = self.points - geo.cog
        turn = lever[:, 0] * pushes[:, 1] - lever[:, 1] * pushes[:, 0]  # (p - cog) x d, the same in any frame
        self.turn = turn / self.gyration  # [K]
        self.twist_norm = np.sqrt(1.0 + self.turn**2)  # |(d, turn)|, d a unit vector
        self.clear_radius = float(np.linalg.norm(geo.pieces - geo.cog, axis=-1).max()) + geo.agent_radius + 8.0
        self.reset()

    def _contacts(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Points every `spacing` px on the block's exposed edges, with outward unit normals,
        where the agent's disc fits against the block (not in a concave corner)."""
        geo, points, normals = self.geo, [], []
        for piece in geo.pieces:
            signed_area = 0.5 * np.sum(piece[:, 0] * np.roll(piece[:, 1], -1) - np.roll(piece[:, 0], -1) * piece[:, 1])
            for a, b in zip(piece, np.roll(piece, -1, axis=0)):
                edge = b - a
                length = float(np.linalg.norm(edge))
                # outward normal: right of the edge for a counter-clockwise piece (positive area)
                normal = np.array([edge[1], -edge[0]]) / length * np.sign(signed_area)
                for t in (np.arange(np.floor(length / spacing)) + 0.5) / np.floor(length / spacing):
                    points.append(a + t * edge)
                    normals.append(normal)
        points, normals = np.array(points), np.array(normals)
        exposed = polygon_distance(points + 0.5 * normals, geo.pieces) > 0
        fits = polygon_distance(points + (geo.agent_radius + 0.5) * normals, geo.pieces) >= geo.agent_radius - 0.5
        keep = exposed & fits
        return points[keep], normals[keep]

    def reset(self) -> None:
        self._contact: np.ndarray | None = None  # [N] each episode's contact index
        self._placed: np.ndarray | None = None  # [N] block placed (hysteresis)

    def block_placed(self, states: np.ndarray, goals: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """bool [N]: the block within scale * (placed_position, placed_angle) of the goal's block pose."""
        position = np.linalg.norm(goals[:, BLOCK_XY] - states[:, BLOCK_XY], axis=-1)
        angle = np.abs(_wrap(goals[:, BLOCK_ANGLE] - states[:, BLOCK_ANGLE]))
        return (position < scale * self.placed_position) & (angle < scale * self.placed_angle)

    def act(self, states: np.ndarray, goals: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """states [N, 7], goals [N, 7] -> actions float32 [N, 2] in [-1, 1]; rng draws the
        action noise (needed when noise > 0)."""
        geo = self.geo
        states, goals = np.asarray(states, np.float64), np.asarray(goals, np.float64)
        n, rows = len(states), np.arange(len(states))
        if self._contact is None or len(self._contact) != n:
            self._contact, self._placed = np.full(n, -1), np.zeros(n, dtype=bool)
        agent, pose = states[:, :2], states[:, BLOCK_POSE]
        self._placed = np.where(self._placed, self.block_placed(states, goals, scale=2.0),
                                self.block_placed(states, goals))

        # Desired change of the block pose, in (x, y, L angle) of its centre of gravity.
        centre = geo.block_to_world(geo.cog[None], pose)[:, 0]  # [N, 2]
        dpos = geo.block_to_world(geo.cog[None], goals[:, BLOCK_POSE])[:, 0] - centre
        dangle = _wrap(goals[:, BLOCK_ANGLE] - pose[:, 2])
        desired = np.concatenate([dpos, (self.angle_weight * self.gyration * dangle)[:, None]], axis=1)  # [N, 3]

        # Contact whose push twist points most along it, among reachable ones.
        points = geo.block_to_world(self.points, pose)  # [N, K, 2]
        normals = _rotate(self.normals, pose[:, 2])  # [N, K, 2]
        approach = points + (geo.agent_radius + self.approach_gap) * normals
        self._contact = contact = self._choose(normals, approach, desired)
        point, normal = points[rows, contact], normals[rows, contact]

        # On the contact's normal: push, further the larger the error; else head for its approach point.
        offset = agent - point
        out = (offset * normal).sum(-1)
        side = np.abs(offset[:, 0] * normal[:, 1] - offset[:, 1] * normal[:, 0])
        ready = (side < 6.0) & (out > geo.agent_radius - 5.0) & (out < geo.agent_radius + self.approach_gap + 5.0)
        push = np.clip(self.push_gain * np.linalg.norm(desired, axis=1), 3.0, self.push_max)
        target = np.where(ready[:, None], point + (geo.agent_radius - push)[:, None] * normal,
                          self._route(agent, approach[rows, contact], pose, centre))

        # Block placed: park at the goal's agent position where it is known, else stay.
        park = np.where(np.isfinite(goals[:, :2]).all(1, keepdims=True), goals[:, :2], agent)
        target = np.where(self._placed[:, None], self._route(agent, park, pose, centre), target)

        # Actions: the PD target relative to the agent, travel at a capped speed, noise.
        actions = (target - agent) / ACTION_SCALE
        travelling = (~ready | self._placed)[:, None]
        norm = np.maximum(np.linalg.norm(actions, axis=1, keepdims=True), 1e-9)
        actions = np.where(travelling & (norm > self.travel_speed), actions * (self.travel_speed / norm), actions)
        if self.noise > 0:
            if rng is None:
                raise ValueError("PushTExpert.act: noise > 0 needs an rng")
            actions = actions + rng.normal(0.0, self.noise, actions.shape)
        return np.clip(actions, -1.0, 1.0).astype(np.float32)

    def _choose(self, normals: np.ndarray, approach: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Each episode's contact index [N]: the best cosine between its push twist and `desired`
        [N, 3] among contacts whose approach point [N, K, 2] is inside the walls, the previous
        contact kept while within switch_margin of the best."""
        geo, rows = self.geo, np.arange(len(desired))
        along = -(normals * desired[:, None, :2]).sum(-1) + self.turn * desired[:, 2:]  # twist . desired [N, K]
        score = along / self.twist_norm / np.maximum(np.linalg.norm(desired, axis=1, keepdims=True), 1e-9)
        low, high = geo.inner_low + geo.agent_radius, geo.inner_high - geo.agent_radius
        score = np.where(((approach >= low) & (approach <= high)).all(-1), score, -np.inf)
        best = score.argmax(1)
        previous = np.maximum(self._contact, 0)
        keep = (self._contact >= 0) & (score[rows, previous] >= score[rows, best] - self.switch_margin)
        return np.where(keep, self._contact, best)

    def _route(self, agent: np.ndarray, dest: np.ndarray, pose: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Where to head for dest [N, 2] without hitting the blocks at pose [N, 3] (centres of
        gravity centre [N, 2]): dest itself when the straight line clears them, else a waypoint
        a step around the circle about the centre that clears the block."""
        geo = self.geo
        t = np.linspace(0.0, 1.0, 12)[None, :, None]
        line = agent[:, None] + t * (dest - agent)[:, None]  # [N, 12, 2]
        clear = (geo.block_distance(line, pose[:, None]) >= geo.agent_radius - 0.5).all(1)
        start = np.arctan2(agent[:, 1] - centre[:, 1], agent[:, 0] - centre[:, 0])
        turn = _wrap(np.arctan2(dest[:, 1] - centre[:, 1], dest[:, 0] - centre[:, 0]) - start)
        heading = start + np.sign(turn) * np.minimum(np.abs(turn), 0.7)
        waypoint = centre + self.clear_radius * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        waypoint = np.clip(waypoint, geo.inner_low + geo.agent_radius + 1.0, geo.inner_high - geo.agent_radius - 1.0)
        # straight on when the line is clear, or when dest lies in the agent's direction anyway
        return np.where((clear | (np.abs(turn) < 0.05))[:, None], dest, waypoint)


def weak_policy(envs: list, dist_constraint: float, seed: int) -> Callable[[], np.ndarray]:
    """stable-worldmodel's `WeakPolicy` over `envs` (unwrapped PushT envs): a function that
    returns its actions [len(envs), 2] for their current states (uniform random relative
    actions, the agent's target clipped to a box of +-dist_constraint px around the block)."""
    import gymnasium as gym
    from stable_worldmodel.envs.pusht import WeakPolicy

    if not envs:
        return lambda: np.zeros((0, 2), dtype=np.float32)
    policy = WeakPolicy(dist_constraint=dist_constraint, seed=seed)
    # It reads each env's agent and block through a stand-in for a vector env.
    policy.set_env(SimpleNamespace(envs=envs, spec=envs[0].spec,
                                   action_space=gym.spaces.Box(-1, 1, (len(envs), 2))))
    return lambda: policy.get_action({})


def block_coverage(states: np.ndarray, goal_states: np.ndarray, position_threshold: float = 20.0,
                   angle_threshold: float = np.pi / 9, move_px: float = 0.5, move_rad: float = 0.01,
                   angle_bins: int = 18) -> dict[str, float]:
    """Coverage statistics of a data set, states [n, T, 7], against goal states [G, 7].

    block_moved_step_fraction: steps after which the block has moved (more than move_px or
    move_rad); block_moved_episode_fraction: episodes in which it ever does;
    block_x_std, block_y_std (px); block_angle_spread: 1 - the mean resultant length of the
    angles (0: one angle, 1: uniform); block_angle_bin_fraction: angle bins (of angle_bins)
    visited; goal_in_range_fraction: goals whose block x and y lie inside the visited range
    and whose angle bin was visited; goal_pose_covered_fraction: goals with a visited block
    pose within the success thresholds of their block pose (block alone); goal_pose_nn_median:
    the median over goals of the nearest visited block pose's distance, max(position error /
    position_threshold, angle error / angle_threshold) (below 1: covered).
    """
    states = np.asarray(states, dtype=np.float64)
    pose = states[..., BLOCK_POSE]  # [n, T, 3]
    step = np.diff(pose, axis=1)
    moved = (np.linalg.norm(step[..., :2], axis=-1) > move_px) | (np.abs(_wrap(step[..., 2])) > move_rad)
    visited = np.unique(pose.reshape(-1, 3), axis=0)  # a block at rest repeats its pose exactly
    goals = np.asarray(goal_states, dtype=np.float64)[:, BLOCK_POSE]
    bin_of = lambda angle: (np.mod(angle, 2 * np.pi) / (2 * np.pi) * angle_bins).astype(int) % angle_bins  # noqa: E731
    seen_bins = np.zeros(angle_bins, dtype=bool)
    seen_bins[bin_of(visited[:, 2])] = True
    low, high = visited[:, :2].min(0), visited[:, :2].max(0)
    in_range = ((goals[:, :2] >= low) & (goals[:, :2] <= high)).all(1) & seen_bins[bin_of(goals[:, 2])]
    nearest = _nearest_pose_distance(goals, visited, position_threshold, angle_threshold)
    angles = pose[..., 2].ravel()
    return {
        "block_moved_step_fraction": float(moved.mean()) if moved.size else 0.0,
        "block_moved_episode_fraction": float(moved.any(1).mean()) if moved.size else 0.0,
        "block_x_std": float(pose[..., 0].std()),
        "block_y_std": float(pose[..., 1].std()),
        "block_angle_spread": float(1.0 - np.hypot(np.cos(angles).mean(), np.sin(angles).mean())),
        "block_angle_bin_fraction": float(seen_bins.mean()),
        "goal_in_range_fraction": float(in_range.mean()),
        "goal_pose_covered_fraction": float((nearest < 1.0).mean()),
        "goal_pose_nn_median": float(np.median(nearest)),
    }


def _nearest_pose_distance(goals: np.ndarray, visited: np.ndarray, position_threshold: float,
                           angle_threshold: float, chunk: int = 4096) -> np.ndarray:
    """goals [G, 3], visited [V, 3] block poses -> [G]: min over visited of max(position error /
    position_threshold, angle error / angle_threshold), in chunks of visited poses."""
    best = np.full(len(goals), np.inf)
    for first in range(0, len(visited), chunk):
        part = visited[first: first + chunk]
        position = np.linalg.norm(goals[:, None, :2] - part[None, :, :2], axis=-1) / position_threshold
        angle = np.abs(_wrap(goals[:, None, 2] - part[None, :, 2])) / angle_threshold
        best = np.minimum(best, np.maximum(position, angle).min(1))
    return best
