"""Frame-causal transformer predictor with history k and AdaLN-zero action conditioning.

`F(z_{t-k+1..t}, a_{t-k+1..t}) -> z_{t+1}`: one token per frame (the pooled latent projected
to `hidden`), each token modulated by its own frame's action, attention causal within a
window of at most k frames. As in LeWM's predictor (6 layers, AdaLN-zero, causal; history 3
on Push-T) built from DiT's blocks; DINO-WM's predictor also sees windows of k frames.

Why AdaLN and not action tokens (V-JEPA 2-AC): with one pooled vector per frame the action
is as wide as the state, and AdaLN hands it to every block's LayerNorm directly instead of
making attention learn to route it from a separate token; the sequence stays one token per
frame (half of interleaved tokens, a quarter of the attention cost) on the planner's hot
path of 300 x H rollouts; zero-initialised modulation and output layers make the predictor
start as the identity map (repeat-last), like the MLP; and with patch tokens later a frame's
action modulates all N of its tokens with no change to the token layout.

Positions are a learned bias per head and per frame offset (0..k-1) on the attention logits,
not absolute embeddings, and a prediction sees exactly its k-frame window: teacher forcing
over a long training window computes what a k-frame rollout window computes.

Shapes: `forward(z [..., T, D], a [..., T, A]) -> [..., T, D]`, output t predicting z_{t+1}
from frames max(0, t - k + 1)..t; `step(z [..., D], a [..., A]) -> [..., D]` is one
transition from a one-frame context. Pooled latents only: patch tokens `[..., T, N, D]`
would enter `windows` as L * N tokens per window, with `window_mask` expanded from frames to
tokens (a token sees every token of its own and earlier frames), a spatial position
embedding, and each frame's action condition repeated over its N tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MLP_RATIO = 4


def window_mask(length: int, pads: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Additive attention mask of windows of `length` frames, the first `pads[w]` of window w
    padding: -> [W, heads, L, L]. A query sees itself and the earlier real frames of its window,
    with the learned bias [heads, k] of their offset; a padding frame sees only itself (so it
    stays finite and never leaks into a real frame)."""
    pos = torch.arange(length, device=bias.device)
    offset = pos[:, None] - pos[None, :]  # query frame - key frame
    real_key = pos[None, None, :] >= pads[:, None, None]  # [W, 1, L]
    visible = ((offset >= 0) & real_key) | (offset == 0)  # [W, L, L]
    mask = bias[:, offset.clamp(0, bias.shape[1] - 1)]  # [heads, L, L]
    return mask.unsqueeze(0).masked_fill(~visible.unsqueeze(1), float("-inf"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class WindowAttention(nn.Module):
    """Multi-head self-attention within each window under an additive mask:
    x [B, W, L, C], mask [W, heads, L, L] -> [B, W, L, C]."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        *lead, length, width = x.shape
        qkv = self.qkv(x).view(*lead, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2)  # 3 x [B, W, heads, L, C / heads]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        return self.proj(y.transpose(-3, -2).reshape(*lead, length, width))


class AdaLNBlock(nn.Module):
    """DiT block with AdaLN-zero: the condition c sets each LayerNorm's shift and scale and
    gates each residual branch; the gates start at zero, so the block starts as the identity.

    x [B, W, L, C], cond [B, W, L, E] (one condition per token), pads [W] -> [B, W, L, C].
    """

    def __init__(self, width: int, heads: int, history: int, cond_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = WindowAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, MLP_RATIO * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(MLP_RATIO * width, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * width))
        self.position_bias = nn.Parameter(torch.zeros(heads, history))  # per head, per frame offset
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, pads: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        mask = window_mask(x.shape[-2], pads, self.position_bias)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), mask)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class TransformerPredictor(nn.Module):
    """`z' = z_t + head(blocks(embed(z_{t-k+1..t}) | a_{t-k+1..t}))`, frame-causal, history k.

    `hidden` is the token width, `layers` the number of blocks, `action_embed` the width of the
    action condition that modulates every block; `heads` must divide `hidden`.
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = 256, layers: int = 4,
                 action_embed: int = 64, heads: int = 4, history: int = 1):
        super().__init__()
        if history < 1:
            raise ValueError(f"history={history} must be at least 1")
        if hidden % heads:
            raise ValueError(f"hidden={hidden} must be a multiple of heads={heads}")
        self.latent_dim, self.action_dim, self.history = latent_dim, action_dim, history
        self.embed = nn.Linear(latent_dim, hidden)
        self.action_embed = nn.Sequential(nn.Linear(action_dim, action_embed), nn.SiLU(),
                                          nn.Linear(action_embed, action_embed))
        self.blocks = nn.ModuleList(AdaLNBlock(hidden, heads, history, action_embed) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(action_embed, 2 * hidden))
        self.head = nn.Linear(hidden, latent_dim)
        # Start as the identity map: rollouts begin at the repeat-last baseline (AdaLN-zero).
        for layer in (self.final_modulation[-1], self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, cfg: dict, latent_dim: int, action_dim: int) -> "TransformerPredictor":
        return cls(latent_dim, action_dim, hidden=cfg["hidden"], layers=cfg["layers"],
                   action_embed=cfg["action_embed"], heads=cfg["heads"], history=cfg["history"])

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """z [..., T, D], a [..., T, A] -> [..., T, D]: output t predicts z_{t+1} from frames
        max(0, t - k + 1)..t and their actions (teacher forcing; the axis before D is time).

        T <= k is one causal window. A longer sequence is cut into T windows of k frames, one
        ending at each frame (the first k - 1 front-padded): stacked blocks would otherwise
        widen a banded mask's reach to depth * (k - 1) frames, and rollouts see k frames only.
        """
        if z.shape[:-1] != a.shape[:-1]:
            raise ValueError(f"latent leading dims {tuple(z.shape[:-1])} != action leading dims {tuple(a.shape[:-1])}")
        if z.dim() < 2:
            raise ValueError(f"expected z [..., T, D] with a time axis, got {tuple(z.shape)}")
        lead, (length, dim) = z.shape[:-2], z.shape[-2:]
        z_seq, a_seq = z.reshape(-1, 1, length, dim), a.reshape(-1, 1, length, a.shape[-1]).to(z.dtype)
        pads = torch.zeros(1, dtype=torch.long, device=z.device)
        k = self.history
        if length > k:  # [B, 1, T, .] -> [B, T, k, .]: the window ending at each frame
            def unfold(x: torch.Tensor) -> torch.Tensor:
                return F.pad(x[:, 0], (0, 0, k - 1, 0)).unfold(1, k, 1).transpose(-1, -2)
            z_seq, a_seq = unfold(z_seq), unfold(a_seq)
            pads = (k - 1 - torch.arange(length, device=z.device)).clamp_min(0)
        out = self.windows(z_seq, a_seq, pads)  # [B, W, L, D]
        out = out[:, 0] if length <= k else out[:, :, -1]  # [B, T, D]
        return out.reshape(*lead, length, dim)

    def windows(self, z: torch.Tensor, a: torch.Tensor, pads: torch.Tensor) -> torch.Tensor:
        """Predictions within windows: z [B, W, L, D], a [B, W, L, A], pads [W] -> [B, W, L, D]."""
        cond = self.action_embed(a)
        x = self.embed(z)
        for block in self.blocks:
            x = block(x, cond, pads)
        shift, scale = self.final_modulation(cond).chunk(2, dim=-1)
        return z + self.head(modulate(self.norm(x), shift, scale))

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """One transition from a one-frame context on any leading dims: z [..., D], a [..., A] -> [..., D]."""
        return self(z.unsqueeze(-2), a.unsqueeze(-2)).squeeze(-2)
