"""The WorldModel object planners call: `encode`, `step`, `rollout`.

Latents are the encoder's per-frame pooled vectors in the world model's basis: centred with
training statistics and projected onto the directions that codec-like noise barely moves, each
at unit variance over the data (`world_models.latents.latent_basis`; with nuisance_ratio 0,
per-dimension standardisation: the raw std is tiny, DESIGN.md calibration item 5). Actions are model actions:
`frameskip` env actions stacked and normalised with training statistics; `action_low` /
`action_high` are the env's action box in that normalised space.

A checkpoint is one file that holds only tensors and plain types, loaded with
`torch.load(weights_only=True)`: opening a checkpoint someone sent you never runs code.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from encoders import EncoderConfig, VideoViT, build_encoder
from world_models.config import WorldModelConfig
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
    """The predictor named by `cfg["name"]`; keys missing from `cfg` (a checkpoint written
    before they existed) take WorldModelConfig's defaults."""
    cfg = {**asdict(WorldModelConfig()), **cfg}
    if cfg["name"] not in PREDICTORS:
        raise ValueError(f"unknown predictor {cfg['name']!r}; registered: {', '.join(sorted(PREDICTORS))}")
    return PREDICTORS[cfg["name"]][0].from_config(cfg, latent_dim, action_dim)


def check_context(past_z: torch.Tensor | None, past_a: torch.Tensor | None) -> None:
    if (past_z is None) != (past_a is None):
        raise ValueError("past_z and past_a go together: the latents of earlier frames and the actions taken there")


def context_window(z: torch.Tensor, past_z: torch.Tensor | None, past_a: torch.Tensor | None,
                   history: int, action_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last `history` frames ending at z [..., D]: past_z [..., c, D] are the c frames before
    it (oldest first), past_a [..., c, A] the action taken at each of them (None: no context).
    -> (latents [..., m, D], actions of the m - 1 earlier frames [..., m - 1, A]), m <= history."""
    check_context(past_z, past_a)
    keep = history - 1
    if past_z is None or keep == 0:
        past_z = z.new_zeros(*z.shape[:-1], 0, z.shape[-1])
        past_a = z.new_zeros(*z.shape[:-1], 0, action_dim)
    elif past_z.shape[:-1] != past_a.shape[:-1] or past_z.shape[:-2] != z.shape[:-1]:
        raise ValueError(f"context past_z {tuple(past_z.shape)} / past_a {tuple(past_a.shape)} must be "
                         f"[..., c, D] / [..., c, A] with the leading dims of z {tuple(z.shape)}")
    return torch.cat([past_z[..., -keep:, :].to(z.dtype), z.unsqueeze(-2)], dim=-2), past_a[..., -keep:, :]


def predictor_rollout(predictor: nn.Module, z0: torch.Tensor, actions: torch.Tensor,
                      past_z: torch.Tensor | None = None, past_a: torch.Tensor | None = None) -> torch.Tensor:
    """Roll a predictor out on its own predictions: z0 [B, D], actions [B, H, A] -> z_1..z_H
    [B, H, D], with optional context past_z [B, c, D], past_a [B, c, A] (the frames before z0
    and their actions). A history-k predictor sees a sliding window of the last k latents (and
    their actions); a Markov one steps from z0 alone, through the one shared `rollout_steps`."""
    history = predictor.history
    check_context(past_z, past_a)
    if history == 1:
        return rollout_steps(predictor.step, z0, actions)
    window_z, window_a = context_window(z0, past_z, past_a, history, actions.shape[-1])  # [B, m, D], [B, m-1, A]
    out = []
    for t in range(actions.shape[1]):
        window_a = torch.cat([window_a.to(actions.dtype), actions[:, t:t + 1]], dim=1)
        z = predictor(window_z, window_a)[:, -1]  # only the newest frame's prediction is new
        out.append(z)
        window_z = torch.cat([window_z, z.unsqueeze(1)], dim=1)[:, -history:]
        window_a = window_a[:, -(history - 1):]  # the actions of the frames that stay
    return torch.stack(out, dim=1)


class WorldModel(nn.Module):
    """Frozen encoder + action-conditioned predictor behind the planner interface.

    Shapes: `encode(frames uint8 [B,T,3,H,W]) -> z [B,T,D]`; `step(z [...,D], a [...,A]) ->
    [...,D]`; `rollout(z0 [B,D], actions [B,H,A]) -> [B,H,D]`.

    History k (`history`): a predictor with k > 1 predicts z_{t+1} from z_{t-k+1..t} and the
    actions taken at those frames. `step` and `rollout` take that context as optional
    `past_z [..., c, D]` / `past_a [..., c, A]` (the c frames before z, oldest first, and the
    action taken at each; only the last k - 1 are used; none is a one-frame context, what the
    model also sees at an episode's first frame). `step_sequence` evaluates every transition of
    a given trajectory at once, each with its own k-frame context (GRASP's lifted step).
    With k = 1 all three reduce to the Markov calls, and the context is ignored.
    """

    def __init__(self, encoder: VideoViT, predictor: nn.Module, *, latent_mean: torch.Tensor,
                 latent_proj: torch.Tensor, action_mean: torch.Tensor, action_std: torch.Tensor,
                 env_action_low: torch.Tensor, env_action_high: torch.Tensor, frameskip: int,
                 meta: dict):
        super().__init__()
        self.encoder, self.predictor = encoder, predictor
        self.frameskip = int(frameskip)
        self.meta = meta  # encoder/predictor configs, env config, img size, run config
        self.register_buffer("latent_mean", latent_mean.float())
        self.register_buffer("latent_proj", latent_proj.float())  # [D, k] (world_models.latents.latent_basis)
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
        return (self.latent_proj.shape[1],)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, 3, H, W] -> latents in the model's basis [B, T, k]."""
        if frames.dtype != torch.uint8 or frames.dim() != 5:
            raise ValueError(f"encode expects uint8 frames [B,T,3,H,W], got {frames.dtype} {tuple(frames.shape)}")
        return self.standardize(self.encoder.embed_frames(frames).float())

    @property
    def history(self) -> int:
        """k: frames of context the predictor reads (1: Markov)."""
        return self.predictor.history

    def step(self, z: torch.Tensor, a: torch.Tensor, past_z: torch.Tensor | None = None,
             past_a: torch.Tensor | None = None) -> torch.Tensor:
        """One transition on any leading dims: z [..., D], a [..., A] -> [..., D]; with history
        k > 1 the optional context past_z [..., c, D], past_a [..., c, A] precedes z."""
        check_context(past_z, past_a)
        if self.history == 1 or past_z is None:
            return self.predictor.step(z, a)
        window_z, window_a = context_window(z, past_z, past_a, self.history, a.shape[-1])
        window_a = torch.cat([window_a.to(a.dtype), a.unsqueeze(-2)], dim=-2)
        return self.predictor(window_z, window_a)[..., -1, :]

    def step_sequence(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Every transition along a trajectory: z [..., T, D], a [..., T, A] -> [..., T, D],
        output t = F(z_{t-k+1..t}, a_{t-k+1..t}) (fewer frames for t < k - 1), all in one batched
        call (the transformer runs T windows of k frames); with k = 1 it is `step` on [..., T]."""
        return self.predictor(z, a)

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, past_z: torch.Tensor | None = None,
                past_a: torch.Tensor | None = None) -> torch.Tensor:
        """Sequential rollout: z0 [B, D], actions [B, H, A] -> z [B, H, D] (z_1..z_H), on its own
        predictions with a sliding window of the last k latents; optional context past_z
        [B, c, D], past_a [B, c, A] (the observed frames before z0 and the actions taken there)."""
        return predictor_rollout(self.predictor, z0, actions, past_z, past_a)

    # -- conversions ---------------------------------------------------------------------
    def standardize(self, pooled: torch.Tensor) -> torch.Tensor:
        return (pooled - self.latent_mean) @ self.latent_proj

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
        if "latent_proj" not in buffers:  # written before the latent basis: per-dim standardisation
            buffers["latent_proj"] = torch.diag(1.0 / buffers.pop("latent_std"))
        encoder = build_encoder(EncoderConfig.from_dict(meta["encoder"]), meta["img_size"])
        try:
            predictor = build_predictor(meta["predictor"], buffers["latent_proj"].shape[1],
                                        buffers["action_mean"].numel())
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from None
        try:
            encoder.load_state_dict(state["encoder"])
            predictor.load_state_dict(state["predictor"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not match the stored config: {err}") from None
        low, high = torch.tensor(meta["env_action_low"]), torch.tensor(meta["env_action_high"])
        model = cls(encoder, predictor, latent_mean=buffers["latent_mean"], latent_proj=buffers["latent_proj"],
                    action_mean=buffers["action_mean"], action_std=buffers["action_std"],
                    env_action_low=low, env_action_high=high, frameskip=state["frameskip"], meta=meta)
        return model.to(map_location)
