"""Gradient shooting: Adam on the actions, backpropagating the objective through `wm.rollout`.

DINO-WM and jepa-wms run a few hundred Adam steps with a small Gaussian action noise after
each, then clamp to the action box. One trajectory per episode; the final actions are
returned. `gd_descend` is also GRASP's GD sync (there with a fresh Adam at lr 0.05).
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
    action_noise: float = 0.0  # std of Gaussian noise added to the actions after each step


def gd_descend(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
               actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor, *, steps: int, lr: float,
               noise: float = 0.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` Adam steps on actions [B, H, A] against `objective(rollout(z0, actions), goal)`.

    -> (actions [B, H, A] inside the box, cost before each step [steps, B]).
    """
    actions = actions.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([actions], lr=lr)
    trace = []
    with torch.enable_grad():
        for _ in range(steps):
            cost = objective(model_rollout(wm, z0, actions), goal)  # [B]
            optimiser.zero_grad(set_to_none=True)
            cost.sum().backward()  # episodes are independent: each gets its own gradient
            optimiser.step()
            with torch.no_grad():
                if noise > 0:
                    actions.add_(noise * randn(actions.shape, generator, actions.device))
                actions.clamp_(low, high)
            trace.append(cost.detach())
    return actions.detach(), torch.stack(trace)


class GDPlanner(Planner):
    """Cost trace: the objective of the actions before each Adam step."""

    config: GDConfig

    def search(self, wm, z0, goal, horizon, init, generator, low, high) -> Search:
        cfg = self.config
        actions = start_actions(init, z0.shape[0], horizon, low, high)
        actions, trace = gd_descend(wm, self.objective, z0, goal, actions, low, high, steps=cfg.iterations,
                                    lr=cfg.lr, noise=cfg.action_noise, generator=generator)
        return Search(actions=actions, cost_trace=trace, transitions=cfg.iterations * z0.shape[0] * horizon)
