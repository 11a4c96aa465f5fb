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
    """

    frameskip: int
    action_low: torch.Tensor
    action_high: torch.Tensor

    @property
    def action_dim(self) -> int: ...

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor: ...

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


# ----------------------------------------------------------------------------- model calls
# bf16 autocast around world-model calls on GPU; planner variables stay fp32 (DESIGN.md,
# precision). On CPU the model runs in fp32.


def model_step(wm: WorldModel, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`wm.step` under bf16 autocast on CUDA, output fp32 (fp64 for fp64 z): z [..., *S], a [..., A] -> [..., *S]."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=z.is_cuda):
        return wm.step(z, a).to(torch.promote_types(z.dtype, torch.float32))


def model_rollout(wm: WorldModel, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """`wm.rollout` under bf16 autocast on CUDA, output fp32 (fp64 for fp64 z0): z0 [B, *S], actions [B, H, A]
    -> [B, H, *S]."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=z0.is_cuda):
        return wm.rollout(z0, actions).to(torch.promote_types(z0.dtype, torch.float32))


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


class Planner(ABC):
    """Plan B episodes at once toward encoded goals.

    `plan(wm, z0 [B, *S], goal [B, *S], horizon, init [B, H, A] | None, generator) -> PlanResult`.
    Subclasses implement `search`; this class checks shapes, clamps the actions to the box,
    scores them with the shared objective, counts transitions and times the call.
    No Python loop over episodes and no host sync inside any iteration loop.
    """

    def __init__(self, config: PlannerConfig):
        self.config = config
        self.objective = Objective(config.metric, config.reduce)

    def plan(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, horizon: int,
             init: torch.Tensor | None = None, generator: torch.Generator | None = None) -> PlanResult:
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
        low = wm.action_low.to(z0.device, dtype)
        high = wm.action_high.to(z0.device, dtype)
        init = None if init is None else torch.clamp(init.to(z0.device, dtype), low, high)

        found = self.search(wm, z0, goal, horizon, init, generator, low, high)
        actions = torch.clamp(found.actions.detach(), low, high)
        with torch.no_grad():
            cost = self.objective(model_rollout(wm, z0, actions), goal)
        if z0.is_cuda:
            torch.cuda.synchronize(z0.device)
        return PlanResult(actions=actions, cost=cost, cost_trace=found.cost_trace.detach(),
                          transitions=found.transitions + batch * horizon,
                          seconds=time.perf_counter() - start, states=found.states,
                          diagnostics=found.diagnostics)

    @abstractmethod
    def search(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, horizon: int,
               init: torch.Tensor | None, generator: torch.Generator | None,
               low: torch.Tensor, high: torch.Tensor) -> Search:
        """z0, goal fp32 [B, *S]; init [B, H, A] inside [low, high] or None -> Search."""
