"""MPPI as in TD-MPC2's planner: CEM-like sampling, but the elites are averaged with
softmax weights of their cost instead of equally.

Defaults are TD-MPC2's: 512 samples, 64 elites, 6 iterations, temperature 0.5, std clamped to
[0.05, 2] and started at 2 (in half-widths of the action box, which is [-1, 1] in TD-MPC2).
TD-MPC2 writes the weights as `exp(temperature * (value - max value))` with value = -cost;
that is kept here, so a larger temperature is greedier. TD-MPC2 returns one elite drawn by
weight; this returns the weighted mean, so a plan depends on the generator only through the
samples. Its policy-prior trajectories have no counterpart here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import Planner, PlannerConfig, Search, check_elites, start_actions
from planners.cem import elite_set, sample_actions, score_samples


@dataclass
class MPPIConfig(PlannerConfig):
    samples: int = 512
    iterations: int = 6
    elites: int = 64
    temperature: float = 0.5
    std_init: float = 2.0  # in half-widths of the action box, as are the two below
    std_min: float = 0.05
    std_max: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        check_elites(self)


class MPPIPlanner(Planner):
    """Cost trace: the cheapest sample of each iteration."""

    config: MPPIConfig

    @torch.no_grad()
    def search(self, wm, z0, goal, horizon, init, generator, low, high) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        half_width = (high - low) / 2
        mean = start_actions(init, batch, horizon, low, high)
        std = (cfg.std_init * half_width).expand_as(mean)
        trace = []
        for _ in range(cfg.iterations):
            # Sample actions
            actions = sample_actions(mean, std, cfg.samples, low, high, generator)
            cost = score_samples(wm, self.objective, z0, goal, actions)
            # Compute elite actions
            elite, elite_cost = elite_set(actions, cost, cfg.elites)  # best first
            score = torch.softmax(-cfg.temperature * elite_cost, dim=1)[:, :, None, None]  # [B, E, 1, 1]
            # Update parameters
            mean = (score * elite).sum(1)
            std = (score * (elite - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
            std = torch.minimum(torch.maximum(std, cfg.std_min * half_width), cfg.std_max * half_width)
            trace.append(elite_cost[:, 0])
        return Search(actions=mean, cost_trace=torch.stack(trace),
                      transitions=cfg.iterations * cfg.samples * batch * horizon)
