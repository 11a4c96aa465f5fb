"""Cross-entropy method over action sequences (DINO-WM's planner).

A Gaussian per step and action dimension; each iteration samples K sequences, rolls them all
out in one batched rollout, and refits mean and std to the top E. The returned plan is the
final mean.

As the field runs it (DINO-WM's CEMPlanner; stable-worldmodel's CEMSolver): 300 samples,
30 iterations, top 30; initial std 1 in normalised action units; **sample 0 of every
iteration is the current mean**, so a warm start is always scored as it stands; samples are
not clipped; the cost is the final step's distance to the goal.

Ours, with the switch for each departure:
- `samples`, `iterations`, `elites`: the field's 300 / 30 / 30 (configs/plan.yaml sizes them
  down for CPU runs).
- `std_init` is in half-widths of the action box, 0.5 by default. For a model whose actions
  are z-scored over uniform random actions the half-width is sqrt(3) normalised units, so
  DINO-WM's std 1 is 0.58 half-widths.
- `keep_mean=True`: sample 0 is the mean, as in the field; False draws all K from the Gaussian.
  Either way K sequences are scored per iteration.
- `clip_samples=True` is our departure: samples are clamped to the action box, since the env
  clips executed actions anyway and a learned model never saw actions outside the box.
  False samples unclipped, as the field does (the returned plan is clamped by `Planner.plan`).
- `reduce="all"` (PlannerConfig) sums the cost over steps; `reduce=last` is the field's
  final-step cost.
- The elites' std is the population std; DINO-WM's `torch.std` is the sample std, larger by
  sqrt(E / (E - 1)) (1.7% at E = 30), and undefined at E = 1.

`sample_actions`, `score_samples` and `elite_set` are also used by MPPI, and `cem_search`,
`score_samples` and `elite_set` by GRASP's CEM sync.
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
    keep_mean: bool = True  # sample 0 of every iteration is the current mean (the field's)
    clip_samples: bool = True  # ours: clamp samples to the action box (the field does not)

    def __post_init__(self):
        super().__post_init__()
        check_elites(self)


def sample_actions(mean: torch.Tensor, std: torch.Tensor, samples: int, low: torch.Tensor, high: torch.Tensor,
                   generator: torch.Generator | None, *, keep_mean: bool = False,
                   clip: bool = True) -> torch.Tensor:
    """mean, std [B, H, A] -> K sequences [B, K, H, A]: Gaussian draws around the mean, or with
    `keep_mean` the mean itself as sample 0 and K - 1 draws; clamped to [low, high] if `clip`."""
    batch, horizon, dim = mean.shape
    noise = randn((batch, samples - int(keep_mean), horizon, dim), generator, mean.device)
    actions = mean.unsqueeze(1) + std.unsqueeze(1) * noise
    if keep_mean:
        actions = torch.cat([mean.unsqueeze(1), actions], dim=1)
    return torch.clamp(actions, low, high) if clip else actions


def score_samples(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
                  actions: torch.Tensor, past_z: torch.Tensor | None = None,
                  past_a: torch.Tensor | None = None) -> torch.Tensor:
    """z0, goal [B, *S], actions [B, K, H, A] -> cost [B, K], all B * K rollouts in one batch;
    the context past_z [B, c, *S], past_a [B, c, A] (or None) is shared by an episode's samples."""
    batch, samples = actions.shape[:2]

    def per_sample(x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [B * K, ...]
        return x.unsqueeze(1).expand(batch, samples, *x.shape[1:]).flatten(0, 1)

    z0, goal = per_sample(z0), per_sample(goal)
    if past_z is not None:
        past_z, past_a = per_sample(past_z), per_sample(past_a)
    z = model_rollout(wm, z0, actions.flatten(0, 1), past_z, past_a)
    return objective(z, goal).view(batch, samples)


def elite_set(actions: torch.Tensor, cost: torch.Tensor, elites: int) -> tuple[torch.Tensor, torch.Tensor]:
    """actions [B, K, H, A], cost [B, K] -> the E cheapest, best first: ([B, E, H, A], [B, E])."""
    elite_cost, idx = cost.topk(elites, dim=1, largest=False)
    index = idx[:, :, None, None].expand(-1, -1, *actions.shape[2:])
    return actions.gather(1, index), elite_cost


@torch.no_grad()
def cem_search(wm: WorldModel, objective: Objective, z0: torch.Tensor, goal: torch.Tensor,
               mean: torch.Tensor, std: torch.Tensor, low: torch.Tensor, high: torch.Tensor, *,
               samples: int, elites: int, iterations: int, generator: torch.Generator | None,
               keep_mean: bool = True, clip: bool = True, past_z: torch.Tensor | None = None,
               past_a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Refit mean, std [B, H, A] to the elites `iterations` times; K = `samples` scored per
    iteration, sample 0 the current mean if `keep_mean`, all clamped to the box if `clip`;
    rollouts from the context past_z [B, c, *S], past_a [B, c, A] when given.

    -> (final mean [B, H, A], best sampled cost per iteration [iters, B]).
    """
    trace = []
    for _ in range(iterations):
        # Sample and score
        actions = sample_actions(mean, std, samples, low, high, generator, keep_mean=keep_mean, clip=clip)
        cost = score_samples(wm, objective, z0, goal, actions, past_z, past_a)
        # Refit to the elites
        elite, elite_cost = elite_set(actions, cost, elites)
        mean, std = elite.mean(1), elite.std(1, unbiased=False)
        trace.append(elite_cost[:, 0])
    return mean, torch.stack(trace)


class CEMPlanner(Planner):
    """Cost trace: the cheapest sample of each iteration."""

    config: CEMConfig

    def search(self, wm, z0, goal, horizon, init, generator, low, high, past_z=None, past_a=None) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        mean = start_actions(init, batch, horizon, low, high)
        std = (cfg.std_init * (high - low) / 2).expand_as(mean)
        mean, trace = cem_search(wm, self.objective, z0, goal, mean, std, low, high, samples=cfg.samples,
                                 elites=cfg.elites, iterations=cfg.iterations, generator=generator,
                                 keep_mean=cfg.keep_mean, clip=cfg.clip_samples, past_z=past_z, past_a=past_a)
        return Search(actions=mean, cost_trace=trace, transitions=cfg.iterations * cfg.samples * batch * horizon)
