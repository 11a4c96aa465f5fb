"""Seconds of one batched plan per planner, on a checkpoint or a fresh recipe-sized predictor (not a test).

    python benchmarks/bench_plan_seconds.py checkpoint=outputs/benchmark/pusht/tiny/train/world_model.pt
    python benchmarks/bench_plan_seconds.py recipe=pusht size=full planners=[cem,grasp_tuned] horizon=5 episodes=50
    python benchmarks/bench_plan_seconds.py recipe=pusht size=full 'overrides=[planner.cem.samples=300,planner.cem.iterations=30,planner.cem.elites=30]'

What a replan of a benchmark protocol costs, without an env: start and goal latents are standard
normal in the model's latent space (the planners' work does not depend on their values), a
history-k model gets k - 1 past latents and actions, and every planner plans all `episodes` as
one batch, exactly as plan.py calls it (`Planner.plan`; on CUDA the model runs under bf16
autocast). `recipe=<env> size=<size>` builds the predictor of that benchmark recipe's training
config with random weights (its output layer perturbed off the identity it starts as), so the
full size can be timed before it is trained. Planner settings are plan.yaml's, with
`overrides` (plan.py keys) on top.

Keys: checkpoint | recipe + size, planners ([cem, grasp_tuned]), horizon (5 model steps),
episodes (50), overrides ([]), device (cuda when present), repeats (3; the median is printed
after one warm-up plan), seed (0).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict

import torch

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders import VideoViT  # noqa: E402
from encoders.vjepa import EncoderConfig  # noqa: E402
from jepa_plan.benchmark import load_recipe  # noqa: E402
from jepa_plan.config import PlanConfig, load_config, to_container, to_dataclass  # noqa: E402
from jepa_plan.planning import build_planners  # noqa: E402
from world_models import PREDICTORS, WorldModel, WorldModelConfig  # noqa: E402

KEYS = ("checkpoint", "recipe", "size", "planners", "horizon", "episodes", "overrides", "device", "repeats", "seed",
        "action_dim")


def as_list(text: str) -> list[str]:
    return [item.strip() for item in text.strip("[]").split(",") if item.strip()]


def fresh_model(recipe: str, size: str, env_action_dim: int) -> tuple[WorldModel, str]:
    """The recipe's predictor with random weights; the encoder is a stub (only `step` is planned through)."""
    cfg = load_config([f"env={recipe}", *load_recipe(recipe)["sizes"][size]])
    wm_cfg = asdict(to_dataclass(cfg.world_model, WorldModelConfig))
    latent = to_dataclass(cfg.encoder, EncoderConfig).dim
    action_dim = cfg.data.frameskip * env_action_dim
    predictor = PREDICTORS[wm_cfg["name"]][0].from_config(wm_cfg, latent, action_dim)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # off the identity map both predictors start as
        for p in predictor.parameters():
            if p.dim() >= 2 and not p.abs().sum():
                p.copy_(0.01 * torch.randn(p.shape, generator=g))
    encoder = VideoViT(img_size=16, patch_size=8, dim=latent, depth=1, heads=2, mlp_ratio=2.0)
    wm = WorldModel(encoder, predictor, latent_mean=torch.zeros(latent), latent_proj=torch.eye(latent),
                    action_mean=torch.zeros(action_dim), action_std=torch.ones(action_dim),
                    env_action_low=-torch.ones(env_action_dim), env_action_high=torch.ones(env_action_dim),
                    frameskip=cfg.data.frameskip, meta={})
    name = (f"fresh {recipe} size={size} predictor ({wm_cfg['name']} {wm_cfg['layers']}x{wm_cfg['hidden']}, "
            f"history {wm_cfg['history']}, latent {latent}, actions {action_dim})")
    return wm, name


def main(argv: list[str]) -> None:
    args = dict(item.split("=", 1) for item in argv)
    unknown = sorted(set(args) - set(KEYS))
    if unknown:
        sys.exit(f"unknown keys {unknown}; valid: {', '.join(KEYS)}")
    device = torch.device(args.get("device", "cuda" if torch.cuda.is_available() else "cpu"))
    if "checkpoint" in args:
        wm, name = WorldModel.from_checkpoint(args["checkpoint"], map_location="cpu"), f"checkpoint {args['checkpoint']}"
    elif "recipe" in args:
        wm, name = fresh_model(args["recipe"], args.get("size", "tiny"), int(args.get("action_dim", 2)))
    else:
        sys.exit("give checkpoint=PATH or recipe=<env> size=<size>")
    wm = wm.to(device).eval()
    planner_names = as_list(args.get("planners", "[cem,grasp_tuned]"))
    cfg = load_config([f"planners=[{','.join(planner_names)}]", *as_list(args.get("overrides", "[]"))],
                      preset="plan", schema=PlanConfig, groups=("env",))
    planners = build_planners(cfg)
    horizon, batch = int(args.get("horizon", 5)), int(args.get("episodes", 50))
    repeats, seed = int(args.get("repeats", 3)), int(args.get("seed", 0))
    history = getattr(wm.predictor, "history", 1)
    g = torch.Generator().manual_seed(seed)
    shape = wm.latent_shape
    z0, goal = (torch.randn(batch, *shape, generator=g).to(device) for _ in range(2))
    past_z = torch.randn(batch, history - 1, *shape, generator=g).to(device) if history > 1 else None
    past_a = torch.randn(batch, history - 1, wm.action_dim, generator=g).to(device) if history > 1 else None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; {batch} episodes in one batch, horizon {horizon} model steps, on {where}; "
          f"median of {repeats} plans after one warm-up")
    print("| planner | settings | s per plan | transitions per plan | transitions/s |")
    print("|---|---|---|---|---|")
    settings = to_container(cfg.planner) if cfg.planner else {}
    for label, planner in planners.items():
        seconds = []
        for r in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            result = planner.plan(wm, z0, goal, horizon, generator=torch.Generator(device).manual_seed(seed + r),
                                  past_z=past_z, past_a=past_a)
            result.actions.cpu()  # the plan's actions on the host, as an env step needs them
            if r:
                seconds.append(time.perf_counter() - started)
        s = statistics.median(seconds)
        shown = ", ".join(f"{k} {v}" for k, v in (settings.get(label) or {}).items())
        print(f"| {label} | {shown or 'defaults'} | {s:.3f} | {result.transitions:,} | {result.transitions / s:,.0f} |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
