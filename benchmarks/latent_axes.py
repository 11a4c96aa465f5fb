"""Where a trained run's latent holds each state feature (not a test): the principal axes of the
world model's latent, their variance, and how much of each feature the first n axes carry.

    python benchmarks/latent_axes.py run=outputs/benchmark/pusht/tiny96_gpukp/pusht/tiny/train
    python benchmarks/latent_axes.py run=<the same> whiten_floor=0.01

`run` is a training output folder with `latents.pt` (the frozen encoder's cached latents, written
by the world-model stage) and `world_model.pt` (its latent basis). The latent is put in that basis
(or, with `whiten_floor`, in the basis `world_model.whiten_floor` would fit on the same latents)
and turned onto its principal axes, largest first. For each n in `axes` it prints the variance of
axis n, the share of the total variance the first n axes hold, and the held-out ridge R^2 of each
probe feature (`Env.probe_features` of the recorded env) read from those n axes alone; then the
|correlation| of each of the first `corr_axes` axes with each feature.

A feature whose R^2 rises only at axes that hold a small share of the variance is one that a loss
or a distance summed over the latent's coordinates barely sees: on the Push-T keypoint latent the
block's angle (docs/results.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.diagnostics import RidgeProbe  # noqa: E402
from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.envs import ENVS  # noqa: E402
from world_models import WorldModel  # noqa: E402
from world_models.latents import latent_basis, principal_axes  # noqa: E402

DEFAULTS = {"run": None, "whiten_floor": 0.0, "axes": [2, 4, 6, 8, 10, 12, 16, 24, 32], "corr_axes": 12,
            "probe_frames": 20000, "ridge_alpha": 1.0}


def main(argv: list[str]) -> None:
    args = script_args(argv, DEFAULTS)
    if not args["run"]:
        raise SystemExit("run=<training output folder with latents.pt and world_model.pt> is required")
    run = Path(args["run"])
    for name in ("latents.pt", "world_model.pt"):
        if not (run / name).is_file():
            raise SystemExit(f"{run / name}: not found (run the world-model stage into {run} first)")
    wm = WorldModel.from_checkpoint(run / "world_model.pt")
    raw = torch.load(run / "latents.pt", weights_only=True)
    env_name = wm.meta["env"]["name"]
    if env_name not in ENVS:
        raise SystemExit(f"{run / 'world_model.pt'}: env {env_name!r} is not registered; no probe features")
    env_class = ENVS[env_name][0]
    if args["whiten_floor"] > 0:
        mean, proj, _ = latent_basis(raw["train"]["latents"], raw["shifts"], wm.meta["predictor"]["nuisance_ratio"],
                                     args["whiten_floor"])
        basis = f"refit at world_model.whiten_floor={args['whiten_floor']:g}"
    else:
        mean, proj = wm.latent_mean, wm.latent_proj
        basis = "the world model's own"

    def split(name: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        states = raw[name]["states"]
        if states.shape[-1] == 0:
            raise SystemExit(f"{run / 'latents.pt'}: the {name} episodes record no states to probe")
        features, names = env_class.probe_features(states.numpy())
        return (raw[name]["latents"] - mean) @ proj, torch.as_tensor(features, dtype=torch.float32), names

    z, s, names = split("train")
    vz, vs, _ = split("val")
    variance, axes = (x.float() for x in principal_axes(z))
    centre = z.mean(0)
    p, vp = (z - centre) @ axes, (vz - centre) @ axes
    rows = torch.randperm(len(p), generator=torch.Generator().manual_seed(0))[:args["probe_frames"]]
    total = variance.sum()
    print(f"{run}: {len(z)} train / {len(vz)} val frames, latent of {z.shape[1]} dims in {basis} basis, "
          f"total variance {total:.2f}")
    print("| axes | variance of the last | share of the total | " + " | ".join(names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for n in [n for n in args["axes"] if n <= z.shape[1]]:
        r2 = RidgeProbe().fit(p[rows, :n], s[rows], args["ridge_alpha"]).r2_per_dim(vp[:, :n], vs)
        print(f"| {n} | {variance[n - 1]:.4f} | {variance[:n].sum() / total:.3f} | "
              + " | ".join(f"{x:.2f}" for x in r2) + " |")
    k = min(args["corr_axes"], z.shape[1])
    if k < 1:
        return
    corr = torch.corrcoef(torch.cat([p[:, :k], s], 1).T)[:k, k:].abs()
    print(f"\n|correlation| of each principal axis with each feature (train frames)\n"
          "| axis | variance | " + " | ".join(names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for i in range(k):
        print(f"| {i + 1} | {variance[i]:.4f} | " + " | ".join(f"{x:.2f}" for x in corr[i]) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
