"""A keypoint bottleneck: frames -> K image points -> frames.

The encoder ends in K heatmaps; a spatial softmax turns each into the expected (x, y) of its
mass, so the latent is K points in [-1, 1]^2 (Finn et al. 2016, "Deep spatial autoencoders").
The decoder sees only Gaussian blobs drawn at those points (Jakab et al. 2018) and must rebuild
the frame from them. On a scene whose background never changes, as in Push-T, a rigid object's
pose is then carried by where its points sit: its position by their mean, its angle by their
differences, both linear in the points when two or more of them lock on to the object.
"""

from __future__ import annotations

import torch
from torch import nn


def _grid(size: int, device, dtype) -> torch.Tensor:
    """Pixel centres along one axis, in [-1, 1]."""
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) / size * 2 - 1


def spatial_softmax(heatmaps: torch.Tensor, with_spread: bool = False):
    """[B, K, H, W] logits -> [B, K, 2] expected (x, y) in [-1, 1]; with `with_spread`, also each
    softmax's spatial variance E|p - mean|^2 [B, K], in [-1, 1]^2 units."""
    b, k, h, w = heatmaps.shape
    attn = heatmaps.flatten(2).float().softmax(-1).view(b, k, h, w)
    gx, gy = _grid(w, attn.device, attn.dtype), _grid(h, attn.device, attn.dtype)
    px, py = attn.sum(2), attn.sum(3)  # marginals over x [B, K, W] and y [B, K, H]
    xs, ys = (px * gx).sum(-1), (py * gy).sum(-1)
    points = torch.stack([xs, ys], -1)
    if not with_spread:
        return points
    return points, (px * gx**2).sum(-1) - xs**2 + (py * gy**2).sum(-1) - ys**2


def gaussian_maps(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """[B, K, 2] points in [-1, 1] -> [B, K, size, size] unit-peak Gaussian blobs of width `sigma`."""
    g = _grid(size, points.device, points.dtype)
    gx = (g[None, None, :] - points[..., 0:1]).pow(2)  # [B, K, W]
    gy = (g[None, None, :] - points[..., 1:2]).pow(2)  # [B, K, H]
    return torch.exp(-(gy[..., :, None] + gx[..., None, :]) / (2 * sigma**2))


def keypoint_separation(latents: torch.Tensor, width: float) -> torch.Tensor:
    """The encoder's latent, flattened keypoints [B, 2K] -> mean over ordered pairs i != j of
    exp(-|p_i - p_j|^2 / (2 width^2)).

    KeypointNet's separation term (Suwajanakorn et al. 2018), in a smooth form: it is 1 for points
    that coincide and about 0 beyond 3 widths. Without it, the reconstruction alone lets every
    point that follows a rigid object settle on the object's centroid (the spatial softmax of a
    heatmap spread over the object), which carries its position but not its angle.
    """
    p = latents.float().unflatten(-1, (-1, 2))  # [B, K, 2], as KeypointEncoder.embed_frames flattened them
    k = p.shape[-2]
    if k < 2:
        return p.new_zeros(())
    d2 = (p[:, :, None] - p[:, None]).pow(2).sum(-1)  # [B, K, K]; not cdist, whose sqrt has no gradient at 0
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=p.device)
    return torch.exp(-d2 / (2 * width**2))[:, off_diagonal].mean()


def _block(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, dilation, dilation=dilation), nn.GELU()]


class KeypointEncoder(nn.Module):
    """uint8 frames [B, 3, S, S] -> keypoints [B, K, 2] in [-1, 1]; as a recipe encoder
    (`encoder.name=keypoints`), `embed_frames` gives the flattened points, `dim` = 2K.

    Two stride-2 convolutions to S/4, then dilated 3x3 convolutions (receptive field about 60
    input pixels, four times the T's length at 64 px), then one heatmap per keypoint.
    """

    def __init__(self, keypoints: int = 16, width: int = 64, img_size: int = 64):
        super().__init__()
        if keypoints < 1 or img_size % 4:
            raise ValueError(f"keypoints must be >= 1 and img_size a multiple of 4, got {keypoints} and {img_size}")
        self.keypoints, self.width, self.img_size, self.dim = keypoints, width, img_size, 2 * keypoints
        self.net = nn.Sequential(nn.Conv2d(3, width // 2, 4, 2, 1), nn.GELU(), nn.Conv2d(width // 2, width, 4, 2, 1),
                                 nn.GELU(), *_block(width, width), *_block(width, width, 2), *_block(width, width, 4),
                                 nn.Conv2d(width, keypoints, 1))

    @classmethod
    def from_config(cls, cfg, img_size: int) -> "KeypointEncoder":
        """`encoders.vjepa.EncoderConfig` -> encoder: `dim` is 2 x the keypoints, `kp_width` the channels."""
        if cfg.dim % 2:
            raise ValueError(f"encoder.dim={cfg.dim}: the keypoint encoder's latent is 2 x keypoints, so dim must be even")
        return cls(cfg.dim // 2, cfg.kp_width, img_size)

    def forward(self, frames: torch.Tensor, with_spread: bool = False):
        """uint8 [B, 3, S, S] -> points [B, K, 2]; with `with_spread`, (points, spread [B, K]), the
        spread being each heatmap's spatial variance (`spatial_softmax`)."""
        if frames.dtype != torch.uint8 or frames.dim() != 4:
            raise TypeError(f"frames must be uint8 [B, 3, H, W], got {frames.dtype} {tuple(frames.shape)}")
        if frames.shape[-1] != self.img_size or frames.shape[-2] != self.img_size:
            raise ValueError(f"expected {self.img_size}x{self.img_size} frames, got {tuple(frames.shape[-2:])}")
        return spatial_softmax(self.net(frames.float() / 127.5 - 1), with_spread)

    def embed_frames(self, frames: torch.Tensor, with_spread: bool = False):
        """uint8 [B, T, 3, H, W] -> each frame's keypoints, flattened [B, T, 2K]; with `with_spread`,
        (those, the heatmaps' spreads [B, T, K])."""
        b, t = frames.shape[:2]
        if not with_spread:
            return self.forward(frames.flatten(0, 1)).reshape(b, t, self.dim)
        points, spread = self.forward(frames.flatten(0, 1), True)
        return points.reshape(b, t, self.dim), spread.reshape(b, t, -1)


class KeypointDecoder(nn.Module):
    """The encoder's latent, flattened keypoints [B, 2K] -> pixels [B, 3, S, S] in about [-1, 1],
    from their blobs alone.

    The blobs (and two coordinate channels, so the decoder knows where it draws) are drawn at
    S/4, then convolutions and two stride-2 transposed convolutions paint the frame. `reach`
    picks the convolutions at S/4: "global", dilated 3x3 ones whose receptive field spans the
    whole frame, or "local", 1x1 ones, so a pixel is painted only from the blobs within about two
    widths of it. A local decoder cannot paint a whole object from one point at its centroid;
    to draw the T's bar ends it needs points near them.
    """

    def __init__(self, side: int, keypoints: int = 16, width: int = 64, sigma: float = 0.1, reach: str = "global"):
        super().__init__()
        if reach not in ("global", "local"):
            raise ValueError(f"reach={reach!r}; valid: global, local")
        self.side, self.sigma = side, sigma
        if reach == "global":
            body = [*_block(keypoints + 2, width), *_block(width, width, 2), *_block(width, width, 4),
                    *_block(width, width)]
        else:
            body = [nn.Conv2d(keypoints + 2, width, 1), nn.GELU(), nn.Conv2d(width, width, 1), nn.GELU(),
                    nn.Conv2d(width, width, 1), nn.GELU()]
        self.net = nn.Sequential(*body, nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.GELU(),
                                 nn.ConvTranspose2d(width // 2, width // 4, 4, 2, 1), nn.GELU(),
                                 nn.Conv2d(width // 4, 3, 3, 1, 1))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        points = latents.unflatten(-1, (-1, 2))  # [B, K, 2], as KeypointEncoder.embed_frames flattened them
        quarter = self.side // 4
        maps = gaussian_maps(points, quarter, self.sigma)
        g = _grid(quarter, points.device, points.dtype)
        coords = torch.stack(torch.meshgrid(g, g, indexing="xy"))[None].expand(len(points), -1, -1, -1)
        return self.net(torch.cat([maps, coords], 1))


def foreground_weighted_mse(pred: torch.Tensor, frames: torch.Tensor, fg_weight: float) -> torch.Tensor:
    """pred [N, 3, S, S] in [-1, 1] units, uint8 frames [N, 3, S, S] -> MSE, with the pixels that
    are not near-white background (any channel below 0.9 in [-1, 1] units) weighted `fg_weight`
    times. In Push-T the block and the agent cover a few percent of the frame; unweighted, the
    loss is lowered most by the background."""
    target = frames.float() / 127.5 - 1
    err = (pred.float() - target).pow(2)
    if fg_weight != 1:
        foreground = (target.min(dim=1, keepdim=True).values < 0.9).float()
        err = err * (1 + (fg_weight - 1) * foreground)
    return err.mean()
