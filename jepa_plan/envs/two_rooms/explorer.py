"""The scripted exploration policy that collects two_rooms data (door-seeking, goal-seeking, walks)."""

from __future__ import annotations

import numpy as np

from jepa_plan.envs.two_rooms.world import TwoRoomsConfig, _as_states, geometry, room_of, sample_free_state


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
