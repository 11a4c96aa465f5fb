"""Clips of T frames with frameskip, served from any data source; train/val split by episode."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jepa_plan.data.episodes import EpisodeStore
from jepa_plan.data.source import DatasetError, DataSource, EpisodeError


class ClipDataset(Dataset):
    """Every clip of `clip_len` frames `frameskip` source frames apart, in the given episodes.

    Item: "frames" uint8 [L, 3, H, W]; when the source has them, "actions" float32
    [L-1, frameskip * A] (the actions between consecutive clip frames, stacked) and "states"
    float32 [L, S].

    A file that passed validation but fails to decode later (a bad block in the middle of a
    video) does not stop the run: its episode is left out for the rest of the run in this
    process, with one warning naming it, and the clip is served from the next episode.
    """

    RETRIES = 8  # episodes tried in a row before the failure is the data set's, not one file's

    def __init__(self, source: DataSource, names: list[str], clip_len: int = 2, frameskip: int = 1):
        if clip_len < 2:
            raise ValueError(f"clip_len={clip_len}: a clip needs at least 2 frames")
        if frameskip < 1:
            raise ValueError(f"frameskip={frameskip} must be at least 1")
        self.source, self.clip_len, self.frameskip = source, clip_len, frameskip
        self.span = (clip_len - 1) * frameskip + 1  # frames a clip covers
        short = [n for n in names if source.lengths[n] < self.span]
        self.names = [n for n in names if source.lengths[n] >= self.span]
        if not self.names:
            raise ValueError(f"clip_len={clip_len} with frameskip={frameskip} needs {self.span} frames per episode; "
                             f"no episode of {source.root} is that long (longest: {max(source.lengths.values())})")
        if short:
            warnings.warn(f"excluding {len(short)} episodes shorter than {self.span} frames: "
                          f"{', '.join(short[:5])}{' ...' if len(short) > 5 else ''}", UserWarning, stacklevel=2)
        counts = np.array([source.lengths[n] - self.span + 1 for n in self.names])
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.failed: dict[str, str] = {}  # episode -> reason, for episodes that failed mid-run here

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[str, int]:
        """Flat clip index -> (episode name, start frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range [0, {len(self)})")
        ep = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.names[ep], int(index - self.offsets[ep])

    def clip(self, name: str, start: int) -> dict[str, torch.Tensor]:
        episode = self.source.episode(name)
        picks = start + self.frameskip * np.arange(self.clip_len)
        frames = np.asarray(episode.frames[picks])  # reads or decodes only these frames
        item = {"frames": torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()}
        if episode.actions is not None:
            actions = np.asarray(episode.actions[start:picks[-1]], dtype=np.float32)
            item["actions"] = torch.from_numpy(np.ascontiguousarray(actions.reshape(self.clip_len - 1, -1)))
        if episode.states is not None:
            item["states"] = torch.from_numpy(np.ascontiguousarray(episode.states[picks], dtype=np.float32))
        return item

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        name, start = self.locate(index)
        for _ in range(self.RETRIES):
            if name not in self.failed:
                try:
                    return self.clip(name, start)
                except EpisodeError as err:
                    self.failed[name] = str(err)
                    warnings.warn(f"leaving {name} out of this run: {err}", UserWarning, stacklevel=2)
            name, start = self.names[(self.names.index(name) + 1) % len(self.names)], 0
        raise DatasetError(f"{self.source.root}: {self.RETRIES} episodes in a row failed to read; the last: "
                           f"{name}: {self.failed.get(name)}")


class ClipDataModule(L.LightningDataModule):
    """Opens a data source, splits it by episode (seeded), and serves `ClipDataset` loaders.

    `source` is any `DataSource`, or the path of an episode data set. Action statistics
    (`action_mean`, `action_std`, per action dim) come from the train episodes only, read one
    episode at a time; a source without actions has `action_dim` 0.
    """

    def __init__(self, source: DataSource | str | Path, clip_len: int = 2, frameskip: int = 1, batch_size: int = 64,
                 val_fraction: float = 0.1, num_workers: int = 0, seed: int = 0, max_bad_fraction: float = 0.05,
                 train_episodes: int | None = None):
        super().__init__()
        if clip_len < 2:
            raise ValueError(f"clip_len={clip_len} must be at least 2")
        if frameskip < 1:
            raise ValueError(f"frameskip={frameskip} must be at least 1")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction} must lie in (0, 1)")
        if train_episodes is not None and train_episodes < 1:
            raise ValueError(f"train_episodes={train_episodes} must be at least 1")
        self.source_arg, self.clip_len, self.frameskip = source, clip_len, frameskip
        self.batch_size, self.val_fraction, self.num_workers = batch_size, val_fraction, num_workers
        self.seed, self.max_bad_fraction, self.train_episodes = seed, max_bad_fraction, train_episodes
        self.store: DataSource | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:  # Lightning calls setup again per stage; the split is fixed
            return
        source = self.source_arg
        if isinstance(source, (str, Path)):
            source = EpisodeStore(source, max_bad_fraction=self.max_bad_fraction)
        if len(source.names) < 2:
            raise ValueError(f"{source.root}: need at least 2 usable episodes to split train from val, "
                             f"found {len(source.names)}")
        order = np.random.default_rng(self.seed).permutation(len(source.names))
        n_val = min(max(1, round(self.val_fraction * len(source.names))), len(source.names) - 1)
        self.val_names = sorted(source.names[i] for i in order[:n_val])
        train = order[n_val:]
        if self.train_episodes is not None:
            if self.train_episodes > len(train):
                raise ValueError(f"{source.root}: data.train_episodes={self.train_episodes}, but its train split "
                                 f"holds {len(train)} episodes ({len(source.names)} usable, {n_val} held out)")
            train = train[:self.train_episodes]  # the val split is the whole data set's, whatever N
        self.train_names = sorted(source.names[i] for i in train)
        self.train_set = ClipDataset(source, self.train_names, self.clip_len, self.frameskip)
        self.val_set = ClipDataset(source, self.val_names, self.clip_len, self.frameskip)
        # The range the train actions span: the planner's box when the data set records none.
        self.action_mean, self.action_std, self.action_low, self.action_high = action_moments(source, self.train_names)
        self.store = source

    def _need_setup(self) -> DataSource:
        if self.store is None:
            raise RuntimeError("ClipDataModule: call setup() before reading data properties")
        return self.store

    @property
    def action_dim(self) -> int:
        self._need_setup()
        return len(self.action_mean)

    @property
    def state_dim(self) -> int:
        store = self._need_setup()
        if not store.has_states:
            return 0
        return int(store.episode(self.train_names[0]).states.shape[1])

    @property
    def image_size(self) -> int:
        return int(self._need_setup().image_size)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self._need_setup().skipped

    def _loader(self, dataset: ClipDataset, train: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, drop_last=train,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)


def action_stats(source: DataSource, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the actions of `names`, one episode in memory at a time
    (float64 sums); empty arrays for a source without actions."""
    return action_moments(source, names)[:2]


def action_moments(source: DataSource, names: list[str]) -> tuple[np.ndarray, ...]:
    """(mean, std, min, max) per action dimension of `names`, in one pass over their episodes."""
    if not source.has_actions:
        return np.zeros(0, np.float32), np.ones(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    total, total_sq, count, low, high = 0.0, 0.0, 0, np.inf, -np.inf
    for name in names:
        actions = np.asarray(source.episode(name).actions, dtype=np.float64)
        total, total_sq, count = total + actions.sum(0), total_sq + (actions ** 2).sum(0), count + len(actions)
        low, high = np.minimum(low, actions.min(0)), np.maximum(high, actions.max(0))
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    return (mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32),
            low.astype(np.float32), high.astype(np.float32))
