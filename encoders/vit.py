"""Video ViT: patch or tubelet embedding, fixed 3-D sin-cos positions, timm blocks.

Token layout for a clip of T frames with tubelet size `u`: T' = T / u time steps, an
Hp x Wp spatial grid, flattened index `t' * Hp * Wp + h * Wp + w`. Masks
(`encoders.masking`) and the predictor (`encoders.predictor`) use the same layout.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from timm.models.vision_transformer import Block
from torch import nn


def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [B, T, 3, H, W] -> float [B, 3, T, H, W] scaled to [-1, 1]."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 [B, T, C, H, W] in 0..255, got {frames.dtype}")
    if frames.dim() != 5:
        raise ValueError(f"frames must be [B, T, C, H, W], got shape {tuple(frames.shape)}")
    return frames.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0)


def _sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions [N] -> [N, dim] (sin half, cos half), transformer-style frequencies."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@lru_cache(maxsize=32)
def _sincos_3d_cached(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    t, h, w = grid
    # Spatial axes get equal even shares; time takes the (even) remainder.
    d_space = 2 * (dim // 6)
    d_time = dim - 2 * d_space
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat(
        [
            _sincos_1d(tt.flatten(), d_time),
            _sincos_1d(hh.flatten(), d_space),
            _sincos_1d(ww.flatten(), d_space),
        ],
        dim=1,
    )
    return emb.float()


def sincos_pos_embed_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed position table [T' * Hp * Wp, dim] in the flattened token order.

    Fixed (not learned) so a model trained on 2-frame clips encodes any clip length.
    """
    if dim % 2 or dim < 6:
        raise ValueError(f"sin-cos position embedding needs an even dim >= 6, got {dim}")
    return _sincos_3d_cached(tuple(int(g) for g in grid), int(dim))


class VideoViT(nn.Module):
    """ViT over video clips; with `keep`, only the kept tokens enter the blocks."""

    def __init__(
        self,
        img_size: int = 64,
        patch_size: int = 8,
        tubelet_size: int = 1,
        in_chans: int = 3,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        proj_hidden: int = 0,
    ):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if tubelet_size not in (1, 2):
            raise ValueError(f"tubelet_size must be 1 or 2, got {tubelet_size}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.dim = dim
        # Conv3d with stride = kernel is a per-tubelet linear map (tubelet 1 = per-frame patches).
        self.patch_embed = nn.Conv3d(
            in_chans,
            dim,
            kernel_size=(tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size),
        )
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        # LeWM's projector on the pooled vector: Linear, BatchNorm, GELU, Linear (proj_hidden wide;
        # 0 = none). Its BatchNorm normalises over the batch what little the layer-normed token
        # mean varies between frames at first (std ~5e-4 at 64 px). Without it SIGReg, whose
        # gradient scales with that spread, lost to the prediction term and the latent collapsed.
        self.projector = (nn.Sequential(nn.Linear(dim, proj_hidden), nn.BatchNorm1d(proj_hidden), nn.GELU(),
                                        nn.Linear(proj_hidden, dim)) if proj_hidden else None)
        self.apply(init_weights)

    @classmethod
    def from_config(cls, cfg, img_size: int) -> "VideoViT":
        """`encoders.vjepa.EncoderConfig` -> encoder."""
        return cls(img_size=img_size, patch_size=cfg.patch_size, tubelet_size=cfg.tubelet_size, dim=cfg.dim,
                   depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, proj_hidden=cfg.proj_hidden)

    def grid(self, num_frames: int) -> tuple[int, int, int]:
        """Token grid (T', Hp, Wp) of a clip of `num_frames` frames."""
        if num_frames % self.tubelet_size:
            raise ValueError(
                f"clip of {num_frames} frames is not a multiple of tubelet_size {self.tubelet_size}"
            )
        side = self.img_size // self.patch_size
        return num_frames // self.tubelet_size, side, side

    def forward(self, frames: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [B, T, 3, H, W], keep Long [B, K] or None -> tokens [B, K or N, D]."""
        x = frames_to_input(frames)  # checks dtype and rank
        _, _, num_frames, height, width = x.shape
        if height != self.img_size or width != self.img_size:
            raise ValueError(f"expected {self.img_size}x{self.img_size} frames, got {height}x{width}")
        grid = self.grid(num_frames)
        x = self.patch_embed(x)  # [B, D, T', Hp, Wp]
        x = x.flatten(2).transpose(1, 2)  # [B, N, D]
        x = x + sincos_pos_embed_3d(grid, self.dim).to(device=x.device, dtype=x.dtype)
        if keep is not None:
            x = torch.gather(x, 1, keep[..., None].expand(-1, -1, self.dim))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def frame_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, 3, H, W] -> the tokens of each frame encoded alone [B * T, Hp * Wp, D]."""
        single = frames.reshape(-1, 1, *frames.shape[2:])
        if self.tubelet_size == 2:
            # A tubelet needs two frames: repeat the frame (as V-JEPA 2-AC does for images).
            single = single.expand(-1, 2, -1, -1, -1)
        return self.forward(single)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, 3, H, W] -> per-frame mean-pooled latents [B, T, D].

        Each frame is encoded alone, so the latent of a frame does not depend on its
        neighbours in the clip; this is the vector the world model and planners use.
        """
        b, t = frames.shape[:2]
        pooled = self.frame_tokens(frames).mean(dim=1)
        if self.projector is not None:
            pooled = self.projector(pooled)
        return pooled.reshape(b, t, self.dim)


def init_weights(module: nn.Module) -> None:
    """ViT init (timm / V-JEPA): truncated-normal linear maps, zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv3d):
        # The patch embedding is a linear map over the flattened tubelet: same init.
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
