"""V-JEPA masked predictor: context tokens + positioned mask tokens -> target predictions.

Narrower than the encoder (V-JEPA: the predictor is a bottleneck, so the encoder, not
the predictor, has to carry the information).
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from encoders.vit import init_weights, sincos_pos_embed_3d


class MaskedPredictor(nn.Module):
    """dim -> pred_dim, `depth` timm Blocks over [context; mask tokens], -> out_dim (dim by default)."""

    def __init__(
        self,
        dim: int = 128,
        pred_dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        out_dim: int | None = None,
    ):
        super().__init__()
        if pred_dim % heads:
            raise ValueError(f"pred_dim {pred_dim} is not divisible by pred_heads {heads}")
        self.dim = dim
        self.pred_dim = pred_dim
        self.embed = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.blocks = nn.ModuleList(
            Block(pred_dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(pred_dim)
        self.proj = nn.Linear(pred_dim, out_dim or dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.apply(init_weights)

    def forward(
        self,
        context: torch.Tensor,
        context_idx: torch.Tensor,
        target_idx: torch.Tensor,
        grid: tuple[int, int, int],
    ) -> torch.Tensor:
        """context [B, Kc, D] at context_idx Long [B, Kc]; target_idx Long [B, Kt];
        grid (T', Hp, Wp) of the clip -> predictions [B, Kt, D]."""
        pos = sincos_pos_embed_3d(grid, self.pred_dim).to(context.device)  # [N, P]
        x = self.embed(context)
        x = x + pos[context_idx].to(x.dtype)
        queries = self.mask_token.to(x.dtype) + pos[target_idx].to(x.dtype)  # [B, Kt, P]
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x[:, context.shape[1]:])
        return self.proj(x)


class PooledDecoder(nn.Module):
    """One pooled latent per frame -> that frame's tokens: a query at every grid position
    attends to the latent (embedded as one extra token) through `depth` timm Blocks.

    The latent is the only input that differs between frames, so whatever the decoded token
    map shows (the block's pose on Push-T, not only the agent) the pooled vector must carry.
    """

    def __init__(self, dim: int = 128, pred_dim: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 4.0,
                 out_dim: int | None = None):
        super().__init__()
        if pred_dim % heads:
            raise ValueError(f"pred_dim {pred_dim} is not divisible by pred_heads {heads}")
        self.pred_dim = pred_dim
        # BatchNorm first, as in the inverse-dynamics head: the pooled latent's spread across
        # frames is about 1e-3 of its mean, too small for a plain linear map to pass gradient back.
        self.embed = nn.Sequential(nn.BatchNorm1d(dim), nn.Linear(dim, pred_dim))
        self.query = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.blocks = nn.ModuleList(Block(pred_dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(pred_dim)
        self.proj = nn.Linear(pred_dim, out_dim or dim)
        nn.init.trunc_normal_(self.query, std=0.02)
        self.apply(init_weights)

    def forward(self, latents: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """latents [M, D], grid (1, Hp, Wp) of one frame -> predictions [M, Hp * Wp, out_dim]."""
        pos = sincos_pos_embed_3d(grid, self.pred_dim).to(device=latents.device)  # [N, P]
        x = self.embed(latents)[:, None]
        queries = (self.query + pos[None].to(x.dtype)).expand(len(latents), -1, -1)
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.proj(self.norm(x[:, 1:]))
