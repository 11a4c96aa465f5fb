"""The world-model stage's config: predictor architecture and training settings (no Lightning)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorldModelConfig:
    name: str = "mlp"
    hidden: int = 512
    layers: int = 3
    action_embed: int = 64
    rollout_steps: int = 4  # k-step autoregressive rollout term of the loss
    rollout_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    max_steps: int = 3000
    batch_size: int = 256
    diag_horizon: int = 5  # diagnostics report k = 1..diag_horizon
    ridge_alpha: float = 1.0
