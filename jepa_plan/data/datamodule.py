"""Clips of T frames with frameskip, served from an `EpisodeStore`; train/val split by episode."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jepa_plan.data.episodes import EpisodeStore


class ClipDataset(Dataset):
    """Every clip of `clip_len` frames `frameskip` env steps apart, in the given episodes.

    Item: "frames" uint8 [L, 3, H, W], "actions" float32 [L-1, frameskip * A] (the env
    actions between consecutive clip frames, stacked), "states" float32 [L, S].
    """

    def __init__(self, store: EpisodeStore, names: list[str], clip_len: int = 2, frameskip: int = 1):
        if clip_len < 2:
            raise ValueError(f"clip_len={clip_len}: a clip needs at least 2 frames")
        if frameskip < 1:
            raise ValueError(f"frameskip={frameskip} must be at least 1")
        self.store, self.clip_len, self.frameskip = store, clip_len, frameskip
        self.span = (clip_len - 1) * frameskip + 1  # frames a clip covers
        short = [n for n in names if store.lengths[n] < self.span]
        self.names = [n for n in names if store.lengths[n] >= self.span]
        if not self.names:
            raise ValueError(f"clip_len={clip_len} with frameskip={frameskip} needs {self.span} frames per episode; "
                             f"no episode of {store.root} is that long (longest: {max(store.lengths.values())})")
        if short:
            warnings.warn(f"excluding {len(short)} episodes shorter than {self.span} frames: "
                          f"{', '.join(short[:5])}{' ...' if len(short) > 5 else ''}", UserWarning, stacklevel=2)
        counts = np.array([store.lengths[n] - self.span + 1 for n in self.names])
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[str, int]:
        """Flat clip index -> (episode name, start frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range [0, {len(self)})")
        ep = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.names[ep], int(index - self.offsets[ep])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        name, start = self.locate(index)
        episode = self.store.episode(name)
        picks = start + self.frameskip * np.arange(self.clip_len)
        frames = np.array(episode.frames[picks])  # copies only these frames out of the map
        actions = episode.actions[start:picks[-1]].reshape(self.clip_len - 1, -1)
        return {
            "frames": torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
            "actions": torch.from_numpy(np.ascontiguousarray(actions, dtype=np.float32)),
            "states": torch.from_numpy(np.ascontiguousarray(episode.states[picks], dtype=np.float32)),
        }


class EpisodeDataModule(L.LightningDataModule):
    """Opens a data set, splits it by episode (seeded), and serves `ClipDataset` loaders.

    Action statistics (`action_mean`, `action_std`, per env action dim) come from the train
    episodes only.
    """

    def __init__(self, root: str, clip_len: int = 2, frameskip: int = 1, batch_size: int = 64,
                 val_fraction: float = 0.1, num_workers: int = 0, seed: int = 0, max_bad_fraction: float = 0.05):
        super().__init__()
        if clip_len < 2:
            raise ValueError(f"clip_len={clip_len} must be at least 2")
        if frameskip < 1:
            raise ValueError(f"frameskip={frameskip} must be at least 1")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction} must lie in (0, 1)")
        self.root, self.clip_len, self.frameskip = root, clip_len, frameskip
        self.batch_size, self.val_fraction, self.num_workers = batch_size, val_fraction, num_workers
        self.seed, self.max_bad_fraction = seed, max_bad_fraction
        self.store: EpisodeStore | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:  # Lightning calls setup again per stage; the split is fixed
            return
        store = EpisodeStore(self.root, max_bad_fraction=self.max_bad_fraction)
        if len(store) < 2:
            raise ValueError(f"{self.root}: need at least 2 usable episodes to split train from val, found {len(store)}")
        order = np.random.default_rng(self.seed).permutation(len(store))
        n_val = min(max(1, round(self.val_fraction * len(store))), len(store) - 1)
        self.val_names = sorted(store.names[i] for i in order[:n_val])
        self.train_names = sorted(store.names[i] for i in order[n_val:])
        self.train_set = ClipDataset(store, self.train_names, self.clip_len, self.frameskip)
        self.val_set = ClipDataset(store, self.val_names, self.clip_len, self.frameskip)
        actions = np.concatenate([store.episode(n).actions for n in self.train_names])
        self.action_mean = actions.mean(axis=0).astype(np.float32)
        self.action_std = np.maximum(actions.std(axis=0), 1e-6).astype(np.float32)
        self.store = store

    def _need_setup(self) -> EpisodeStore:
        if self.store is None:
            raise RuntimeError("EpisodeDataModule: call setup() before reading data properties")
        return self.store

    @property
    def action_dim(self) -> int:
        return int(self._need_setup().episode(self.train_names[0]).actions.shape[1])

    @property
    def state_dim(self) -> int:
        return int(self._need_setup().episode(self.train_names[0]).states.shape[1])

    @property
    def image_size(self) -> int:
        return int(self._need_setup().episode(self.train_names[0]).frames.shape[1])

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
