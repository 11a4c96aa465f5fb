"""What training may read: the data-source protocol, and the config every source shares.

A data source is a set of named episodes. An episode is

    frames   lazy [T, H, W, 3] uint8 at the source's square `image_size`: `len(frames)`,
             `frames.shape`, and `frames[i]`, `frames[a:b]` or `frames[int array]` decode or map
             only the frames asked for; never read whole unless asked
    actions  float32 [T, A], the action taken at frame t, or None (action-free video)
    states   float32 [T, S], the true state at frame t, or None (no diagnostics, no dataset goals)

Sources (`data=<name>`, registry `jepa_plan.data.SOURCES`):
- `episodes`: the project's own episode folders (`jepa_plan.data.episodes`);
- `video_folder`: every video file under a folder, action-free (encoder pretraining only);
- `lerobot`: a LeRobot data set on local disk, layout v3.0 or v2.1.

Every source validates its files when it opens: a bad file is skipped with a warning naming it
and the reason, and listed in `skipped` as (file or episode, reason); more than
`max_bad_fraction` bad, or nothing usable, stops before training with the list.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np


class EpisodeError(ValueError):
    """One episode or file is missing, corrupt or inconsistent; the message names the file."""


class DatasetError(ValueError):
    """A data set as a whole cannot be used (no index, too many bad files); the message says why."""


@dataclass
class Episode:
    frames: "Frames"  # lazy uint8 [T, H, W, 3]
    actions: Optional[np.ndarray]  # float32 [T, A], or None for action-free video
    states: Optional[np.ndarray]  # float32 [T, S], or None

    def __len__(self) -> int:
        return len(self.frames)


class Frames(Protocol):
    """A lazy frame sequence: a memory map, or a video decoded on demand."""

    shape: tuple[int, int, int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, index) -> np.ndarray: ...


class DataSource(Protocol):
    root: Path
    names: list[str]  # usable episodes, sorted
    lengths: dict[str, int]  # frames per usable episode
    skipped: list[tuple[str, str]]  # (file or episode, reason) of everything left out
    image_size: int  # frames are served square at this size
    has_actions: bool
    has_states: bool
    action_low: Optional[list[float]]  # the action box, when the data set records one
    action_high: Optional[list[float]]
    env: Optional[dict]  # {"name", "resolution", ...} of the env the data came from, if recorded

    def episode(self, name: str) -> Episode: ...

    def summary(self) -> str: ...  # what was used, and every skipped file with its reason (the run log)


@dataclass
class ClipConfig:
    """How clips are cut and served, for every source (`data.<key>=` on the command line)."""

    name: str = "episodes"
    clip_len: int = 2  # frames per encoder clip
    frameskip: int = 2  # source frames per model step; actions of the skipped frames are stacked
    batch_size: int = 64
    val_fraction: float = 0.1
    # Train on only this many of the train split's episodes (a seeded random subset); the val
    # split, and so every dataset goal, stays the one of the whole data set: a data-size ablation.
    train_episodes: Optional[int] = None
    num_workers: int = 0  # DataLoader workers; each opens its own decoders
    max_bad_fraction: float = 0.05  # more bad episodes or files than this stops the run
    cache: Optional[str] = None  # video sources: decode once into uint8 shards under this folder


def report_skips(root: Path | str, skipped: list[tuple[str, str]], total: int, max_bad_fraction: float) -> None:
    """Warn once per skipped item; fail when too many (or all) are bad, listing them."""
    for item, reason in skipped:
        warnings.warn(f"skipping {item}: {reason}", UserWarning, stacklevel=3)
    if not skipped:
        return
    listed = "\n  ".join(f"{item}: {reason}" for item, reason in skipped[:20])
    more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    if len(skipped) >= total:
        raise DatasetError(f"{root}: every one of its {total} episodes or files is bad:\n  {listed}{more}")
    if len(skipped) > max_bad_fraction * total:
        raise DatasetError(f"{root}: {len(skipped)} of {total} episodes or files are bad (more than "
                           f"max_bad_fraction={max_bad_fraction}):\n  {listed}{more}")


def first_bad_value(array: np.ndarray) -> Optional[tuple[int, int, float]]:
    """(row, column, value) of the first non-finite entry of a 2-D array, or None."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    return int(row), int(col), float(array[row, col])
