"""Frozen-encoder latents of whole episodes, cut into training windows, and the basis the
world model and planners see them in.

The encoder is frozen while the predictor trains, so every frame is encoded once and the
predictor trains on the cached vectors (minutes on CPU instead of hours).

The basis (`latent_basis`): the pooled latent of a small encoder spreads its state signal
thinly (raw std about 1e-3), and per-dimension standardisation amplified what a video round
trip changes as much as the signal: a frame and its AV1 copy sat 18 model steps of motion
apart (docs/data.md). The basis keeps the subspace along which the data spreads at least
`nuisance_ratio` times more than codec-like perturbations (`encoders.augment.codec_noise`)
move the latent (a generalised eigenproblem between the latents' covariance and the
perturbations' second moment), and projects the standardised latent onto it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from encoders.augment import codec_noise


@torch.no_grad()
def encode_episodes(encoder, episodes: Iterable, batch_frames: int = 512, device: str | torch.device = "cpu") -> dict:
    """Encode every frame of every episode with `encoder.embed_frames`.

    `episodes` yields objects with `frames` uint8 [T,H,W,3], `actions` [T,A], `states` [T,S]
    or None (lazy frames, memory-mapped or decoded, are read a chunk at a time). Returns flat tensors
    `latents [N,D]`, `actions [N,A]`, `states [N,S]` and `lengths [E]`.
    """
    # Rows go into buffers that double when full, not lists of one small tensor per chunk or episode:
    # small long-lived blocks between the encoder's large transient ones keep glibc from giving freed
    # memory back (its mmap threshold rises after the first large frees). With lists, encoding 3,000
    # Push-T episodes peaked at 19 GB of RSS.
    latents, actions, states, lengths = _Rows(), _Rows(), _Rows(), []
    encoder = encoder.to(device).eval()
    for ep in episodes:
        for start in range(0, len(ep.frames), batch_frames):
            chunk = torch.from_numpy(np.array(ep.frames[start:start + batch_frames]))  # copy out of the mmap
            chunk = chunk.permute(0, 3, 1, 2).unsqueeze(1).to(device)  # [n,1,3,H,W]: frames encoded alone
            latents.add(encoder.embed_frames(chunk)[:, 0].float().cpu())
        actions.add(torch.as_tensor(np.asarray(ep.actions, dtype=np.float32)))
        # An episode without states contributes [T, 0]: diagnostics that need states switch off.
        states.add(torch.zeros(len(ep.frames), 0) if ep.states is None
                   else torch.as_tensor(np.asarray(ep.states, dtype=np.float32)))
        lengths.append(len(ep.frames))
    if not lengths:
        raise ValueError("encode_episodes: no episodes to encode")
    return {"latents": latents.rows(), "actions": actions.rows(), "states": states.rows(),
            "lengths": torch.tensor(lengths)}


class _Rows:
    """Float32 rows [n, k] appended in blocks into one buffer that doubles when full."""

    def __init__(self):
        self.buffer, self.filled = None, 0

    def add(self, block: torch.Tensor) -> None:
        if self.buffer is None or self.filled + len(block) > len(self.buffer):
            size = max(2 * (0 if self.buffer is None else len(self.buffer)), self.filled + len(block), 1024)
            grown = torch.empty(size, block.shape[-1])
            if self.filled:
                grown[:self.filled] = self.buffer[:self.filled]
            self.buffer = grown
        self.buffer[self.filled:self.filled + len(block)] = block
        self.filled += len(block)

    def rows(self) -> torch.Tensor:
        return self.buffer[:self.filled].clone()


@torch.no_grad()
def perturbation_shifts(encoder, episodes: list, frames: int, noise, seed: int = 0,
                        device: str | torch.device = "cpu") -> torch.Tensor:
    """embed(codec_noise(x)) - embed(x) for about `frames` frames spread evenly over `episodes`
    (objects with lazy `frames` uint8 [T,H,W,3]) -> [M, D]; the draws are seeded."""
    per = max(1, -(-frames // max(len(episodes), 1)))
    shifts = []
    encoder = encoder.to(device).eval()
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # seeded draws that leave the run's RNG as it was
        torch.manual_seed(seed)
        for ep in episodes:
            pick = np.unique(np.linspace(0, len(ep.frames) - 1, per).round().astype(int))
            x = torch.from_numpy(np.stack([np.asarray(ep.frames[int(i)]) for i in pick]))
            x = x.permute(0, 3, 1, 2).unsqueeze(1).to(device)  # [n,1,3,H,W]
            shifts.append((encoder.embed_frames(codec_noise(x, noise)) - encoder.embed_frames(x))[:, 0].float().cpu())
    return torch.cat(shifts)[:frames]


def latent_basis(latents: torch.Tensor, shifts: torch.Tensor | None, nuisance_ratio: float,
                 whiten_floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw latents [N, D] and perturbation shifts [M, D] -> (mean [D], projection [D, k],
    signal-to-nuisance variance ratio of each kept direction [k]).

    The model's latents are `(raw - mean) @ projection`: standardised per dimension, then
    projected orthogonally onto the span of the k directions along which the data spreads at
    least `nuisance_ratio` times more than the shifts (a generalised eigenproblem). With
    `nuisance_ratio` 0 (or no shifts) it is per-dimension standardisation, k = D, ratios NaN.

    `whiten_floor` > 0 then turns that latent onto its principal axes and scales each axis of
    variance v by 1 / sqrt(v + whiten_floor): axes well above the floor get unit variance, axes
    below it stay small. Standardising each dimension alone leaves a state that moves the
    latent along minor axes nearly invisible to the world model's loss and to the planner's
    distance: a keypoint latent holds a rigid block's angle in axes of variance 0.02-0.04 of
    32 (docs/results.md). The ratios then no longer match the columns one to one.
    """
    mean = latents.mean(0)
    if nuisance_ratio <= 0 or shifts is None:
        std = latents.std(0).clamp_min(1e-6)
        proj, ratios = torch.diag(1.0 / std), torch.full_like(std, float("nan"))
    else:
        proj, ratios = _signal_span(latents, mean, shifts, nuisance_ratio)
    if whiten_floor > 0:
        proj = proj @ _whitening((latents - mean) @ proj, whiten_floor)
    return mean, proj, ratios


def principal_axes(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents [N, k] -> (variance along each principal axis [k], the axes as columns [k, k]),
    largest first, in float64."""
    variance, axes = torch.linalg.eigh(torch.cov(z.double().T).reshape(z.shape[1], z.shape[1]))
    order = variance.argsort(descending=True)
    return variance[order].clamp_min(0), axes[:, order]


def _whitening(z: torch.Tensor, floor: float) -> torch.Tensor:
    """Latents [N, k] -> [k, k]: rotate onto their principal axes (largest first) and scale
    the axis of variance v by 1 / sqrt(v + floor)."""
    variance, axes = principal_axes(z)
    return (axes / (variance + floor).sqrt()).float()


def _signal_span(latents: torch.Tensor, mean: torch.Tensor, shifts: torch.Tensor, nuisance_ratio: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`latent_basis`'s projection onto the directions that spread `nuisance_ratio` times more
    than the shifts, and their ratios."""
    x = latents.double() - mean.double()
    signal = x.T @ x / max(len(x) - 1, 1)
    d = shifts.double()
    # The uncentred second moment: a perturbation's systematic shift is nuisance too.
    nuisance = d.T @ d / max(len(d), 1)
    nuisance += torch.eye(len(nuisance), dtype=torch.float64) * (1e-6 * nuisance.trace() / len(nuisance) + 1e-30)
    inv_chol = torch.linalg.inv(torch.linalg.cholesky(nuisance))
    ratios, vectors = torch.linalg.eigh(inv_chol @ signal @ inv_chol.T)
    order = ratios.argsort(descending=True)
    ratios, basis = ratios[order], inv_chol.T @ vectors[:, order]  # basis.T @ nuisance @ basis = I
    keep = ratios >= nuisance_ratio
    if not keep.any():
        raise ValueError(
            f"no latent direction spreads over the data {nuisance_ratio} times more than codec-like noise "
            f"moves it (best ratio {ratios[0].item():.2f}): lower world_model.nuisance_ratio, or 0 for "
            "per-dimension standardisation"
        )
    # Orthogonal projection of the per-dimension standardised latent onto the span of the kept
    # directions: the planner's distances stay those of standardised latents, inside a subspace
    # the noise barely reaches. (Whitening each direction to unit variance instead weighted
    # minor directions like the main ones: latent/true distance rank correlation 0.71 against
    # 0.96 on the AV1-trained two_rooms model.)
    std = latents.std(0).clamp_min(1e-6)
    span, _ = torch.linalg.qr(basis[:, keep].float() * std[:, None])
    return span / std[:, None], ratios[keep].float()


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


def window_steps(cfg: dict) -> int:
    """Transitions per training window for a world-model config: a history-k predictor needs
    k - 1 frames of context before the loss rollout (`rollout_steps`) and the diagnostics
    (`diag_horizon`) start; `windows(lengths, frameskip, window_steps(cfg))`. For k = 1 it is
    max(rollout_steps, diag_horizon), the Markov recipe's windows."""
    return max(cfg["rollout_steps"], cfg["diag_horizon"]) + cfg.get("history", 1) - 1


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
