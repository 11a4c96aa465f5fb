"""Supervised ceiling for the block-pose probe (not a test): can the encoder's architecture carry the pose at all?

    python benchmarks/supervised_pose_ceiling.py model=vit steps=8000 data=data/pusht_tiny
    python benchmarks/supervised_pose_ceiling.py model=cnn steps=8000

Trains a network *with* the block's pose as the target, on every `every`-th frame of episodes
[0, fit_to) of a Push-T episode store, and prints its held-out R^2 on episodes [fit_to, test_to)
every 1,000 steps. Targets are block x, y and the angle as sin, cos (`PushTEnv.probe_features`),
standardised. `model=vit` is the encoder the recipes train (`encoders.vit.VideoViT`, patch 8,
128 x 4, each frame encoded alone and mean-pooled, as `embed_frames`) with a linear head, AdamW at
3e-4; `model=cnn` is a 3-layer strided CNN with a 256-unit head, AdamW at 1e-3. Batches of 128,
under bf16 autocast on CUDA. If the ViT reaches a high R^2 here while the self-supervised encoders
do not (benchmarks/probe_block_pose.py), the objective, not the architecture or the resolution,
is what keeps the pose out of the latent.

Keys: model (vit | cnn), steps (8000), data (data/pusht_tiny), fit_to (900), test_to (1000),
every (2), batch (128), eval_every (1000), lr (the model's default),
head (linear | bn: the BatchNorm + linear head of `encoder.state_supervision`, ViT only),
targets (pose | positions: the agent's x, y too | all: every probe feature, velocities included,
as `encoder.state_supervision` regresses by default), device (cuda when present), seed (0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.vit import VideoViT  # noqa: E402
from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.data.episodes import EpisodeStore, episode_name  # noqa: E402
from jepa_plan.envs.pusht import PushTEnv  # noqa: E402

FEATURES = PushTEnv.probe_features(np.zeros((1, 7)))[1]  # the names of the probe's features
TARGET_SETS = {"pose": ["block_x", "block_y", "block_sin", "block_cos"],
               "positions": ["agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos"],
               "all": FEATURES}


def frames_and_pose(store: EpisodeStore, indices: range, every: int, device: str, targets: list[str]):
    """uint8 frames [N, 3, H, W] and the `targets` features [N, len(targets)] of every `every`-th step."""
    keep = [FEATURES.index(t) for t in targets]
    frames, pose = [], []
    for i in indices:
        ep = store.episode(episode_name(i))
        if ep.states is None:
            raise SystemExit(f"{store.root}/{episode_name(i)} has no states.npy: the target needs the block's pose")
        frames.append(np.asarray(ep.frames[::every]))
        pose.append(PushTEnv.probe_features(np.asarray(ep.states[::every]))[0][:, keep])
    x = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).contiguous().to(device)
    return x, torch.from_numpy(np.concatenate(pose)).float().to(device)


def build(model: str, img_size: int, device: str, outputs: int, head: str = "linear"):
    """-> (module holding the parameters, uint8 frames [B, 3, H, W] -> predictions [B, outputs], lr)."""
    if head not in ("linear", "bn"):
        raise SystemExit(f"head={head!r}; valid: linear, bn")
    if model == "vit":
        vit = VideoViT(img_size=img_size, patch_size=8, dim=128, depth=4, heads=4)
        readout = nn.Linear(128, outputs) if head == "linear" else nn.Sequential(
            nn.BatchNorm1d(128, track_running_stats=False), nn.Linear(128, outputs))
        net = nn.ModuleList([vit, readout]).to(device)
        return net, lambda x: readout(vit.embed_frames(x[:, None])[:, 0]), 3e-4
    if model == "cnn":
        side = img_size // 8
        net = nn.Sequential(nn.Conv2d(3, 32, 5, 2, 2), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
                            nn.Conv2d(64, 64, 3, 2, 1), nn.GELU(), nn.Flatten(), nn.Linear(64 * side * side, 256),
                            nn.GELU(), nn.Linear(256, outputs)).to(device)
        return net, lambda x: net(x.float() / 127.5 - 1), 1e-3
    raise SystemExit(f"model={model!r}; valid: vit, cnn")


def main(argv: list[str]) -> None:
    args = script_args(argv, {"model": "vit", "steps": 8000, "data": "data/pusht_tiny", "fit_to": 900,
                              "test_to": 1000, "every": 2, "batch": 128, "eval_every": 1000, "lr": None,
                              "head": "linear", "targets": "pose", "device": None,
                              "seed": 0})
    device = args["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args["seed"])
    store = EpisodeStore(args["data"])
    if args["test_to"] > len(store):
        raise SystemExit(f"test_to={args['test_to']} but {args['data']} holds {len(store)} episodes")
    if args["targets"] not in TARGET_SETS:
        raise SystemExit(f"targets={args['targets']!r}; valid: {', '.join(TARGET_SETS)}")
    targets = TARGET_SETS[args["targets"]]
    xa, ya = frames_and_pose(store, range(0, args["fit_to"]), args["every"], device, targets)
    xb, yb = frames_and_pose(store, range(args["fit_to"], args["test_to"]), args["every"], device, targets)
    mean, std = ya.mean(0), ya.std(0)
    ya, yb = (ya - mean) / std, (yb - mean) / std
    net, predict, lr = build(args["model"], xa.shape[-1], device, len(targets), args["head"])
    opt = torch.optim.AdamW(net.parameters(), args["lr"] or lr)
    autocast = dict(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    print(f"{args['model']} on {args['data']}: fit {len(xa)} frames (episodes 0-{args['fit_to'] - 1}), "
          f"score {len(xb)} (episodes {args['fit_to']}-{args['test_to'] - 1}), every {args['every']}th step")
    print(f"| step | held-out R^2: {' / '.join(targets)} |\n|---|---|")
    for step in range(1, args["steps"] + 1):
        i = torch.randint(0, len(xa), (args["batch"],), device=device)
        with torch.autocast(**autocast):
            loss = (predict(xa[i]).float() - ya[i]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args["eval_every"] == 0 or step == args["steps"]:
            with torch.no_grad(), torch.autocast(**autocast):
                p = torch.cat([predict(xb[j:j + 1000]).float() for j in range(0, len(xb), 1000)])
            r2 = 1 - (p - yb).pow(2).sum(0) / (yb - yb.mean(0)).pow(2).sum(0)
            print(f"| {step} | {' / '.join(f'{v:.2f}' for v in r2.tolist())} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
