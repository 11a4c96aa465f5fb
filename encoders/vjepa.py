"""V-JEPA pretraining as a LightningModule, with the auxiliary terms that shape the
per-frame latent used downstream.

Loss per step (weights in `EncoderConfig`; 0 turns a term off):
- jepa: L1 between the predictor's outputs at masked tokens and the layer-normalised
  EMA target encoder's tokens there (V-JEPA);
- id: inverse dynamics on per-frame pooled context latents, BatchNorm then a linear
  head on `pool(z_{t+1}) - pool(z_t)` predicting the normalised stacked actions between
  the two frames (PLDM / eb_jepa). In the two-rooms calibration this term is what made
  latent distance track true distance;
- vicreg_var / vicreg_cov: VICReg variance hinge and covariance penalty on those pooled
  latents, against collapse of the vector the planner sees;
- pooled_decode (off by default): L1 between the layer-normalised EMA target tokens of each
  frame alone and what `PooledDecoder` makes of that frame's pooled latent. Inverse dynamics
  sees only what the actions move (the agent); this term makes the pooled vector carry the
  whole token map, the pushed block's pose included;
- forward_dynamics / sigreg (off by default): LeWM's end-to-end objective on the pooled
  latents. An action-conditioned MLP predicts `pool(z_{t+1})` from `pool(z_t)` and the stacked
  actions, by MSE, with gradient into both latents (no stop-gradient, no EMA), and SIGReg
  (`sigreg_statistic`) holds the latents to an isotropic Gaussian against collapse. `jepa=0`
  turns the masked-prediction term off, for LeWM's two-term objective alone.
- contrastive (off by default): a time-contrastive InfoNCE term (`clip_contrastive_loss`). A
  projection head maps each frame's pooled latent to a unit vector; the other frames of its
  own clip are the positives, every frame of the batch's other clips a negative. What stays
  fixed within a clip and differs between episodes (the block's pose, its angle included) is
  what tells a clip's frames apart from the rest, so the term asks for it where the terms above
  only pay for what moves.
- keypoint_decode (off by default; needs `name=keypoints`, `encoders.keypoints`): the latent is
  K image points, and a decoder that sees only Gaussian blobs drawn at them rebuilds each frame,
  by MSE with the non-background pixels weighted `kp_fg_weight` times. Where a masked-token or
  pooled target pays for the block's outline only through a few patches, this term cannot be
  lowered without drawing the block at its angle, so the points must lock on to its parts.
- state_supervision (off by default; privileged, not self-supervised): a BatchNorm + linear head
  regresses the recorded states (the `state_dims`, all by default; the `state_angles` dims as sine
  and cosine; each standardised over the batch) from each frame's pooled latent. It needs states
  in the data, which real videos rarely have. It is a diagnostic: the ceiling of what a latent that carries the whole pose gives
  the world model and the planners, so the rest of the pipeline can be measured apart from the
  encoder objective.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import nn

from encoders.augment import CodecNoise, codec_noise
from encoders.diagnostics import (
    RidgeProbe,
    distance_rank_correlation,
    effective_rank,
    feature_std,
)
from encoders.ema import ema_update, momentum_schedule
from encoders.keypoints import KeypointDecoder, foreground_weighted_mse, keypoint_separation
from encoders.masking import sample_multiblock_masks
from encoders.predictor import MaskedPredictor, PooledDecoder
from encoders.vit import frames_to_input


@dataclass
class EncoderConfig:
    """Encoder architecture, masking and pretraining recipe."""

    name: str = "vit"  # vit | keypoints (encoders.ENCODERS)
    patch_size: int = 8
    tubelet_size: int = 1
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    proj_hidden: int = 0  # LeWM's BatchNorm projector on the pooled latent (encoders.vit), 0 = none
    pred_dim: int = 64
    pred_depth: int = 2
    pred_heads: int = 4
    # Multi-block masks: small and large rectangles, each `scale` of the spatial grid.
    mask_small_blocks: int = 4
    mask_small_scale: float = 0.1
    mask_large_blocks: int = 1
    mask_large_scale: float = 0.3
    mask_aspect_min: float = 0.75
    mask_aspect_max: float = 1.5
    ema_start: float = 0.996
    ema_end: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_steps: int = 3000
    jepa: float = 1.0  # weight of the masked-prediction term; 0 skips it
    # What the masked-prediction term predicts at the masked tokens: tokens, V-JEPA's L1 to the
    # layer-normed EMA target tokens; pixels, MAE's MSE to each masked patch's RGB values,
    # normalised per patch (He et al. 2022, norm_pix_loss), with no EMA target in the loss.
    jepa_target: str = "tokens"
    inverse_dynamics: float = 1.0
    # LeWM's end-to-end terms: next-latent prediction (an MLP on [z_t, a_t], fd_hidden wide)
    # and SIGReg over sigreg_directions random projections; 0 = off.
    forward_dynamics: float = 0.0
    fd_hidden: int = 512
    sigreg: float = 0.0
    sigreg_directions: int = 256
    # Time-contrastive InfoNCE over clips (clip_contrastive_loss) through a 2-layer projection
    # head to contrastive_dim, at contrastive_temperature; 0 = off.
    contrastive: float = 0.0
    contrastive_temperature: float = 0.1
    contrastive_dim: int = 128
    # Privileged state regression (see the module docstring); 0 = off. state_angles: the state
    # dims that are angles, regressed as (sin, cos). state_dims: the dims regressed (empty: all).
    # On Push-T, regressing the agent beside the block keeps the block's angle out (docs/results.md).
    state_supervision: float = 0.0
    state_angles: list[int] = field(default_factory=list)
    state_dims: list[int] = field(default_factory=list)
    vicreg_var: float = 0.1
    vicreg_cov: float = 0.01
    # Invariance to codec-like noise (encoders.augment), off by default: the pooled latent of
    # `invariance_frames` noised frames regresses onto the clean frames' latents, in units of the
    # batch's latent variance, from `invariance_start` (a fraction of the run) on. At 64 px it
    # took the agent's motion out of the latent at every weight tried (0.1 to 1; docs/data.md);
    # the world model's latent basis handles codec noise instead.
    invariance: float = 0.0
    invariance_start: float = 0.5
    invariance_frames: int = 16
    # Decode each frame's target tokens from its pooled latent (PooledDecoder, pred_dim wide,
    # decode_depth blocks); 0 = off.
    pooled_decode: float = 0.0
    decode_depth: int = 2
    decode_centered: bool = False  # decode the targets minus their batch mean, at unit scale
    decode_target: str = "tokens"  # tokens: the EMA target's; pixels: each patch's RGB values
    # l1 | mse. Where the latent cannot place a pixel (a T arm, without the angle), L1's best guess
    # is the median, often the background; MSE's is the mean, which knowing the angle improves.
    decode_loss: str = "l1"
    # The keypoint encoder (name=keypoints: dim / 2 points; conv width kp_width) and its
    # reconstruction term (keypoint_decode weight; blobs of width kp_sigma in [-1, 1] units,
    # non-background pixels weighted kp_fg_weight times). kp_separation weights
    # encoders.keypoints.keypoint_separation: points closer than about kp_separation_width repel, so
    # those that follow the block spread over it instead of all settling on its centroid.
    # kp_concentration weights the heatmaps' mean spatial variance: a heatmap spread over the whole
    # block puts its point at the centroid, so a tight one must pick a part of the block.
    kp_width: int = 64
    keypoint_decode: float = 0.0
    kp_sigma: float = 0.1
    kp_fg_weight: float = 5.0
    kp_separation: float = 0.0
    kp_separation_width: float = 0.1
    kp_concentration: float = 0.0
    # The keypoint decoder's reach at S/4 (encoders.keypoints.KeypointDecoder): global | local.
    kp_decoder_reach: str = "global"
    diag_frames: int = 2048

    def __post_init__(self):
        if self.jepa_target not in ("tokens", "pixels"):
            raise ValueError(f"encoder.jepa_target={self.jepa_target!r}; valid: tokens, pixels")
        if self.decode_target not in ("tokens", "pixels"):
            raise ValueError(f"encoder.decode_target={self.decode_target!r}; valid: tokens, pixels")
        if self.kp_decoder_reach not in ("global", "local"):
            raise ValueError(f"encoder.kp_decoder_reach={self.kp_decoder_reach!r}; valid: global, local")
        if self.decode_loss not in ("l1", "mse"):
            raise ValueError(f"encoder.decode_loss={self.decode_loss!r}; valid: l1, mse")
        if self.name == "keypoints" and (self.jepa > 0 or self.pooled_decode > 0):
            raise ValueError("encoder.name=keypoints has no patch tokens: set encoder.jepa=0 and "
                             f"encoder.pooled_decode=0 (got {self.jepa} and {self.pooled_decode})")
        for key in ("keypoint_decode", "kp_separation", "kp_concentration"):
            if getattr(self, key) > 0 and self.name != "keypoints":
                raise ValueError(f"encoder.{key}={getattr(self, key)} needs encoder.name=keypoints, got {self.name!r}")

    @classmethod
    def from_dict(cls, cfg: dict) -> "EncoderConfig":
        """Build from a plain dict; unknown keys raise an error naming the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - valid)
        if unknown:
            raise KeyError(f"unknown encoder config keys {unknown}; valid keys: {sorted(valid)}")
        return cls(**cfg)

    def mask_blocks(self) -> list[tuple[int, float, tuple[float, float]]]:
        aspect = (self.mask_aspect_min, self.mask_aspect_max)
        return [
            (self.mask_small_blocks, self.mask_small_scale, aspect),
            (self.mask_large_blocks, self.mask_large_scale, aspect),
        ]


def build_encoder(cfg: EncoderConfig, img_size: int) -> nn.Module:
    """The context encoder named by `cfg.name` in `encoders.ENCODERS`."""
    from encoders import ENCODERS  # the table lives in the package, beside the classes

    if cfg.name not in ENCODERS:
        raise KeyError(f"unknown encoder {cfg.name!r}; registered encoders: {sorted(ENCODERS)}")
    return ENCODERS[cfg.name][0].from_config(cfg, img_size)


def vicreg_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z [N, D] -> (variance hinge on per-dim std < 1, off-diagonal covariance^2 / D)
    (Bardes et al. 2022), computed in float32."""
    z = z.float()
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    var_loss = F.relu(1.0 - std).mean()
    n, d = z.shape
    cov = (z.T @ z) / max(n - 1, 1)
    off_diag = cov - torch.diag_embed(torch.diagonal(cov))
    return var_loss, off_diag.pow(2).sum() / d


def patch_pixels(frames: torch.Tensor, patch: int, tubelet: int) -> torch.Tensor:
    """uint8 frames [B, T, 3, H, W] -> each token's pixels [B, N, 3 * tubelet * patch^2] in [-1, 1],
    tokens in the encoder's (T / tubelet, H / patch, W / patch) order."""
    x = frames_to_input(frames)  # [B, 3, T, H, W]
    x = x.unfold(2, tubelet, tubelet).unfold(3, patch, patch).unfold(4, patch, patch)  # [B, 3, T', Hp, Wp, t, p, p]
    return x.permute(0, 2, 3, 4, 1, 5, 6, 7).flatten(4).flatten(1, 3)


def sigreg_statistic(z: torch.Tensor, directions: int, generator: torch.Generator | None = None,
                     t_max: float = 3.0, knots: int = 17) -> torch.Tensor:
    """SIGReg (Balestriero & LeCun 2025, LeJEPA; the regulariser of LeWM): z [N, D] ->
    the Epps-Pulley statistic of `directions` random unit projections of z against N(0, 1),
    averaged over the projections, in float32.

    Per projection p (N values) the statistic is
    N * integral over t of |mean_n exp(i t p_n) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt,
    by the trapezoid rule on [-t_max, t_max] (the integrand is even, so twice [0, t_max]).
    It is 0 in expectation only when every projection is standard normal, so it pushes the
    latent towards an isotropic Gaussian: neither collapsed nor stretched along a few axes.
    """
    z = z.float()
    a = torch.randn(z.shape[1], directions, generator=generator).to(z.device)
    a = a / a.norm(dim=0, keepdim=True)
    t = torch.linspace(0.0, t_max, knots, device=z.device)
    x = (z @ a)[..., None] * t  # [N, K, T]
    gauss = torch.exp(-0.5 * t**2)
    err = (x.cos().mean(dim=0) - gauss).pow(2) + x.sin().mean(dim=0).pow(2)  # [K, T]
    return 2.0 * len(z) * torch.trapezoid(err * gauss, t, dim=-1).mean()


def clip_contrastive_loss(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """z [B, L, K] projected latents of B clips of L frames -> InfoNCE with several positives
    (SupCon, Khosla et al. 2020) in float32: each frame's positives are the other L-1 frames of
    its clip, and its softmax runs over every other frame of the batch (cosine similarity over
    `temperature`). With L = 2 it is SimCLR's NT-Xent."""
    b, l = z.shape[:2]
    if b < 2 or l < 2:
        raise ValueError(f"the contrastive term needs at least 2 clips of 2 frames, got {tuple(z.shape[:2])}")
    z = F.normalize(z.float().flatten(0, 1), dim=-1)
    itself = torch.eye(b * l, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(itself, float("-inf"))
    clip = torch.arange(b, device=z.device).repeat_interleave(l)
    positive = (clip[:, None] == clip[None]) & ~itself
    log_prob = logits.log_softmax(dim=-1).masked_fill(~positive, 0.0)
    return -(log_prob.sum(dim=-1) / (l - 1)).mean()


def state_targets(states: torch.Tensor, angles: list[int], dims: list[int] | None = None) -> torch.Tensor:
    """states [..., S] -> [..., len(dims) + len(angles)]: the `dims` (all when empty) that are not
    angles, then (sin, cos) of each angle dim."""
    states = states.float()
    size = states.shape[-1]
    bad = [a for a in angles if not 0 <= a < size]
    if bad:
        raise ValueError(f"encoder.state_angles={list(angles)}: dims {bad} are outside the {size}-d state")
    dims = list(dims) if dims else list(range(size))
    bad = [d for d in dims if not 0 <= d < size]
    if bad:
        raise ValueError(f"encoder.state_dims={dims}: dims {bad} are outside the {size}-d state")
    left_out = [a for a in angles if a not in dims]
    if left_out:
        raise ValueError(f"encoder.state_angles={list(angles)}: dims {left_out} are not in encoder.state_dims={dims}")
    keep = [i for i in dims if i not in angles]
    angle = states[..., list(angles)]
    return torch.cat([states[..., keep], angle.sin(), angle.cos()], dim=-1)


class ForwardDynamicsHead(nn.Module):
    """[z_t, normalised stacked actions] -> predicted z_{t+1}: a 2-hidden-layer GELU MLP."""

    def __init__(self, dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + action_dim, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, actions.to(z.dtype)], dim=-1))


class VJEPAModule(LightningModule):
    """Context encoder + masked predictor + EMA target encoder + inverse-dynamics head.

    Batches: {"frames": uint8 [B, L, 3, H, W], "actions": float [B, L-1, frameskip * A],
    "states" (optional, diagnostics only): float [B, L, S]}. With `action_dim` 0 (action-free
    video: encoder pretraining) batches carry no actions and there is no inverse-dynamics head.
    """

    def __init__(
        self,
        cfg: dict,
        img_size: int,
        frameskip: int,
        action_dim: int,
        action_mean: list[float],
        action_std: list[float],
        max_steps: int | None = None,
        state_dim: int = 0,
    ):
        super().__init__()
        config = EncoderConfig.from_dict(dict(cfg))
        stacked = frameskip * action_dim
        mean = _stacked_stats(action_mean, action_dim, frameskip, "action_mean")
        std = _stacked_stats(action_std, action_dim, frameskip, "action_std")
        # Plain types only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "cfg": asdict(config),
                "img_size": int(img_size),
                "frameskip": int(frameskip),
                "action_dim": int(action_dim),
                "action_mean": [float(v) for v in action_mean],
                "action_std": [float(v) for v in action_std],
                "max_steps": None if max_steps is None else int(max_steps),
                "state_dim": int(state_dim),
            }
        )
        self.cfg = config
        self.total_steps = int(max_steps) if max_steps is not None else config.max_steps
        self.context_encoder = build_encoder(config, img_size)
        patch_values = 3 * config.patch_size**2
        self.predictor = (MaskedPredictor(config.dim, config.pred_dim, config.pred_depth, config.pred_heads,
                                          config.mlp_ratio,
                                          patch_values * config.tubelet_size if config.jepa_target == "pixels" else None)
                          if config.jepa > 0 else None)
        # The EMA target serves the masked-prediction term and token decoding only; without them
        # (LeWM's terms, the keypoint encoder) there is nothing to copy and update every step.
        uses_target = config.jepa > 0 or (config.pooled_decode > 0 and config.decode_target == "tokens")
        self.target_encoder = copy.deepcopy(self.context_encoder).requires_grad_(False) if uses_target else None
        out_dim = patch_values if config.decode_target == "pixels" else config.dim
        self.decoder = (PooledDecoder(config.dim, config.pred_dim, config.decode_depth, config.pred_heads,
                                      config.mlp_ratio, out_dim) if config.pooled_decode > 0 else None)
        self.kp_decoder = (KeypointDecoder(img_size, config.dim // 2, config.kp_width, config.kp_sigma,
                                           config.kp_decoder_reach)
                           if config.keypoint_decode > 0 else None)
        self.id_head = nn.Sequential(nn.BatchNorm1d(config.dim), nn.Linear(config.dim, stacked)) if stacked else None
        self.fd_head = (ForwardDynamicsHead(config.dim, stacked, config.fd_hidden)
                        if stacked and config.forward_dynamics > 0 else None)
        # BatchNorm first, as in the inverse-dynamics head: the token mean's spread starts near 5e-4
        # (the common offset dominates), and without it the head sees one point and the term sits at
        # chance, log(B L - 1). Batch statistics in eval mode too (no running statistics): running
        # ones lag the moving offset, and the validation loss then reads chance while training does not.
        self.contrastive_head = (nn.Sequential(_batch_norm(config.dim), nn.Linear(config.dim, config.fd_hidden),
                                               nn.GELU(), nn.Linear(config.fd_hidden, config.contrastive_dim))
                                 if config.contrastive > 0 else None)
        if config.state_supervision > 0 and state_dim < 1:
            raise ValueError("encoder.state_supervision > 0 needs states in the data set (state_dim 0)")
        self.state_head = None
        if config.state_supervision > 0:  # a bad state_dims or state_angles fails here, named
            targets = state_targets(torch.zeros(1, state_dim), config.state_angles, config.state_dims).shape[-1]
            self.state_head = nn.Sequential(_batch_norm(config.dim), nn.Linear(config.dim, targets))
        self.register_buffer("action_mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("action_std", torch.tensor(std, dtype=torch.float32).clamp_min(1e-6))
        self._diag: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ inference
    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, 3, H, W] -> per-frame pooled context latents [B, T, D]."""
        return self.context_encoder.embed_frames(frames)

    # ------------------------------------------------------------------ losses
    def _mask_generator(self, stage: int, batch_idx: int) -> torch.Generator:
        # Seeded from (stage, step, batch, rank): reproducible, and distinct across DDP ranks.
        seed = hash((stage, int(self.global_step), int(batch_idx), int(self.global_rank)))
        return torch.Generator().manual_seed(seed & (2**63 - 1))

    def _jepa_loss(self, frames: torch.Tensor, generator: torch.Generator):
        """-> (loss, target-encoder tokens [B, N, D]): L1 to the layer-normed EMA target tokens,
        or with jepa_target=pixels MSE to the per-patch normalised pixels of the masked patches."""
        grid = self.context_encoder.grid(frames.shape[1])
        context_idx, target_idx = sample_multiblock_masks(
            frames.shape[0], grid, self.cfg.mask_blocks(), generator
        )
        context_idx, target_idx = context_idx.to(frames.device), target_idx.to(frames.device)
        with torch.no_grad():  # the target is a fixed regression target (EMA, stop-gradient)
            target_tokens = self.target_encoder(frames)  # also what the collapse diagnostics score
            if self.cfg.jepa_target == "pixels":
                target = patch_pixels(frames, self.cfg.patch_size, self.cfg.tubelet_size)
                target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            else:
                target = F.layer_norm(target_tokens.float(), (target_tokens.shape[-1],))
            target = torch.gather(target, 1, target_idx[..., None].expand(-1, -1, target.shape[-1]))
        context = self.context_encoder(frames, keep=context_idx)
        err = self.predictor(context, context_idx, target_idx, grid).float() - target
        return (err.pow(2) if self.cfg.jepa_target == "pixels" else err.abs()).mean(), target_tokens

    def _normalised_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions.float() - self.action_mean) / self.action_std

    def _inverse_dynamics_loss(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """latents [B, L, D], actions [B, L-1, s*A] -> MSE on normalised actions."""
        delta = (latents[:, 1:] - latents[:, :-1]).flatten(0, 1)  # [B*(L-1), D]
        pred = self.id_head(delta).float()
        return F.mse_loss(pred, self._normalised_actions(actions).flatten(0, 1))

    def _forward_dynamics_loss(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """latents [B, L, D], actions [B, L-1, s*A] -> MSE of the predicted next latents, with
        gradient into the targets too (LeWM: SIGReg, not a stop-gradient, prevents collapse)."""
        pred = self.fd_head(latents[:, :-1], self._normalised_actions(actions))
        return F.mse_loss(pred.float(), latents[:, 1:].float())

    def _state_loss(self, latents: torch.Tensor, batch: dict) -> torch.Tensor:
        """latents [B, L, D] -> MSE of the state head against the batch's states, as `state_targets`
        standardised over the batch (privileged; see the module docstring)."""
        if "states" not in batch:
            raise ValueError("encoder.state_supervision > 0 but the batch carries no states")
        target = state_targets(batch["states"], self.cfg.state_angles, self.cfg.state_dims).flatten(0, 1)
        target = (target - target.mean(dim=0)) / target.std(dim=0).clamp_min(1e-6)
        return F.mse_loss(self.state_head(latents.flatten(0, 1)).float(), target)

    def _decode_loss(self, frames: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """frames [B, L, ...], their pooled latents [B, L, D] -> L1 (or MSE) between each frame's
        decoded tokens and the layer-normalised target tokens of that frame encoded alone."""
        with torch.no_grad():
            if self.cfg.decode_target == "pixels":
                target = patch_pixels(frames.flatten(0, 1)[:, None], self.cfg.patch_size, 1)  # [M, Hp * Wp, 3 p p]
            else:
                target = self.target_encoder.frame_tokens(frames).float()
                target = F.layer_norm(target, (target.shape[-1],))
            if self.cfg.decode_centered:
                # What differs between the frames of the batch: the static scene (the same at
                # every frame) is taken out, so it cannot dominate the term.
                target = target - target.mean(dim=0, keepdim=True)
                target = target / target.std().clamp_min(1e-6)
        one_frame = self.context_encoder.grid(self.context_encoder.tubelet_size)  # (1, Hp, Wp)
        pred = self.decoder(latents.flatten(0, 1), one_frame)
        err = pred.float() - target
        return err.pow(2).mean() if self.cfg.decode_loss == "mse" else err.abs().mean()

    def _step(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """-> dict with "loss" (the objective, logged), "backward" (what to differentiate),
        the loss terms, "latents" [B, L, D] and "target_tokens" [B, N, D]."""
        frames, actions = batch["frames"], batch.get("actions")
        if frames.shape[1] < 2:
            raise ValueError(f"clips need at least 2 frames, got {frames.shape[1]}")
        if (actions is None) != (self.id_head is None):
            raise ValueError("batches carry actions but the module was built with action_dim 0" if self.id_head is None
                             else "batches carry no actions but the module was built with action_dim > 0")
        expected = (frames.shape[0], frames.shape[1] - 1, self.action_mean.numel())
        if actions is not None and tuple(actions.shape) != expected:
            raise ValueError(
                f"actions {tuple(actions.shape)} do not match frames {tuple(frames.shape)}: "
                f"expected [B, L-1, frameskip * A] = {expected}"
            )
        cfg = self.cfg
        if cfg.jepa > 0:
            jepa, target_tokens = self._jepa_loss(frames, generator)
        else:
            jepa, target_tokens = frames.new_zeros((), dtype=torch.float32), None

        # Per-frame pooled latents: shaped by the aux terms, scored by the diagnostics.
        id_weight = cfg.inverse_dynamics if actions is not None else 0.0
        fd_weight = cfg.forward_dynamics if actions is not None else 0.0
        shaped = (id_weight > 0 or fd_weight > 0 or cfg.sigreg > 0 or cfg.vicreg_var > 0 or cfg.vicreg_cov > 0
                  or cfg.pooled_decode > 0 or cfg.contrastive > 0 or cfg.state_supervision > 0
                  or cfg.keypoint_decode > 0 or cfg.kp_separation > 0 or cfg.kp_concentration > 0)
        with torch.set_grad_enabled(torch.is_grad_enabled() and shaped):
            if cfg.kp_concentration > 0:
                latents, spread = self.context_encoder.embed_frames(frames, with_spread=True)  # [B, L, D], [B, L, K]
                concentration = spread.mean()
            else:
                latents = self.context_encoder.embed_frames(frames)  # [B, L, D]
                concentration = latents.new_zeros(())
        if actions is None:
            id_loss = latents.new_zeros(())
        else:
            # With inverse_dynamics = 0 the head still trains, as a probe on detached latents,
            # so train/id_loss stays meaningful and DDP sees every parameter used.
            id_loss = self._inverse_dynamics_loss(latents if id_weight > 0 else latents.detach(), actions)
        var, cov = vicreg_terms(latents.flatten(0, 1))
        fd = self._forward_dynamics_loss(latents, actions) if fd_weight > 0 else latents.new_zeros(())
        sig = (sigreg_statistic(latents.flatten(0, 1), cfg.sigreg_directions, generator) if cfg.sigreg > 0
               else latents.new_zeros(()))
        inv_weight = cfg.invariance if self.global_step >= cfg.invariance_start * self.total_steps else 0.0
        if cfg.invariance > 0:
            # The clean latents are the target (detached); the batch variance that scales the term
            # is not, so the term cannot be lowered by shrinking the latent's spread.
            clean = latents.flatten(0, 1)
            pick = frames.flatten(0, 1)[: cfg.invariance_frames, None]
            perturbed = self.context_encoder.embed_frames(codec_noise(pick, CodecNoise()))[:, 0]
            scale = clean.float().var(dim=0).clamp_min(1e-12)
            inv = ((perturbed.float() - clean[: len(pick)].detach().float()).pow(2) / scale).mean()
        else:
            inv = latents.new_zeros(())
        decode = self._decode_loss(frames, latents) if self.decoder is not None else latents.new_zeros(())
        keypoint = (foreground_weighted_mse(self.kp_decoder(latents.flatten(0, 1)), frames.flatten(0, 1),
                                            cfg.kp_fg_weight)
                    if self.kp_decoder is not None else latents.new_zeros(()))
        separation = (keypoint_separation(latents.flatten(0, 1), cfg.kp_separation_width)
                      if cfg.kp_separation > 0 else latents.new_zeros(()))
        contrast = (clip_contrastive_loss(self.contrastive_head(latents.flatten(0, 1)).unflatten(0, latents.shape[:2]),
                                          cfg.contrastive_temperature)
                    if self.contrastive_head is not None else latents.new_zeros(()))
        state = self._state_loss(latents, batch) if self.state_head is not None else latents.new_zeros(())
        loss = (cfg.jepa * jepa + id_weight * id_loss + cfg.vicreg_var * var + cfg.vicreg_cov * cov
                + inv_weight * inv + cfg.pooled_decode * decode + fd_weight * fd + cfg.sigreg * sig
                + cfg.contrastive * contrast + cfg.state_supervision * state + cfg.keypoint_decode * keypoint
                + cfg.kp_separation * separation + cfg.kp_concentration * concentration)
        backward = loss if id_weight > 0 or actions is None else loss + id_loss
        return {
            "loss": loss,
            "backward": backward,
            "jepa_loss": jepa,
            "id_loss": id_loss,
            "vicreg_var": var,
            "vicreg_cov": cov,
            "invariance": inv,
            "decode_loss": decode,
            "fd_loss": fd,
            "sigreg": sig,
            "contrastive_loss": contrast,
            "state_loss": state,
            "keypoint_loss": keypoint,
            "kp_separation": separation,
            "kp_spread": concentration,
            "latents": latents,
            "target_tokens": target_tokens,
        }

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch, self._mask_generator(0, batch_idx))
        self.log("train/loss", out["loss"], prog_bar=True)
        for name in ("jepa_loss", "id_loss", "vicreg_var", "vicreg_cov", "invariance", "decode_loss", "fd_loss",
                     "sigreg", "contrastive_loss", "state_loss", "keypoint_loss", "kp_separation", "kp_spread"):
            self.log(f"train/{name}", out[name])
        return out["backward"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.target_encoder is None:
            return
        momentum = momentum_schedule(
            self.global_step, self.total_steps, self.cfg.ema_start, self.cfg.ema_end
        )
        ema_update(self.target_encoder, self.context_encoder, momentum)
        self.log("train/ema_momentum", momentum)

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._diag = {"latents": [], "states": [], "target": []}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self._step(batch, self._mask_generator(1, batch_idx))
        for name in ("loss", "jepa_loss", "id_loss", "invariance", "decode_loss", "fd_loss", "sigreg",
                     "contrastive_loss", "state_loss", "keypoint_loss", "kp_separation", "kp_spread"):
            self.log(f"val/{name}", out[name], sync_dist=True)
        self._collect_diagnostics(batch, out, batch_idx)

    def _collect_diagnostics(self, batch: dict, out: dict, batch_idx: int) -> None:
        room = self.cfg.diag_frames - sum(len(x) for x in self._diag["latents"])
        if room <= 0:
            return
        latents = out["latents"].detach().float().flatten(0, 1)[:room]  # [B*L, D]
        self._diag["latents"].append(latents.cpu())
        if "states" in batch:
            self._diag["states"].append(batch["states"].float().flatten(0, 1)[:room].cpu())
        if out["target_tokens"] is None:
            return  # jepa = 0: no target encoder in the objective, nothing of it to score
        # A random subset of target tokens, as many as frames, for the collapse indicators.
        tokens = out["target_tokens"].detach().float().flatten(0, 1)
        pick = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(batch_idx))
        self._diag["target"].append(tokens[pick[: len(latents)].to(tokens.device)].cpu())

    def on_validation_epoch_end(self) -> None:
        diag, self._diag = self._diag, {}
        if not diag.get("latents"):
            return
        latents = torch.cat(diag["latents"])
        # Each rank scores its own share; sync_dist averages the ranks' figures.
        metrics = {"val/latent_std": feature_std(latents), "val/latent_eff_rank": effective_rank(latents)}
        if diag["target"]:
            target = torch.cat(diag["target"])
            metrics.update({"val/target_std": feature_std(target), "val/target_eff_rank": effective_rank(target)})
        states = torch.cat(diag["states"]) if diag["states"] else None
        if states is not None and len(states) >= 4:
            # Fit on the first half, score on the second: with an unshuffled val loader the
            # halves hold different (held-out) episodes.
            half = len(latents) // 2
            probe = RidgeProbe().fit(latents[:half], states[:half])
            metrics["val/probe_r2"] = probe.r2(latents[half:], states[half:])
            metrics["val/dist_spearman"] = distance_rank_correlation(latents, states)
        for name, value in metrics.items():
            self.log(name, value, sync_dist=True)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue  # the target encoder follows by EMA
            # Norm weights, biases and the mask token are not shrunk (ViT / I-JEPA recipe).
            (no_decay if param.ndim < 2 or name.endswith("mask_token") else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.lr,
        )
        warmup, total = self.cfg.warmup_steps, self.total_steps

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _batch_norm(dim: int) -> nn.BatchNorm1d:
    """BatchNorm of a loss head: batch statistics in training and in validation alike."""
    return nn.BatchNorm1d(dim, track_running_stats=False)


def _stacked_stats(values, action_dim: int, frameskip: int, name: str) -> list[float]:
    """Per-step stats (A values) are tiled over the frameskip; stacked ones (s*A) kept."""
    values = [float(v) for v in values]
    if len(values) == action_dim:
        return values * frameskip
    if len(values) == action_dim * frameskip:
        return values
    raise ValueError(
        f"{name} has {len(values)} values; expected action_dim ({action_dim}) "
        f"or frameskip * action_dim ({frameskip * action_dim})"
    )
