"""What a planner may call on a world model, declared here so planners import nothing else.

`world_models.WorldModel` and the two_rooms oracle meet this protocol by shape alone.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


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
