"""The environment protocol that evaluation and data collection use (DESIGN.md, "Environment").

An env steps N episodes together. States are the env's own true states, float32 [N, S]; frames
are uint8 [N, R, R, 3] at the config's resolution, rendered with any goal marker hidden.

    env = make_env({"name": "two_rooms"})
    frames = env.reset(start_states, goal_states)   # goal rows may be NaN (an image goal)
    frames = env.step(actions [N, A_env], active bool [N])   # inactive episodes stay put
    env.states(), env.success(), env.distance()     # by the env's own success criterion

Besides the batched episode loop an env offers what evaluation and collection need without
naming it: `render_states` (goal images), `sample_states` (random starts and goals),
`goal_pairs` for the goal sets it declares in `GOAL_SETS`, `collect` (its exploration policy,
with coverage statistics), and optionally `oracle` (its own dynamics as a world model) and
`state_from_frame` (the true state read off an image goal).

Each implementation is registered in `jepa_plan.envs.ENVS` as `{name: (EnvClass, ConfigClass)}`.
An env whose package is an optional extra imports it when it is built, and a missing package
is a `MissingExtra` error that says what to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


class MissingExtra(ImportError):
    """An env needs an optional package that is not installed; the message says what to install."""


def require(module: str, env: str, extra: str = "envs", package: str | None = None) -> Any:
    """Import `module` for env `env`, or raise MissingExtra naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"env {env!r} needs the package {package or module!r}, which is not installed ({err}); "
            f"install the optional extra: pip install -e '.[{extra}]'") from None


@dataclass
class EnvConfig:
    """Fields every env config has; each env's config dataclass extends it."""

    name: str = ""
    resolution: int = 64  # frames are R x R RGB


@dataclass
class Collected:
    """Episodes from an env's exploration policy: states float32 [n, T, S], actions float32
    [n, T, A_env] (action taken at frame t), frames uint8 [n, T, R, R, 3]."""

    states: np.ndarray
    actions: np.ndarray
    frames: np.ndarray


class Env:
    """Base class of the batched env protocol; subclasses fill in the methods that raise.

    Subclasses set `GOAL_SETS` (goal-set names they can draw with `goal_pairs`), `state_dim`,
    `action_low` / `action_high` (float32 [A_env]) and implement the abstract methods. The base
    class keeps the goal states of the last `reset` and derives `success()` and `distance()`
    from `goal_distance` and `success_radius` (override `is_success` for other criteria).
    """

    GOAL_SETS: ClassVar[tuple[str, ...]] = ()
    # Named groups of probe features whose decoded error the readiness table reports apart
    # (Push-T: the block's position and angle), {group: feature names}.
    PROBE_GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {}
    state_dim: int
    action_low: np.ndarray
    action_high: np.ndarray

    def __init__(self, cfg: EnvConfig):
        self.cfg = cfg
        self._goals: np.ndarray | None = None

    # -- what the readiness probe reads ----------------------------------------------------
    @classmethod
    def probe_features(cls, states: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """States [N, S] -> (the quantities a linear probe should read off the latent [N, F],
        their names). The state itself by default; an env whose state holds an angle gives its
        sine and cosine, which a linear map can reach across the wrap. A class method: training
        calls it on recorded states without building the env."""
        return np.asarray(states), [f"s{i}" for i in range(np.shape(states)[-1])]

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    # -- the batched episode loop --------------------------------------------------------
    def reset(self, start_states: np.ndarray, goal_states: np.ndarray) -> np.ndarray:
        """Put N episodes in `start_states` [N, S] with goals `goal_states` [N, S] (NaN rows
        where the goal is known only as an image) -> frames uint8 [N, R, R, 3]."""
        start_states = self.check_states(start_states, "start_states")
        goal_states = np.asarray(goal_states, dtype=np.float32)
        if goal_states.shape != start_states.shape:
            raise ValueError(f"{self.name}: goal_states has shape {goal_states.shape}, "
                             f"start_states {start_states.shape}")
        self._goals = goal_states.copy()
        return self._reset(start_states)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Env actions [N, A_env] (clipped to the box); episodes with active False stay put
        -> frames uint8 [N, R, R, 3]."""
        if self._goals is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        n = len(self._goals)
        if actions.shape != (n, self.action_dim):
            raise ValueError(f"{self.name}: actions must have shape {(n, self.action_dim)}, got {actions.shape}")
        active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        return self._step(np.clip(actions, self.action_low, self.action_high), active)

    def states(self) -> np.ndarray:
        """The current true states [N, S]."""
        raise NotImplementedError

    def success(self) -> np.ndarray:
        """bool [N]: the env's own success criterion on the current states (False for NaN goals)."""
        return self.is_success(self.states(), self._goals)

    def distance(self) -> np.ndarray:
        """[N]: the env's goal distance of the current states (NaN for unknown goals)."""
        return self.goal_distance(self.states(), self._goals)

    # -- stateless pieces ----------------------------------------------------------------
    def goal_distance(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """[..., S], [..., S] -> [...]: the distance the success criterion thresholds."""
        raise NotImplementedError

    def is_success(self, states: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """[..., S], [..., S] -> bool [...] (NaN compares False)."""
        return self.goal_distance(states, goals) < self.success_radius

    @property
    def success_radius(self) -> float:
        return float(self.cfg.success_radius)

    def render_states(self, states: np.ndarray) -> np.ndarray:
        """[N, S] -> uint8 [N, R, R, 3], goal marker hidden (goal images)."""
        raise NotImplementedError

    def sample_states(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n valid states [n, S] (random starts and goals)."""
        raise NotImplementedError

    def check_states(self, states: np.ndarray, what: str = "states") -> np.ndarray:
        """float32 [N, S], or ValueError naming `what` and the shape it needs."""
        states = np.asarray(states, dtype=np.float32)
        if states.ndim != 2 or states.shape[1] != self.state_dim:
            raise ValueError(f"{self.name}: {what} must have shape [N, {self.state_dim}], got {states.shape}")
        return states

    # -- goal sets, collection, oracle ---------------------------------------------------
    def goal_pairs(self, kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n (start, goal) state pairs of the goal set `kind`, one of GOAL_SETS (or "random":
        both sampled, resampled while a pair is already solved)."""
        if kind != "random" and kind not in self.GOAL_SETS:
            raise ValueError(f"env {self.name!r} has no goal set {kind!r}; its goal sets: "
                             f"{', '.join(('random',) + self.GOAL_SETS)}")
        starts, goals = self.sample_states(rng, n), self.sample_states(rng, n)
        solved = self.is_success(starts, goals)
        while solved.any():
            goals[solved] = self.sample_states(rng, int(solved.sum()))
            solved = self.is_success(starts, goals)
        return starts, goals

    def collect(self, rng: np.random.Generator, n: int, steps: int) -> Collected:
        """n episodes of `steps` frames from the env's exploration policy, from valid starts."""
        raise NotImplementedError(f"env {self.name!r} has no exploration policy")

    def coverage(self, states: np.ndarray, actions: np.ndarray) -> dict[str, float]:
        """Coverage statistics of a whole collected data set (states [n, T, S], actions
        [n, T, A_env], all episodes at once: they are small, frames are not), e.g. the
        fraction of episodes that cross a door or of maze cells visited."""
        return {}

    def oracle(self, frameskip: int = 1, **options):
        """The env's own dynamics behind the planner's WorldModel protocol, when it has one."""
        raise NotImplementedError(f"env {self.name!r} offers no oracle world model; use a trained checkpoint")

    def state_from_frame(self, frame: np.ndarray) -> np.ndarray:
        """The true state read off an image [R, R, 3] -> [S]; NaN when the env cannot."""
        return np.full(self.state_dim, np.nan, dtype=np.float32)

    def close(self) -> None:
        """Release renderers and simulators."""

    # -- for subclasses ------------------------------------------------------------------
    def _reset(self, start_states: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class EnvPerEpisode(Env):
    """An Env stepping one simulator env per episode (stable-worldmodel's TwoRoom and PushT).

    Subclasses build one env (`_make_env`), read states off a list of them (`_observe`), put
    the episodes in place (`_reset`) and render (`_render`); the pool of envs grows on demand.
    """

    _envs: list
    _n: int = 0

    def _make_env(self):
        raise NotImplementedError

    @staticmethod
    def _observe(envs: list) -> np.ndarray:
        raise NotImplementedError

    def _pool(self, envs: list, n: int) -> list:
        """The first n envs of `envs`, making more as needed."""
        envs.extend(self._make_env() for _ in range(n - len(envs)))
        return envs[:n]

    def _targets(self, start_states: np.ndarray) -> np.ndarray:
        """The goal of each episode where one is known, else its start: the env needs a target."""
        known = np.isfinite(self._goals).all(axis=1, keepdims=True)
        return np.where(known, self._goals, start_states)

    def _step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        for i in np.flatnonzero(active):
            self._envs[i].step(actions[i])
        return self._render(self.states())

    def states(self) -> np.ndarray:
        if self._goals is None:
            raise RuntimeError(f"{self.name}: call reset() before states()")
        return self._observe(self._envs[: self._n])
