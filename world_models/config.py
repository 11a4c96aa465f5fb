"""The world-model stage's config: predictor architecture and training settings (no Lightning)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorldModelConfig:
    name: str = "mlp"  # mlp | transformer (world_models.PREDICTORS)
    hidden: int = 512  # mlp: hidden width; transformer: token width
    layers: int = 3  # mlp: linear layers; transformer: blocks
    action_embed: int = 64  # mlp: action embedding; transformer: width of the AdaLN action condition
    heads: int = 4  # transformer attention heads (divide `hidden`)
    history: int = 1  # frames of context k: predicts z_{t+1} from z_{t-k+1..t}; the mlp is Markov (1)
    rollout_steps: int = 4  # k-step autoregressive rollout term of the loss
    rollout_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    max_steps: int = 3000
    batch_size: int = 256
    diag_horizon: int = 5  # diagnostics report k = 1..diag_horizon
    # The latent basis (world_models.latents.latent_basis): keep directions whose spread over the
    # data is at least this many times what codec-like noise moves them; 0: per-dim standardisation.
    nuisance_ratio: float = 10.0
    nuisance_frames: int = 4096  # train frames perturbed to measure that
    # > 0: then turn the latent onto its principal axes and scale an axis of variance v by
    # 1 / sqrt(v + whiten_floor), so a state held in minor axes counts in the loss and the
    # planner's distance (latents.latent_basis); 0: off.
    whiten_floor: float = 0.0
    ridge_alpha: float = 1.0

    def __post_init__(self):
        if self.nuisance_ratio < 0 or self.nuisance_frames < 1:
            raise ValueError(f"world_model.nuisance_ratio ({self.nuisance_ratio}) must be >= 0 and "
                             f"world_model.nuisance_frames ({self.nuisance_frames}) >= 1")
        if self.whiten_floor < 0:
            raise ValueError(f"world_model.whiten_floor={self.whiten_floor} must be >= 0 (0: off)")
        if self.history < 1:
            raise ValueError(f"world_model.history={self.history} must be at least 1")
