"""MPPI as in TD-MPC2's planner: CEM-like sampling, but the elites are averaged with
softmax weights of their cost instead of equally.

As TD-MPC2 runs it: 512 samples, 64 elites, 6 iterations; weights
`exp(temperature * (value - max value))` over the elites with temperature 0.5 on returns of
order 1-100; std started at 2 and clamped to [0.05, 2] on the box [-1, 1]; samples clamped to
the box; 24 of the samples come from its policy prior; it returns one elite drawn by weight.

Ours, with the switch for each departure:
- `std_init`, `std_min`, `std_max` are TD-MPC2's, in half-widths of the action box.
- `temperature_scale="elite_spread"` divides the elite costs by their spread before the
  softmax (`mppi_weights`): a temperature on raw latent costs means something different for
  every model and objective, so TD-MPC2's 0.5 does not transfer. `"none"` is TD-MPC2's
  `softmax(-temperature * cost)` (value = -cost). Either way a larger temperature is greedier.
- `keep_mean=True` scores the current mean as sample 0, as CEM does (planners/cem.py); TD-MPC2
  has no such sample, its policy-prior trajectories (which have no counterpart here) play the
  part. False draws all K from the Gaussian.
- The weighted mean is returned instead of one elite drawn by weight, so a plan depends on
  the generator only through the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import Planner, PlannerConfig, Search, check_choice, check_elites, start_actions
from planners.cem import elite_set, sample_actions, score_samples

TEMPERATURE_SCALES = ("elite_spread", "none")


@dataclass
class MPPIConfig(PlannerConfig):
    samples: int = 512
    iterations: int = 6
    elites: int = 64
    # With elite_spread the weights of the best and worst elite differ by exp(temperature);
    # 5 was chosen by a sweep on two_rooms oracle door goals (benchmarks/RESULTS.md).
    temperature: float = 5.0
    temperature_scale: str = "elite_spread"  # elite_spread | none (TD-MPC2's raw costs)
    std_init: float = 2.0  # in half-widths of the action box, as are the two below
    std_min: float = 0.05
    std_max: float = 2.0
    keep_mean: bool = True  # sample 0 of every iteration is the current mean

    def __post_init__(self):
        super().__post_init__()
        check_elites(self)
        check_choice(self, "temperature_scale", TEMPERATURE_SCALES)


def mppi_weights(elite_cost: torch.Tensor, temperature: float, scale: str) -> torch.Tensor:
    """elite_cost [B, E] -> softmax weights [B, E] over the elites, cheapest heaviest.

    `elite_spread`: softmax(-temperature * (c - c_min) / (c_max - c_min)), the same for costs
    multiplied by any positive factor; equal costs give equal weights. `none`: softmax(-temperature * c).
    """
    if scale == "elite_spread":
        low, high = elite_cost.min(1, keepdim=True).values, elite_cost.max(1, keepdim=True).values
        spread = (high - low).clamp_min(torch.finfo(elite_cost.dtype).tiny)  # 0 / tiny = 0: equal weights
        elite_cost = (elite_cost - low) / spread
    return torch.softmax(-temperature * elite_cost, dim=1)


def mppi_update(elite: torch.Tensor, elite_cost: torch.Tensor, temperature: float, scale: str,
                std_min: torch.Tensor, std_max: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TD-MPC2's parameter update: elite [B, E, H, A], elite_cost [B, E] -> (mean, std) [B, H, A].

    Weighted mean and weighted std of the elites, the std clamped to [std_min, std_max]
    (already in action units, broadcastable to [B, H, A]).
    """
    weight = mppi_weights(elite_cost, temperature, scale)[:, :, None, None]  # [B, E, 1, 1]
    mean = (weight * elite).sum(1)
    std = (weight * (elite - mean.unsqueeze(1)).pow(2)).sum(1).sqrt()
    return mean, torch.minimum(torch.maximum(std, std_min), std_max)


class MPPIPlanner(Planner):
    """Cost trace: the cheapest sample of each iteration."""

    config: MPPIConfig

    @torch.no_grad()
    def search(self, wm, z0, goal, horizon, init, generator, low, high, past_z=None, past_a=None) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        half_width = (high - low) / 2
        mean = start_actions(init, batch, horizon, low, high)
        std = (cfg.std_init * half_width).expand_as(mean)
        trace = []
        for _ in range(cfg.iterations):
            # Sample actions
            actions = sample_actions(mean, std, cfg.samples, low, high, generator, keep_mean=cfg.keep_mean)
            cost = score_samples(wm, self.objective, z0, goal, actions, past_z, past_a)
            # Compute elite actions
            elite, elite_cost = elite_set(actions, cost, cfg.elites)  # best first
            # Update parameters
            mean, std = mppi_update(elite, elite_cost, cfg.temperature, cfg.temperature_scale,
                                    cfg.std_min * half_width, cfg.std_max * half_width)
            trace.append(elite_cost[:, 0])
        return Search(actions=mean, cost_trace=torch.stack(trace),
                      transitions=cfg.iterations * cfg.samples * batch * horizon)
