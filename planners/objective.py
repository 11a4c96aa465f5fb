"""The one planning objective: distance of predicted latents to the goal latent.

Per step, over the latent's elements `S`:
- `l2`: mean squared difference (the GRASP reference solver's "mean over latent dims");
- `l1`: mean absolute difference (V-JEPA 2-AC's energy);
- `cosine`: 1 - cosine similarity of the flattened latents.
Then `all` sums the steps and `last` keeps only the final one. Summing is the default: with a
last-step cost the first executed steps are unconstrained, and on two_rooms it lifted CEM
from 54% to 96% (DESIGN.md, calibration item 2).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

METRICS = ("l2", "l1", "cosine")
REDUCTIONS = ("all", "last")


class Objective:
    """`objective(z [N, H, *S], goal [N, *S]) -> cost [N]`."""

    def __init__(self, metric: str = "l2", reduce: str = "all"):
        if metric not in METRICS:
            raise ValueError(f"unknown objective metric {metric!r}; valid: {list(METRICS)}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown objective reduction {reduce!r}; valid: {list(REDUCTIONS)}")
        self.metric, self.reduce = metric, reduce

    def per_step(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """z [N, H, *S], goal [N, *S] -> distance per step [N, H]."""
        if z.shape[:1] + z.shape[2:] != goal.shape:
            raise ValueError(f"predicted latents {tuple(z.shape)} do not match goal {tuple(goal.shape)} "
                             "as [N, H, *S] / [N, *S]")
        z, goal = z.flatten(2), goal.flatten(1).unsqueeze(1)  # [N, H, D], [N, 1, D]
        if self.metric == "l2":
            return (z - goal).pow(2).mean(-1)
        if self.metric == "l1":
            return (z - goal).abs().mean(-1)
        return 1.0 - F.cosine_similarity(z, goal.expand_as(z), dim=-1)

    def __call__(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        per_step = self.per_step(z, goal)
        return per_step.sum(-1) if self.reduce == "all" else per_step[:, -1]

    def __repr__(self) -> str:
        return f"Objective(metric={self.metric!r}, reduce={self.reduce!r})"
