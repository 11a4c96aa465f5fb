"""How far a video round trip moves a trained model's latent, against one model step (not a test).

    python benchmarks/codec_sensitivity.py checkpoint=outputs/train/two_rooms/world_model.pt \\
        clean=data/two_rooms decoded=[exports/two_rooms_lerobot,exports/two_rooms_lerobot_444]

`clean` is an episode data set and each `decoded` entry a copy of it written by
`python -m jepa_plan.export` (same episodes, same order). For the last `episodes` episodes the
script encodes every frame from the clean set and from each copy and prints, in the world
model's standardised latent units (what the planners' costs see):
- pixels: mean absolute difference in 0..255 levels, and the share of values off by more than 30;
- round trip: mean squared latent difference between a clean frame and its decoded copy;
- one step: mean squared latent difference between clean frames one model step (frameskip env
  steps) apart, the motion the planner steers by.
A round trip near one step means a decoded goal image sits a step of motion away from the
clean frame of the same state; `encoder.invariance` (encoders/augment.py) trains that down.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.data import open_data_dir  # noqa: E402
from world_models import WorldModel  # noqa: E402

DEFAULTS = {"checkpoint": None, "clean": None, "decoded": [], "episodes": 50, "threads": 2}


def latents(model: WorldModel, frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> standardised latents [T, D]."""
    x = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2)[None]
    return model.encode(x)[0]


def main(argv: list[str]) -> None:
    cfg = script_args(argv, DEFAULTS)
    for key in ("checkpoint", "clean"):
        if not cfg[key]:
            raise SystemExit(f"codec_sensitivity needs {key}=...; see the module docstring")
    torch.set_num_threads(int(cfg["threads"]))
    model = WorldModel.from_checkpoint(cfg["checkpoint"])
    size, skip = model.encoder.img_size, model.frameskip
    clean = open_data_dir(cfg["clean"], size)
    names = clean.names[-int(cfg["episodes"]):]
    clean_eps = [clean.episode(n) for n in names]
    clean_frames = [np.asarray(ep.frames[0:len(ep)]) for ep in clean_eps]
    clean_z = [latents(model, f) for f in clean_frames]
    step = torch.cat([(z[skip:] - z[:-skip]).pow(2).mean(dim=1) for z in clean_z]).mean().item()

    print(f"checkpoint {cfg['checkpoint']}: {len(names)} episodes of {cfg['clean']}")
    print("| copy | pixels: mean abs, share > 30 | round trip MSE | one step MSE | round trip / step |")
    print("|---|---|---|---|---|")
    for path in cfg["decoded"]:
        copy = open_data_dir(path, size)
        if len(copy.names) != len(clean.names):
            raise SystemExit(f"{path} holds {len(copy.names)} episodes, {cfg['clean']} {len(clean.names)}: not a copy")
        diffs, shifts = [], []
        for index, frames, z in zip(range(len(clean.names) - len(names), len(clean.names)), clean_frames, clean_z):
            decoded = np.asarray(copy.episode(copy.names[index]).frames[0:len(frames)])
            if decoded.shape != frames.shape:
                raise SystemExit(f"{path} episode {copy.names[index]}: frames {decoded.shape} against {frames.shape}")
            diffs.append(np.abs(decoded.astype(np.int16) - frames.astype(np.int16)))
            shifts.append((latents(model, decoded) - z).pow(2).mean(dim=1))
        diff = np.concatenate([d.ravel() for d in diffs])
        trip = torch.cat(shifts).mean().item()
        print(f"| {path} | {diff.mean():.2f}, {100 * (diff > 30).mean():.1f}% | {trip:.4f} | {step:.4f} | {trip / step:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
