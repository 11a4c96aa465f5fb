"""Frozen-encoder latents of whole episodes, cut into training windows.

The encoder is frozen while the predictor trains, so every frame is encoded once and the
predictor trains on the cached vectors (minutes on CPU instead of hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch


@torch.no_grad()
def encode_episodes(encoder, episodes: Iterable, batch_frames: int = 512, device: str | torch.device = "cpu") -> dict:
    """Encode every frame of every episode with `encoder.embed_frames`.

    `episodes` yields objects with `frames` uint8 [T,H,W,3], `actions` [T,A], `states` [T,S]
    or None (lazy frames, memory-mapped or decoded, are read a chunk at a time). Returns flat tensors
    `latents [N,D]`, `actions [N,A]`, `states [N,S]` and `lengths [E]`.
    """
    latents, actions, states, lengths = [], [], [], []
    encoder = encoder.to(device).eval()
    for ep in episodes:
        for start in range(0, len(ep.frames), batch_frames):
            chunk = torch.from_numpy(np.array(ep.frames[start:start + batch_frames]))  # copy out of the mmap
            chunk = chunk.permute(0, 3, 1, 2).unsqueeze(1).to(device)  # [n,1,3,H,W]: frames encoded alone
            latents.append(encoder.embed_frames(chunk)[:, 0].float().cpu())
        actions.append(torch.from_numpy(np.asarray(ep.actions, dtype=np.float32)))
        # An episode without states contributes [T, 0]: diagnostics that need states switch off.
        states.append(torch.zeros(len(ep.frames), 0) if ep.states is None
                      else torch.from_numpy(np.asarray(ep.states, dtype=np.float32)))
        lengths.append(len(ep.frames))
    return {"latents": torch.cat(latents), "actions": torch.cat(actions), "states": torch.cat(states),
            "lengths": torch.tensor(lengths)}


def stack_actions(actions: torch.Tensor, lengths: torch.Tensor, frameskip: int) -> torch.Tensor:
    """Model action at every frame: the next `frameskip` env actions flattened, [N, s*A].

    Rows whose window runs past their episode's end are NaN and never indexed by `windows`.
    """
    n, a = actions.shape
    out = torch.full((n, frameskip * a), float("nan"))
    offset = 0
    for length in lengths.tolist():
        ep = actions[offset:offset + length]
        valid = length - frameskip + 1
        if valid > 0:
            out[offset:offset + valid] = ep.unfold(0, frameskip, 1).transpose(1, 2).reshape(valid, -1)
        offset += length
    return out


def windows(lengths: torch.Tensor, frameskip: int, steps: int) -> torch.Tensor:
    """Flat frame indices of every window of `steps + 1` frames `frameskip` apart: [M, steps+1]."""
    span = frameskip * steps
    starts, offset = [], 0
    for length in lengths.tolist():
        if length > span:
            starts.append(torch.arange(offset, offset + length - span))
        offset += length
    if not starts:
        raise ValueError(f"no episode is longer than frameskip*steps = {span} frames")
    return torch.cat(starts)[:, None] + frameskip * torch.arange(steps + 1)


@dataclass
class LatentSplit:
    """Standardised latents and normalised model actions of one split, with window indices."""

    z: torch.Tensor  # [N, D] standardised
    a: torch.Tensor  # [N, s*A] normalised model action taken at each frame
    states: torch.Tensor  # [N, S]
    index: torch.Tensor  # [M, K+1] window frame indices

    def batch(self, rows: torch.Tensor) -> dict:
        idx = self.index[rows]
        return {"z": self.z[idx], "a": self.a[idx[:, :-1]], "states": self.states[idx]}

    def __len__(self) -> int:
        return len(self.index)
