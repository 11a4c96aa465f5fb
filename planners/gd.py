"""Gradient shooting: gradient steps on the actions, backpropagating the objective through
`wm.rollout`. One trajectory per episode; the final actions are returned.

As the field runs it: DINO-WM's GDPlanner takes 1000 plain SGD steps at lr 1 from random
(standard normal) initial actions, adds Gaussian action noise of std 0.003 after each step,
and never clips; its cost is the final step's distance to the goal. stable-worldmodel's Adam
solver runs AdamW at lr 0.1 for 30 steps.

Ours: Adam at lr 0.1 for 300 iterations from zeros (clamped into the box) or the warm start,
no action noise (`action_noise`), the actions clamped to the box after each step
(`clip_actions=True`; False leaves them free during the optimisation, as DINO-WM does, and
`Planner.plan` clamps the final ones); the cost summed over steps (`reduce=last` for the
field's).

`gd_descend` is also GRASP's GD sync (there with a fresh Adam at lr 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import Planner, PlannerConfig, Search, WorldModel, model_rollout, randn, start_actions
from planners.objective import Objective


@dataclass
class GDConfig(PlannerConfig):
    iterations: int = 300
    lr: float = 0.1  # Adam, in model action units
    action_noise: float = 0.0  # std of Gaussian noise added to the actions after each step (DINO-WM: 0.003)
    clip_actions: bool = True  # ours: clamp to the action box after each step (DINO-WM does not)


def gd_descend(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
               actions: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None, *, steps: int,
               lr: float, noise: float = 0.0, generator: torch.Generator | None = None,
               past_z: torch.Tensor | None = None,
               past_a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` Adam steps on actions [B, H, A] against `objective(rollout(z0, actions), goal)`,
    the rollout from the context past_z [B, c, *S], past_a [B, c, A] when given (fixed: only
    the actions are optimised).

    Actions are clamped to [low, high] after each step, or left unclipped when the box is None
    (DINO-WM's GD; GRASP's sync as its authors run it).
    -> (actions [B, H, A], cost before each step [steps, B]).
    """
    actions = actions.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([actions], lr=lr)
    trace = []
    with torch.enable_grad():
        for _ in range(steps):
            cost = objective(model_rollout(wm, z0, actions, past_z, past_a), goal)  # [B]
            optimiser.zero_grad(set_to_none=True)
            cost.sum().backward()  # episodes are independent: each gets its own gradient
            optimiser.step()
            with torch.no_grad():
                if noise > 0:
                    actions.add_(noise * randn(actions.shape, generator, actions.device))
                if low is not None:
                    actions.clamp_(low, high)
            trace.append(cost.detach())
    return actions.detach(), torch.stack(trace)


class GDPlanner(Planner):
    """Cost trace: the objective of the actions before each Adam step."""

    config: GDConfig

    def search(self, wm, z0, goal, horizon, init, generator, low, high, past_z=None, past_a=None) -> Search:
        cfg = self.config
        actions = start_actions(init, z0.shape[0], horizon, low, high)
        box = (low, high) if cfg.clip_actions else (None, None)
        actions, trace = gd_descend(wm, self.objective, z0, goal, actions, *box, steps=cfg.iterations,
                                    lr=cfg.lr, noise=cfg.action_noise, generator=generator, past_z=past_z,
                                    past_a=past_a)
        return Search(actions=actions, cost_trace=trace, transitions=cfg.iterations * z0.shape[0] * horizon)
