"""The WorldModel object planners call: `encode`, `step`, `rollout`.

Latents are the encoder's per-frame pooled vectors, standardised per dimension with training
statistics (their raw std is tiny, DESIGN.md calibration item 5). Actions are model actions:
`frameskip` env actions stacked and normalised with training statistics; `action_low` /
`action_high` are the env's action box in that normalised space.

A checkpoint is one file that holds only tensors and plain types, loaded with
`torch.load(weights_only=True)`: opening a checkpoint someone sent you never runs code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from encoders import EncoderConfig, VideoViT, build_encoder
from world_models.predictor import PREDICTORS

FORMAT = "jepa_plan.world_model/v1"


def rollout_steps(step, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Apply `step(z, a)` along the horizon: z0 [B, *S], actions [B, H, A] -> z_1..z_H [B, H, *S].

    The one sequential rollout of every model (learned, oracle, diagnostics); gradients flow
    unless the caller turns them off.
    """
    z, out = z0, []
    for t in range(actions.shape[1]):
        z = step(z, actions[:, t])
        out.append(z)
    return torch.stack(out, dim=1)


class CheckpointError(ValueError):
    """A world-model checkpoint is missing, unreadable or not one of ours."""


def build_predictor(cfg: dict, latent_dim: int, action_dim: int) -> nn.Module:
    return PREDICTORS[cfg["name"]][0](latent_dim, action_dim, hidden=cfg["hidden"], layers=cfg["layers"],
                                      action_embed=cfg["action_embed"])


class WorldModel(nn.Module):
    """Frozen encoder + action-conditioned predictor behind the planner interface.

    Shapes: `encode(frames uint8 [B,T,3,H,W]) -> z [B,T,D]`; `step(z [...,D], a [...,A]) ->
    [...,D]`; `rollout(z0 [B,D], actions [B,H,A]) -> [B,H,D]`.
    """

    def __init__(self, encoder: VideoViT, predictor: nn.Module, *, latent_mean: torch.Tensor,
                 latent_std: torch.Tensor, action_mean: torch.Tensor, action_std: torch.Tensor,
                 env_action_low: torch.Tensor, env_action_high: torch.Tensor, frameskip: int,
                 meta: dict):
        super().__init__()
        self.encoder, self.predictor = encoder, predictor
        self.frameskip = int(frameskip)
        self.meta = meta  # encoder/predictor configs, env config, img size, run config
        self.register_buffer("latent_mean", latent_mean.float())
        self.register_buffer("latent_std", latent_std.float())
        self.register_buffer("action_mean", action_mean.float())  # [A] model action (stacked)
        self.register_buffer("action_std", action_std.float())
        low = env_action_low.float().repeat(self.frameskip)
        high = env_action_high.float().repeat(self.frameskip)
        self.register_buffer("action_low", (low - self.action_mean) / self.action_std)
        self.register_buffer("action_high", (high - self.action_mean) / self.action_std)
        self.requires_grad_(False)
        self.eval()

    # -- planner interface -------------------------------------------------------------
    @property
    def action_dim(self) -> int:
        return self.action_mean.numel()

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.latent_mean.shape)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, 3, H, W] -> standardised latents [B, T, D]."""
        if frames.dtype != torch.uint8 or frames.dim() != 5:
            raise ValueError(f"encode expects uint8 frames [B,T,3,H,W], got {frames.dtype} {tuple(frames.shape)}")
        return self.standardize(self.encoder.embed_frames(frames).float())

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """One transition on any leading dims: z [..., D], a [..., A] -> [..., D]."""
        return self.predictor(z, a)

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Sequential rollout: z0 [B, D], actions [B, H, A] -> z [B, H, D] (z_1..z_H)."""
        return rollout_steps(self.step, z0, actions)

    # -- conversions ---------------------------------------------------------------------
    def standardize(self, pooled: torch.Tensor) -> torch.Tensor:
        return (pooled - self.latent_mean) / self.latent_std

    def normalize_actions(self, env_actions: torch.Tensor) -> torch.Tensor:
        """env actions [..., frameskip, A_env] -> model actions [..., A]."""
        return (env_actions.flatten(-2) - self.action_mean) / self.action_std

    def env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """model actions [..., A] -> env actions [..., frameskip, A_env] to execute in order."""
        raw = actions * self.action_std + self.action_mean
        return raw.unflatten(-1, (self.frameskip, -1))

    # -- checkpoint ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        state = {
            "format": FORMAT,
            "meta": json.dumps(self.meta),
            "frameskip": self.frameskip,
            "encoder": self.encoder.state_dict(),
            "predictor": self.predictor.state_dict(),
            "buffers": {k: v for k, v in self.named_buffers() if "." not in k},
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # a crash mid-write never leaves a half checkpoint under the real name

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "WorldModel":
        """Load a world model from the single file written by `save` (no code executed)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: world-model checkpoint not found")
        try:
            # Built on the CPU, then moved: the action box comes from the JSON meta, on the CPU.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path}: not a readable world-model checkpoint ({type(err).__name__}: {err})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"{path}: expected format '{FORMAT}', found {found!r}")
        meta = json.loads(state["meta"])
        buffers = state["buffers"]
        encoder = build_encoder(EncoderConfig.from_dict(meta["encoder"]), meta["img_size"])
        predictor = build_predictor(meta["predictor"], buffers["latent_mean"].numel(), buffers["action_mean"].numel())
        try:
            encoder.load_state_dict(state["encoder"])
            predictor.load_state_dict(state["predictor"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not match the stored config: {err}") from None
        low, high = torch.tensor(meta["env_action_low"]), torch.tensor(meta["env_action_high"])
        model = cls(encoder, predictor, latent_mean=buffers["latent_mean"], latent_std=buffers["latent_std"],
                    action_mean=buffers["action_mean"], action_std=buffers["action_std"],
                    env_action_low=low, env_action_high=high, frameskip=state["frameskip"], meta=meta)
        return model.to(map_location)
