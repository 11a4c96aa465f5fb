"""Keep every W&B file of a run inside the run's folder, never under $HOME (DESIGN.md)."""

from __future__ import annotations

import os
from pathlib import Path


def keep_wandb_files_in(out: Path) -> None:
    """Point W&B's run, cache, config and data folders under `out` (unless the user set them)."""
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "wandb/.cache"),
                     ("WANDB_CONFIG_DIR", "wandb/.config"), ("WANDB_DATA_DIR", "wandb/.data")):
        os.environ.setdefault(var, str((out / sub).resolve()))
