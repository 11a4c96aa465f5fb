"""Pixel perturbations of the kind a lossy video round trip makes, batched in torch.

A data set arrives as video (LeRobot writes AV1 4:2:0) while an env renders clean frames, so a
goal image and the observation of the same state differ by such a perturbation. A small
encoder's pooled latent moved by a step of motion's worth under a near-lossless H.264 round
trip (docs/data.md). `codec_noise` draws perturbations of that kind: 4:2:0 chroma subsampling,
a small blur, a per-channel level shift and sensor-like noise, each with its own random
strength per frame, quantised back to uint8 as a decoder does. The world-model stage measures
which latent directions they move and leaves those out of the planner's latent
(`world_models.latents.latent_basis`).

Everything runs on the frames' device with the global RNG, with no per-frame Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_RADIUS = 2  # blur kernel 5 taps: enough for sigma <= 1 px (the tails beyond are < 1%)

# BT.601 full-range RGB <-> YCbCr, the matrix behind yuv420p decoding at this size.
_TO_YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_FROM_YCC = torch.linalg.inv(_TO_YCC)


@dataclass(frozen=True)
class CodecNoise:
    """Upper bounds of each perturbation; every frame draws its own strength below them."""

    noise: float = 3.0  # std of additive Gaussian noise, in 0..255 levels
    blur: float = 0.8  # Gaussian blur sigma, in pixels
    chroma: float = 0.5  # probability that a frame's chroma is subsampled 2x2 (4:2:0)
    shift: float = 2.0  # per-channel level offset, uniform in [-shift, shift]

    def __post_init__(self) -> None:
        for name in ("noise", "blur", "shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"CodecNoise.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.chroma <= 1.0:
            raise ValueError(f"CodecNoise.chroma is a probability in [0, 1], got {self.chroma}")
        if self.blur > 1.0:
            raise ValueError(f"CodecNoise.blur must be <= 1 px (the kernel has {2 * _RADIUS + 1} taps), got {self.blur}")


def codec_noise(frames: torch.Tensor, cfg: CodecNoise) -> torch.Tensor:
    """uint8 frames [..., 3, H, W] -> uint8 frames of the same shape, each perturbed alone."""
    if frames.dtype != torch.uint8 or frames.dim() < 3 or frames.shape[-3] != 3:
        raise ValueError(f"codec_noise takes uint8 RGB frames [..., 3, H, W], got {frames.dtype} {tuple(frames.shape)}")
    shape = frames.shape
    x = frames.reshape(-1, *shape[-3:]).float()  # [N, 3, H, W]
    n, device = x.shape[0], x.device

    if cfg.chroma > 0:
        x = _subsample_chroma(x, torch.rand(n, device=device) < cfg.chroma)
    if cfg.blur > 0:
        x = _blur(x, torch.rand(n, device=device) * cfg.blur)
    if cfg.shift > 0:
        x = x + (torch.rand(n, 3, 1, 1, device=device) * 2 - 1) * cfg.shift
    if cfg.noise > 0:
        x = x + torch.randn_like(x) * (torch.rand(n, 1, 1, 1, device=device) * cfg.noise)
    return x.round_().clamp_(0, 255).to(torch.uint8).reshape(shape)


def _subsample_chroma(x: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """x [N, 3, H, W] float; frames where `pick` get their Cb, Cr averaged 2x2 and upsampled."""
    to_ycc, from_ycc = _TO_YCC.to(x.device), _FROM_YCC.to(x.device)
    ycc = torch.einsum("ij,njhw->nihw", to_ycc, x)
    chroma = ycc[:, 1:]
    smooth = F.interpolate(F.avg_pool2d(chroma, 2, ceil_mode=True), size=chroma.shape[-2:], mode="bilinear", align_corners=False)
    chroma = torch.where(pick[:, None, None, None], smooth, chroma)
    return torch.einsum("ij,njhw->nihw", from_ycc, torch.cat([ycc[:, :1], chroma], dim=1))


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x [N, 3, H, W], sigma [N] px (0 leaves a frame as it is) -> separable Gaussian blur."""
    n, c, h, w = x.shape
    taps = torch.arange(-_RADIUS, _RADIUS + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*3, 5]
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (_RADIUS, _RADIUS, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, _RADIUS, _RADIUS), mode="replicate"), kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)
