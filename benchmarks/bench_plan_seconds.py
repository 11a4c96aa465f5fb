"""Seconds of one batched plan per planner, on a checkpoint or a fresh recipe-sized predictor (not a test).

    python benchmarks/bench_plan_seconds.py checkpoint=outputs/benchmark/pusht/tiny/train/world_model.pt
    python benchmarks/bench_plan_seconds.py recipe=pusht size=full planners=[cem,grasp_tuned] horizon=5 episodes=50
    python benchmarks/bench_plan_seconds.py recipe=pusht size=full 'overrides=[planner.cem.samples=300,planner.cem.iterations=30,planner.cem.elites=30]'

What a replan of a benchmark protocol costs, without an env: start and goal latents are standard
normal in the model's latent space (the planners' work does not depend on their values), a
history-k model gets k - 1 past latents and actions, and every planner plans all `episodes` as
one batch, exactly as plan.py calls it (`Planner.plan`; on CUDA the model runs under bf16
autocast). `recipe=<env> size=<size>` builds the predictor of that benchmark recipe's training
config with random weights (its zero-initialised layers perturbed off the identity map), so the
full size can be timed before it is trained. Planner settings are plan.yaml's, with
`overrides` (plan.py keys) on top.

Keys: checkpoint | recipe + size, planners ([cem, grasp_tuned]), horizon (5 model steps),
episodes (50), overrides ([]), device (cuda when present), repeats (3; the median is printed
after one warm-up plan; each plan's `PlanResult.seconds`), seed (0), action_dim (2: the env's,
for `recipe`).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_grasp_iteration import stub_world_model  # noqa: E402
from encoders.vjepa import EncoderConfig  # noqa: E402
from jepa_plan.benchmark import load_recipe  # noqa: E402
from jepa_plan.config import PlanConfig, load_config, script_args, to_container, to_dataclass  # noqa: E402
from jepa_plan.planning import build_planners  # noqa: E402
from world_models import PREDICTORS, WorldModel, WorldModelConfig  # noqa: E402

DEFAULTS = {"checkpoint": None, "recipe": None, "size": "tiny", "action_dim": 2, "planners": ["cem", "grasp_tuned"],
            "horizon": 5, "episodes": 50, "overrides": [], "device": None, "repeats": 3, "seed": 0}


def fresh_model(recipe: str, size: str, env_action_dim: int) -> tuple[WorldModel, str]:
    """The recipe's predictor with random weights; the encoder is a stub (only `step` is planned through)."""
    cfg = load_config([f"env={recipe}", *load_recipe(recipe)["sizes"][size]])
    wm_cfg = asdict(to_dataclass(cfg.world_model, WorldModelConfig))
    latent = to_dataclass(cfg.encoder, EncoderConfig).dim
    predictor = PREDICTORS[wm_cfg["name"]][0].from_config(wm_cfg, latent, cfg.data.frameskip * env_action_dim)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # off the identity map both predictors start as
        for p in predictor.parameters():
            if p.dim() >= 2 and not p.abs().sum():
                p.copy_(0.01 * torch.randn(p.shape, generator=g))
    wm = stub_world_model(predictor, latent, env_action_dim, cfg.data.frameskip)
    name = (f"fresh {recipe} size={size} predictor ({wm_cfg['name']} {wm_cfg['layers']}x{wm_cfg['hidden']}, "
            f"history {wm_cfg['history']}, latent {latent}, actions {wm.action_dim})")
    return wm, name


def random_problem(wm: WorldModel, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(z0, goal, past_z, past_a) on the CPU: standard normal latents, and for a history-k model
    k - 1 past latents and actions (None for a Markov one)."""
    history = getattr(wm.predictor, "history", 1)
    g = torch.Generator().manual_seed(seed)
    z0, goal = (torch.randn(batch, *wm.latent_shape, generator=g) for _ in range(2))
    if history == 1:
        return z0, goal, None, None
    return (z0, goal, torch.randn(batch, history - 1, *wm.latent_shape, generator=g),
            torch.randn(batch, history - 1, wm.action_dim, generator=g))


def main(argv: list[str]) -> None:
    args = script_args(argv, DEFAULTS)
    device = torch.device(args["device"] or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args["checkpoint"]:
        wm, name = WorldModel.from_checkpoint(args["checkpoint"], map_location="cpu"), f"checkpoint {args['checkpoint']}"
    elif args["recipe"]:
        wm, name = fresh_model(args["recipe"], args["size"], args["action_dim"])
    else:
        sys.exit("give checkpoint=PATH or recipe=<env> size=<size>")
    wm = wm.to(device).eval()
    cfg = load_config([f"planners=[{','.join(args['planners'])}]", *args["overrides"]],
                      preset="plan", schema=PlanConfig, groups=("env",))
    planners = build_planners(cfg)
    horizon, batch, repeats, seed = args["horizon"], args["episodes"], args["repeats"], args["seed"]
    z0, goal, past_z, past_a = (t if t is None else t.to(device) for t in random_problem(wm, batch, seed))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; {batch} episodes in one batch, horizon {horizon} model steps, on {where}; "
          f"median of {repeats} plans after one warm-up")
    print("| planner | settings | s per plan | transitions per plan | transitions/s |")
    print("|---|---|---|---|---|")
    settings = to_container(cfg.planner) if cfg.planner else {}
    for label, planner in planners.items():
        seconds = []
        for r in range(repeats + 1):
            result = planner.plan(wm, z0, goal, horizon, generator=torch.Generator(device).manual_seed(seed + r),
                                  past_z=past_z, past_a=past_a)
            if r:
                seconds.append(result.seconds)  # the planner's own wall time, CUDA synchronised
        s = statistics.median(seconds)
        shown = ", ".join(f"{k} {v}" for k, v in (settings.get(label) or {}).items())
        print(f"| {label} | {shown or 'defaults'} | {s:.3f} | {result.transitions:,} | {result.transitions / s:,.0f} |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
