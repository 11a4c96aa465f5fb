"""Does the most direct self-supervised objective, a pixel autoencoder, put the block's angle in a
128-d vector? (not a test)

    python benchmarks/pixel_autoencoder_probe.py encoder=cnn steps=2000 recon=outputs/exp/ae_recon.png

An encoder maps each Push-T frame to a 128-d vector, and a convolutional decoder (a linear map to an
8 x 8 x 128 grid, then three stride-2 transposed convolutions) reconstructs the whole frame from it,
by MSE on pixels in [-1, 1]. Nothing but the vector reaches the decoder, so whatever the
reconstruction shows, the vector carries. Every `eval_every` steps a ridge probe
(`encoders.diagnostics.RidgeProbe`) is fit on the vectors of every 5th frame of episodes
[fit_from, fit_to) and scored on episodes [fit_to, test_to): held-out R^2 of the agent's x, y, the
block's x, y and its angle as sin, cos (`PushTEnv.probe_features`).

`encoder=cnn`: three stride-2 4x4 convolutions (32, 64, 128 channels) and a linear map to 128;
`encoder=vit`: the recipes' ViT (`encoders.vit.VideoViT`, patch 8, 128 x 4), mean-pooled as
`embed_frames`; `encoder=keypoints`: `encoders.keypoints`, whose latent is `keypoints` image points
(2 x keypoints numbers) and whose decoder sees only Gaussian blobs drawn at them. `fg_weight` > 1 weights the pixels that are not background (any channel below 0.9)
that many times; `kp_sigma` is the blobs' width, and `separation` > 0 adds that weight of
`encoders.keypoints.keypoint_separation` (points closer than about `separation_width` repel), and `concentration` > 0 that weight of the
heatmaps' mean spatial variance (`encoders.keypoints.spatial_softmax`); `reach` is the keypoint
decoder's (global | local, `encoders.keypoints.KeypointDecoder`). `recon=path.png` saves held-out frames above their reconstructions at the end.

Keys: encoder (cnn | vit | keypoints), keypoints (16), kp_sigma (0.1), separation (0), separation_width (0.1), concentration (0),
reach (global), steps (2000), batch (64), lr (3e-4), eval_every (250), fg_weight (1),
data (data/pusht_tiny), train_to (900), fit_from (500), fit_to (900), test_to (1000), every (2:
training frames), recon (none), device (cuda when present), seed (0).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from encoders.diagnostics import RidgeProbe  # noqa: E402
from encoders.keypoints import KeypointDecoder, KeypointEncoder, foreground_weighted_mse, keypoint_separation  # noqa: E402
from encoders.vit import VideoViT  # noqa: E402
from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.data.episodes import EpisodeStore  # noqa: E402
from supervised_pose_ceiling import TARGET_SETS, frames_and_pose  # noqa: E402

LATENT = 128


class ConvEncoder(nn.Module):
    """uint8 [B, 3, 64, 64] -> [B, 128]."""

    def __init__(self, side: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 4, 2, 1), nn.GELU(),
                                 nn.Conv2d(64, 128, 4, 2, 1), nn.GELU(), nn.Flatten(),
                                 nn.Linear(128 * (side // 8) ** 2, LATENT))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.float() / 127.5 - 1)


class FrameVectors(nn.Module):
    """A recipe encoder on single frames: uint8 [B, 3, H, W] -> its `embed_frames` latent [B, D]."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_frames(frames[:, None])[:, 0]


class ConvDecoder(nn.Module):
    """[B, 128] -> pixels [B, 3, side, side] in about [-1, 1]."""

    def __init__(self, side: int):
        super().__init__()
        self.grid = side // 8
        self.inp = nn.Sequential(nn.LayerNorm(LATENT), nn.Linear(LATENT, 128 * self.grid**2))
        self.net = nn.Sequential(nn.GELU(), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.GELU(),
                                 nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(32, 3, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.inp(z).view(-1, 128, self.grid, self.grid))


# name -> (side, keypoints, blob width, decoder reach) -> (encoder to a vector, decoder from it)
ENCODERS = {
    "cnn": lambda side, k, sigma, reach: (ConvEncoder(side), ConvDecoder(side)),
    "vit": lambda side, k, sigma, reach: (FrameVectors(VideoViT(img_size=side, patch_size=8, dim=LATENT, depth=4, heads=4)),
                            ConvDecoder(side)),
    "keypoints": lambda side, k, sigma, reach: (FrameVectors(KeypointEncoder(k, img_size=side)),
                                                KeypointDecoder(side, k, sigma=sigma, reach=reach)),
}


def vectors(encoder: nn.Module, frames: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    encoder.eval()
    with torch.no_grad():
        out = torch.cat([encoder(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])
    encoder.train()
    return out.float().cpu()


def main(argv: list[str]) -> None:
    args = script_args(argv, {"encoder": "cnn", "steps": 2000, "batch": 64, "lr": 3e-4, "eval_every": 250,
                              "fg_weight": 1.0, "data": "data/pusht_tiny", "train_to": 900, "fit_from": 500,
                              "fit_to": 900, "test_to": 1000, "every": 2, "recon": None, "device": None, "seed": 0,
                              "keypoints": 16, "kp_sigma": 0.1, "separation": 0.0, "separation_width": 0.1,
                              "concentration": 0.0, "reach": "global"})
    for key in ("separation", "concentration"):
        if args[key] and args["encoder"] != "keypoints":
            raise SystemExit(f"{key}={args[key]} needs encoder=keypoints, got {args['encoder']!r}")
    if args["encoder"] not in ENCODERS:
        raise SystemExit(f"encoder={args['encoder']!r}; valid: {', '.join(ENCODERS)}")
    device = args["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args["seed"])
    store = EpisodeStore(args["data"])
    if args["test_to"] > len(store):
        raise SystemExit(f"test_to={args['test_to']} but {args['data']} holds {len(store)} episodes")
    targets = TARGET_SETS["positions"]
    train, _ = frames_and_pose(store, range(0, args["train_to"]), args["every"], device, targets)
    x_fit, y_fit = frames_and_pose(store, range(args["fit_from"], args["fit_to"]), 5, device, targets)
    x_test, y_test = frames_and_pose(store, range(args["fit_to"], args["test_to"]), 5, device, targets)
    side = train.shape[-1]
    encoder, decoder = (m.to(device) for m in ENCODERS[args["encoder"]](side, args["keypoints"], args["kp_sigma"],
                                                                            args["reach"]))
    opt = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], args["lr"])
    autocast = dict(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    print(f"{args['encoder']} autoencoder on {args['data']}: train on {len(train)} frames (episodes 0-"
          f"{args['train_to'] - 1}, every {args['every']}th), probe fit {len(x_fit)} / score {len(x_test)}")
    print(f"| step | seconds | train MSE | ridge R^2: {' / '.join(targets)} |\n|---|---|---|---|")
    started = time.time()
    for step in range(1, args["steps"] + 1):
        x = train[torch.randint(0, len(train), (args["batch"],), device=device)]
        with torch.autocast(**autocast):
            if args["concentration"]:
                z, spread = (v[:, 0] for v in encoder.encoder.embed_frames(x[:, None], with_spread=True))
            else:
                z = encoder(x)
            loss = foreground_weighted_mse(decoder(z), x, args["fg_weight"])
            if args["concentration"]:
                loss = loss + args["concentration"] * spread.mean()
            if args["separation"]:
                loss = loss + args["separation"] * keypoint_separation(z, args["separation_width"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args["eval_every"] == 0 or step == args["steps"]:
            with torch.autocast(**autocast):
                z_fit, z_test = vectors(encoder, x_fit), vectors(encoder, x_test)
            r2 = RidgeProbe().fit(z_fit, y_fit.cpu()).r2_per_dim(z_test, y_test.cpu())
            print(f"| {step} | {time.time() - started:.0f} | {loss.item():.4f} | "
                  f"{' / '.join(f'{v:.2f}' for v in r2)} |", flush=True)
    if args["recon"]:
        from PIL import Image

        shown = x_test[:: max(1, len(x_test) // 8)][:8]
        with torch.no_grad(), torch.autocast(**autocast):
            recon = decoder(vectors(encoder, shown).to(device)).float()
        recon = ((recon.clamp(-1, 1) + 1) * 127.5).round().byte()
        strip = torch.cat([torch.cat(list(shown), 2), torch.cat(list(recon), 2)], 1).permute(1, 2, 0).cpu().numpy()
        Path(args["recon"]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(strip)).save(args["recon"])
        print(f"reconstructions (held-out frames above, decoded below): {args['recon']}")


if __name__ == "__main__":
    main(sys.argv[1:])
