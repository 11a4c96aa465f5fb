"""Training the action-conditioned predictor on frozen-encoder latents (V-JEPA 2-AC style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning import LightningModule

from world_models.diagnostics import planning_readiness
from world_models.latents import LatentSplit
from world_models.world_model import build_predictor


class WorldModelModule(LightningModule):
    """Loss = teacher-forced L1 on next latents + L1 of a `rollout_steps` autoregressive rollout.

    Batches: "z" [B, K+1, D] standardised latents, "a" [B, K, A] normalised model actions.
    """

    def __init__(self, cfg: dict, latent_dim: int, action_dim: int):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = cfg
        self.predictor = build_predictor(cfg, latent_dim, action_dim)
        self.diagnostics_data: dict | None = None  # set by the training wiring; not saved

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        z, a = batch["z"], batch["a"]
        k = min(self.cfg["rollout_steps"], a.shape[1])
        teacher = F.l1_loss(self.predictor(z[:, :-1], a), z[:, 1:])
        pred, rollout = z[:, 0], []
        for t in range(k):
            pred = self.predictor(pred, a[:, t])
            rollout.append(pred)
        rollout_loss = F.l1_loss(torch.stack(rollout, 1), z[:, 1:k + 1])
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
        result = planning_readiness(
            lambda z, a: self.predictor(z.to(self.device), a.to(self.device)).float().cpu(),
            train.z[probe_rows], train.states[probe_rows], val.batch(torch.arange(len(val))),
            val.z, val.states, ridge_alpha=self.cfg["ridge_alpha"])
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
