"""What a planner may call on a world model, declared here so planners import nothing else,
and the one planner interface and result type every planner shares.

`world_models.WorldModel` and the two_rooms oracle meet the protocol by shape alone.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from planners.objective import Objective


@runtime_checkable
class WorldModel(Protocol):
    """Latent dynamics in a normalised action space.

    - `encode(frames uint8 [B, T, 3, H, W]) -> z [B, T, *S]`
    - `step(z [..., *S], a [..., A]) -> z_next [..., *S]`, any leading dims
    - `rollout(z0 [B, *S], actions [B, H, A]) -> z [B, H, *S]` (z_1..z_H)
    - `action_low`, `action_high` [A]: the env's action box in the model's action space

    A model whose predictor reads k > 1 frames meets `HistoryWorldModel` too; a Markov model
    (the two_rooms oracle) need not: `model_history` reads its k as 1.
    """

    frameskip: int
    action_low: torch.Tensor
    action_high: torch.Tensor

    @property
    def action_dim(self) -> int: ...

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor: ...

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class HistoryWorldModel(WorldModel, Protocol):
    """A world model with history k: z_{t+1} = F(z_{t-k+1..t}, a_{t-k+1..t}).

    - `history`: k (1: Markov)
    - `step(z, a, past_z [..., c, *S], past_a [..., c, A])`, `rollout(z0, actions, past_z [B, c, *S],
      past_a [B, c, A])`: the context is the c frames before z / z0, oldest first, and the action
      taken at each; the last k - 1 are used, none is a one-frame context
    - `step_sequence(z [..., T, *S], a [..., T, A]) -> [..., T, *S]`: every transition of a given
      trajectory, output t = F(z_{t-k+1..t}, a_{t-k+1..t}) (GRASP's lifted step)

    Planners pass a context only to a model with k > 1, so with k = 1 every call is the Markov one.
    A separate protocol, not more members of `WorldModel`: the Markov oracle meets that one as it is.
    """

    @property
    def history(self) -> int: ...

    def step(self, z: torch.Tensor, a: torch.Tensor, past_z: torch.Tensor | None = None,
             past_a: torch.Tensor | None = None) -> torch.Tensor: ...

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, past_z: torch.Tensor | None = None,
                past_a: torch.Tensor | None = None) -> torch.Tensor: ...

    def step_sequence(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor: ...


def model_history(wm: WorldModel) -> int:
    """k, the frames of context `wm` reads: its `history`, 1 for a model without one (Markov)."""
    return int(getattr(wm, "history", 1))


# ----------------------------------------------------------------------------- model calls
# bf16 autocast around world-model calls on GPU; planner variables stay fp32 (DESIGN.md,
# precision). On CPU the model runs in fp32.


def model_step(wm: WorldModel, z: torch.Tensor, a: torch.Tensor, past_z: torch.Tensor | None = None,
               past_a: torch.Tensor | None = None) -> torch.Tensor:
    """`wm.step` under bf16 autocast on CUDA, output fp32 (fp64 for fp64 z): z [..., *S], a [..., A] -> [..., *S];
    with a context past_z [..., c, *S], past_a [..., c, A] for a history model (None, or k = 1: the Markov call)."""
    context = () if past_z is None or model_history(wm) == 1 else (past_z, past_a)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=z.is_cuda):
        return wm.step(z, a, *context).to(torch.promote_types(z.dtype, torch.float32))


def model_rollout(wm: WorldModel, z0: torch.Tensor, actions: torch.Tensor, past_z: torch.Tensor | None = None,
                  past_a: torch.Tensor | None = None) -> torch.Tensor:
    """`wm.rollout` under bf16 autocast on CUDA, output fp32 (fp64 for fp64 z0): z0 [B, *S], actions [B, H, A]
    -> [B, H, *S]; with a context past_z [B, c, *S], past_a [B, c, A] (None, or k = 1: the Markov call)."""
    context = () if past_z is None or model_history(wm) == 1 else (past_z, past_a)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=z0.is_cuda):
        return wm.rollout(z0, actions, *context).to(torch.promote_types(z0.dtype, torch.float32))


def model_step_sequence(wm: HistoryWorldModel, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`wm.step_sequence` under bf16 autocast on CUDA, output fp32 (fp64 for fp64 z): z [..., T, *S],
    a [..., T, A] -> [..., T, *S], every transition with its own k-frame window."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=z.is_cuda):
        return wm.step_sequence(z, a).to(torch.promote_types(z.dtype, torch.float32))


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Standard normal noise on `device`, drawn from `generator` (on whatever device it lives).

    `out`, a preallocated buffer of `shape` on `device`, is filled in place when the generator
    lives there too (an inner loop then allocates nothing).
    """
    if generator is None:
        return torch.randn(shape, device=device, out=out)
    if out is not None and out.device == generator.device:
        return torch.randn(shape, generator=generator, out=out)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def start_actions(init: torch.Tensor | None, batch: int, horizon: int, low: torch.Tensor,
                  high: torch.Tensor) -> torch.Tensor:
    """The warm start `init` [B, H, A], or zeros clamped into the box (a normalised zero may lie outside it)."""
    if init is not None:
        return init.clone()
    zeros = torch.zeros(batch, horizon, low.numel(), device=low.device, dtype=low.dtype)
    return torch.clamp(zeros, low, high)


# ----------------------------------------------------------------------------- result and config


@dataclass
class PlanResult:
    """What `Planner.plan` returns for B episodes planned at once.

    - `actions [B, H, A]`: model-space actions inside the world model's action box
    - `cost [B]`: the shared objective of `actions` rolled out through the model
    - `cost_trace [iters, B]`: per-iteration cost (each planner documents which cost)
    - `transitions`: (z, a) pairs passed through `wm.step`, backward passes not counted
    - `seconds`: wall time of the call, CUDA synchronised once at the end
    - `states [B, H - 1, *S] | None`: GRASP's virtual states s_1..s_{H-1} at the end
    - `diagnostics`: planner-specific traces, tensors with B on the episode axis (GRASP's:
      `GRASPPlanner.search`); reports summarise them (jepa_plan/evaluation/report.py)
    """

    actions: torch.Tensor
    cost: torch.Tensor
    cost_trace: torch.Tensor
    transitions: int
    seconds: float
    states: torch.Tensor | None = field(default=None, repr=False)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


@dataclass
class PlannerConfig:
    """Fields every planner shares: the objective (planners/objective.py)."""

    metric: str = "l2"  # l2 | l1 | cosine, per predicted step
    reduce: str = "all"  # all (summed over steps) | last; summed lifted CEM 54% -> 96% (DESIGN.md)

    def __post_init__(self):
        Objective(self.metric, self.reduce)  # raises on an unknown metric or reduction
        if getattr(self, "iterations", 1) < 1:
            raise ValueError(f"{type(self).__name__}: iterations={self.iterations} must be at least 1")


def check_elites(config: PlannerConfig, elites: str = "elites", samples: str = "samples") -> None:
    """Sampling planners keep the top `elites` of `samples`: need 1 <= elites <= samples."""
    e, k = getattr(config, elites), getattr(config, samples)
    if not 1 <= e <= k:
        raise ValueError(f"{type(config).__name__}: need 1 <= {elites} <= {samples}, got {elites}={e}, {samples}={k}")


def check_choice(config: PlannerConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{type(config).__name__}.{name}={value!r}; valid: {list(choices)}")


# ----------------------------------------------------------------------------- planner


@dataclass
class Search:
    """What a planner's inner search hands back to `Planner.plan`."""

    actions: torch.Tensor  # [B, H, A]
    cost_trace: torch.Tensor  # [iters, B]
    transitions: int  # counted analytically, final evaluation excluded
    states: torch.Tensor | None = None
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


def planning_context(wm: WorldModel, z0: torch.Tensor, past_z: torch.Tensor | None,
                     past_a: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check a context and keep what the model reads: z0 [B, *S] (on its planning device and
    dtype), past_z [B, c, *S] and past_a [B, c, A] (the c observed frames before z0, oldest
    first, and the model action executed at each), or both None.

    -> the last k - 1 frames of each in z0's dtype, or (None, None) where there is nothing to
    read: no context, c = 0 (an episode's first plan), or a Markov model (k = 1), whose calls
    then stay exactly the context-free ones.
    """
    if (past_z is None) != (past_a is None):
        raise ValueError("past_z and past_a go together: the latents of earlier frames and the actions taken there")
    if past_z is None:
        return None, None
    if (past_z.dim() != z0.dim() + 1 or past_z.shape[:1] + past_z.shape[2:] != z0.shape
            or past_a.shape != (*past_z.shape[:2], wm.action_dim)):
        raise ValueError(f"context past_z {tuple(past_z.shape)} / past_a {tuple(past_a.shape)} must be "
                         f"[B, c, *S] / [B, c, A] with [B, *S] = {list(z0.shape)}, A = {wm.action_dim}")
    keep = min(model_history(wm) - 1, past_z.shape[1])
    if keep == 0:
        return None, None
    return past_z[:, -keep:].to(z0.device, z0.dtype), past_a[:, -keep:].to(z0.device, z0.dtype)


class Planner(ABC):
    """Plan B episodes at once toward encoded goals.

    `plan(wm, z0 [B, *S], goal [B, *S], horizon, init [B, H, A] | None, generator,
    past_z [B, c, *S] | None, past_a [B, c, A] | None) -> PlanResult`.
    Subclasses implement `search`; this class checks shapes, clamps the actions to the box,
    scores them with the shared objective, counts transitions and times the call.
    No Python loop over episodes and no host sync inside any iteration loop.

    Context: a model with history k > 1 predicts from its last k frames, so the plan from z0
    depends on the frames observed before it. `past_z`, `past_a` are those frames' latents
    (oldest first) and the model actions executed at each; every model call of the search and
    the final cost reads the last k - 1 of them. Without a context, or with k = 1, the calls
    are the Markov ones (`planning_context`).
    """

    def __init__(self, config: PlannerConfig):
        self.config = config
        self.objective = Objective(config.metric, config.reduce)

    def plan(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, horizon: int,
             init: torch.Tensor | None = None, generator: torch.Generator | None = None,
             past_z: torch.Tensor | None = None, past_a: torch.Tensor | None = None) -> PlanResult:
        start = time.perf_counter()
        batch = z0.shape[0]
        if goal.shape != z0.shape:
            raise ValueError(f"goal {tuple(goal.shape)} must have the shape of z0 {tuple(z0.shape)}")
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be at least 1")
        if init is not None and init.shape != (batch, horizon, wm.action_dim):
            raise ValueError(f"init must be [B, H, A] = {[batch, horizon, wm.action_dim]}, got {list(init.shape)}")
        dtype = torch.float64 if z0.dtype == torch.float64 else torch.float32  # fp64 in, fp64 planning (tests)
        z0, goal = z0.to(dtype), goal.to(dtype)
        past_z, past_a = planning_context(wm, z0, past_z, past_a)
        low = wm.action_low.to(z0.device, dtype)
        high = wm.action_high.to(z0.device, dtype)
        init = None if init is None else torch.clamp(init.to(z0.device, dtype), low, high)

        found = self.search(wm, z0, goal, horizon, init, generator, low, high, past_z=past_z, past_a=past_a)
        actions = torch.clamp(found.actions.detach(), low, high)
        with torch.no_grad():
            cost = self.objective(model_rollout(wm, z0, actions, past_z, past_a), goal)
        if z0.is_cuda:
            torch.cuda.synchronize(z0.device)
        return PlanResult(actions=actions, cost=cost, cost_trace=found.cost_trace.detach(),
                          transitions=found.transitions + batch * horizon,
                          seconds=time.perf_counter() - start, states=found.states,
                          diagnostics=found.diagnostics)

    @abstractmethod
    def search(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, horizon: int,
               init: torch.Tensor | None, generator: torch.Generator | None,
               low: torch.Tensor, high: torch.Tensor, past_z: torch.Tensor | None = None,
               past_a: torch.Tensor | None = None) -> Search:
        """z0, goal fp32 [B, *S]; init [B, H, A] inside [low, high] or None; the context past_z
        [B, c, *S], past_a [B, c, A] as `planning_context` returns it (c <= k - 1), or None -> Search."""
