"""Training the action-conditioned predictor on frozen-encoder latents (V-JEPA 2-AC style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning import LightningModule

from world_models.diagnostics import planning_readiness
from world_models.latents import LatentSplit
from world_models.world_model import build_predictor, predictor_rollout


class WorldModelModule(LightningModule):
    """Loss = teacher-forced L1 on next latents + L1 of a `rollout_steps` autoregressive rollout.

    Batches: "z" [B, K+1, D] standardised latents, "a" [B, K, A] normalised model actions.
    Teacher forcing predicts every z_{t+1} of the window from its own (up to) k frames; the
    rollout starts from the window's first k frames (history k) and runs on its own
    predictions, for `rollout_steps` steps or as many as the window holds
    (`latents.window_steps` sizes windows for both).
    """

    def __init__(self, cfg: dict, latent_dim: int, action_dim: int):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = cfg
        self.predictor = build_predictor(cfg, latent_dim, action_dim)
        self.diagnostics_data: dict | None = None  # set by the training wiring; not saved
        self.probe_groups: dict[str, list[int]] | None = None  # readiness error groups (Env.PROBE_GROUPS)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        z, a = batch["z"], batch["a"]
        context = min(self.predictor.history, a.shape[1]) - 1  # frames before the rollout's z_0
        k = min(self.cfg["rollout_steps"], a.shape[1] - context)
        teacher = F.l1_loss(self.predictor(z[:, :-1], a), z[:, 1:])
        past = (z[:, :context], a[:, :context]) if context else (None, None)
        rollout = predictor_rollout(self.predictor, z[:, context], a[:, context:context + k], *past)
        rollout_loss = F.l1_loss(rollout, z[:, context + 1:context + k + 1])
        return {"loss": teacher + self.cfg["rollout_weight"] * rollout_loss,
                "teacher_loss": teacher, "rollout_loss": rollout_loss}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log("train/loss", out["loss"], prog_bar=True)
        self.log("train/teacher_loss", out["teacher_loss"])
        self.log("train/rollout_loss", out["rollout_loss"])
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.losses(batch)
        for name, value in out.items():
            self.log(f"val/{name}", value, prog_bar=name == "loss", sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.diagnostics_data is None or self.trainer.sanity_checking:
            return
        self.log_dict({f"val/{k}": v for k, v in self.readiness().items()}, rank_zero_only=True)

    def readiness(self) -> dict[str, float]:
        d = self.diagnostics_data
        train: LatentSplit = d["train"]
        val: LatentSplit = d["val"]
        was_training = self.predictor.training
        self.predictor.eval()
        probe_rows = torch.randperm(len(train.z), generator=torch.Generator().manual_seed(0))[:20000]

        def rollout(z0, actions, past_z=None, past_a=None):
            on_device = [None if x is None else x.to(self.device) for x in (z0, actions, past_z, past_a)]
            return predictor_rollout(self.predictor, *on_device).float().cpu()

        result = planning_readiness(
            rollout, train.z[probe_rows], train.states[probe_rows], val.batch(torch.arange(len(val))),
            val.z, val.states, ridge_alpha=self.cfg["ridge_alpha"], history=self.predictor.history,
            groups=self.probe_groups)
        self.predictor.train(was_training)
        return result

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.predictor.parameters(), lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        total = max(1, self.trainer.max_steps if self.trainer.max_steps > 0 else self.cfg["max_steps"])
        warmup = min(self.cfg["warmup_steps"], total // 10 + 1)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}
