"""Cross-entropy method over action sequences (DINO-WM's planner).

A Gaussian per step and action dimension; each iteration samples K sequences, rolls them all
out in one batched rollout, and refits mean and std to the top E. Defaults are DINO-WM's:
300 samples, 30 iterations, top 30. The returned plan is the final mean.

`sample_actions`, `score_samples` and `cem_search` are also used by MPPI and by GRASP's
CEM sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import (Planner, PlannerConfig, Search, WorldModel, check_elites, model_rollout, randn,
                           start_actions)
from planners.objective import Objective


@dataclass
class CEMConfig(PlannerConfig):
    samples: int = 300
    iterations: int = 30
    elites: int = 30
    std_init: float = 0.5  # in half-widths of the action box: (high - low) / 4

    def __post_init__(self):
        super().__post_init__()
        check_elites(self)


def sample_actions(mean: torch.Tensor, std: torch.Tensor, samples: int, low: torch.Tensor, high: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """mean, std [B, H, A] -> K Gaussian sequences clamped to the box, [B, K, H, A]."""
    batch, horizon, dim = mean.shape
    noise = randn((batch, samples, horizon, dim), generator, mean.device)
    return torch.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise, low, high)


def score_samples(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
                  actions: torch.Tensor) -> torch.Tensor:
    """z0, goal [B, *S], actions [B, K, H, A] -> cost [B, K], all B * K rollouts in one batch."""
    batch, samples = actions.shape[:2]
    z0 = z0.unsqueeze(1).expand(batch, samples, *z0.shape[1:]).flatten(0, 1)
    goal = goal.unsqueeze(1).expand(batch, samples, *goal.shape[1:]).flatten(0, 1)
    z = model_rollout(wm, z0, actions.flatten(0, 1))
    return objective(z, goal).view(batch, samples)


def elite_set(actions: torch.Tensor, cost: torch.Tensor, elites: int) -> tuple[torch.Tensor, torch.Tensor]:
    """actions [B, K, H, A], cost [B, K] -> the E cheapest, best first: ([B, E, H, A], [B, E])."""
    elite_cost, idx = cost.topk(elites, dim=1, largest=False)
    index = idx[:, :, None, None].expand(-1, -1, *actions.shape[2:])
    return actions.gather(1, index), elite_cost


@torch.no_grad()
def cem_search(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
               mean: torch.Tensor, std: torch.Tensor, low: torch.Tensor, high: torch.Tensor, *,
               samples: int, elites: int, iterations: int,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Refit mean, std [B, H, A] to the elites `iterations` times.

    -> (final mean [B, H, A], best sampled cost per iteration [iters, B]).
    """
    trace = []
    for _ in range(iterations):
        # Sample and score
        actions = sample_actions(mean, std, samples, low, high, generator)
        cost = score_samples(wm, objective, z0, goal, actions)
        # Refit to the elites
        elite, elite_cost = elite_set(actions, cost, elites)
        mean, std = elite.mean(1), elite.std(1, unbiased=False)
        trace.append(elite_cost[:, 0])
    return mean, torch.stack(trace)


class CEMPlanner(Planner):
    """Cost trace: the cheapest sample of each iteration."""

    config: CEMConfig

    def search(self, wm, z0, goal, horizon, init, generator, low, high) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        mean = start_actions(init, batch, horizon, low, high)
        std = (cfg.std_init * (high - low) / 2).expand_as(mean)
        mean, trace = cem_search(wm, self.objective, z0, goal, mean, std, low, high, samples=cfg.samples,
                                 elites=cfg.elites, iterations=cfg.iterations, generator=generator)
        return Search(actions=mean, cost_trace=trace, transitions=cfg.iterations * cfg.samples * batch * horizon)
