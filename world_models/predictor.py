"""Action-conditioned latent predictors `F(z_t, a_t) -> z_{t+1}` and their name table.

Every predictor has `history` (frames of context, k), `forward(z [..., T, D], a [..., T, A])
-> [..., T, D]` (output t predicts z_{t+1} from frames t-k+1..t: teacher forcing along the
axis before D) and `step(z [..., D], a [..., A]) -> [..., D]` (one transition from one frame).
A Markov predictor (k = 1) treats every leading dim alike, so its `forward` is its `step`.
"""

from __future__ import annotations

import torch
from torch import nn

from world_models.config import WorldModelConfig
from world_models.transformer import TransformerPredictor


class MLPPredictor(nn.Module):
    """Markov one-step predictor on a latent vector: `z' = z + MLP([LN(z), embed(a)])`.

    The residual form makes "nothing happens" the easy default, so the network spends its
    capacity on how actions move the latent. Works on any leading dims:
    `z [..., D]`, `a [..., A] -> [..., D]`.
    """

    history = 1  # Markov: the next latent depends on this frame alone

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = 512, layers: int = 3,
                 action_embed: int = 64):
        super().__init__()
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.norm = nn.LayerNorm(latent_dim)
        self.action_embed = nn.Sequential(nn.Linear(action_dim, action_embed), nn.GELU())
        blocks: list[nn.Module] = []
        width = latent_dim + action_embed
        for _ in range(layers - 1):
            blocks += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        blocks.append(nn.Linear(width, latent_dim))
        self.mlp = nn.Sequential(*blocks)
        # Start as the identity map: rollouts begin at the repeat-last baseline.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if z.shape[:-1] != a.shape[:-1]:
            raise ValueError(f"latent leading dims {tuple(z.shape[:-1])} != action leading dims {tuple(a.shape[:-1])}")
        h = torch.cat([self.norm(z), self.action_embed(a.to(z.dtype))], dim=-1)
        return z + self.mlp(h)

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self(z, a)

    @classmethod
    def from_config(cls, cfg: dict, latent_dim: int, action_dim: int) -> "MLPPredictor":
        if cfg["history"] != 1:
            raise ValueError(f"world_model.history={cfg['history']}: the mlp predictor is Markov (history 1); "
                             "a longer context needs world_model.name=transformer")
        return cls(latent_dim, action_dim, hidden=cfg["hidden"], layers=cfg["layers"],
                   action_embed=cfg["action_embed"])


# name -> (predictor class, config class): the shape of every component table (planners.PLANNERS).
# Both read the one WorldModelConfig: the training stage builds it whatever the name.
PREDICTORS = {"mlp": (MLPPredictor, WorldModelConfig), "transformer": (TransformerPredictor, WorldModelConfig)}
