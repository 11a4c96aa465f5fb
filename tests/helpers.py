"""Shared test settings: a tiny run that trains both stages on CPU in seconds."""

from pathlib import Path


def tiny_overrides(tmp: Path, steps: int = 4) -> list[str]:
    return [
        f"output_dir={tmp / 'run'}", f"data.dir={tmp / 'data'}",
        "data.episodes=16", "data.episode_steps=20", "data.batch_size=8", "data.val_fraction=0.25",
        "env.resolution=32",
        "encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "encoder.pred_dim=16", "encoder.pred_depth=1",
        "encoder.pred_heads=2", "encoder.warmup_steps=1", "encoder.diag_frames=64",
        "world_model.hidden=32", "world_model.layers=2", "world_model.batch_size=16", "world_model.warmup_steps=1",
        "world_model.diag_horizon=3", "world_model.rollout_steps=2",
        f"trainer.max_steps={steps}", "trainer.val_check_interval=2", "trainer.checkpoint_every_n_steps=2",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1",
        "logger.wandb.mode=disabled",
    ]
