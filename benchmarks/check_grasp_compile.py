"""Does `compile=true` change a GRASP plan on a checkpoint? Eager against compiled, per dtype (not a test).

    python benchmarks/check_grasp_compile.py checkpoint=outputs/benchmark/pusht/tiny/train/world_model.pt

Plans the same B episodes (standard normal start and goal latents, a history-k model's context
too) with `grasp` for `iterations` iterations, eagerly and with `compile=true`, in float64 and in
float32. On CUDA float32 means the planners' bf16 autocast, and float64 runs outside it (autocast
leaves float64 alone). tests/planners/test_grasp.py holds the float64 CPU case to 1e-9; this
script asks the same of a trained model on the device at hand. Prints the largest relative
difference of the cost trace and the largest absolute difference of actions and states.

Keys: checkpoint, device (cuda when present), episodes (50), horizon (5), iterations (30), seed (0).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_plan_seconds import random_problem  # noqa: E402
from jepa_plan.config import script_args  # noqa: E402
from planners import build_planner  # noqa: E402
from world_models import WorldModel  # noqa: E402

DEFAULTS = {"checkpoint": None, "device": None, "episodes": 50, "horizon": 5, "iterations": 30, "seed": 0}


def main(argv: list[str]) -> None:
    args = script_args(argv, DEFAULTS)
    if not args["checkpoint"]:
        sys.exit("checkpoint=PATH is required (a world_model.pt from train.py)")
    device = torch.device(args["device"] or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch, horizon, iterations, seed = args["episodes"], args["horizon"], args["iterations"], args["seed"]
    base = WorldModel.from_checkpoint(args["checkpoint"], map_location="cpu").eval()
    problem = random_problem(base, batch, seed)
    print(f"{args['checkpoint']}: {batch} episodes, H {horizon}, grasp {iterations} iterations (sync every 10), "
          f"on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}")
    print("| dtype | cost trace, max relative diff | actions, max abs diff | states, max abs diff |")
    print("|---|---|---|---|")
    for dtype in (torch.float64, torch.float32):
        wm = copy.deepcopy(base).to(device=device, dtype=dtype)
        inputs = [t if t is None else t.to(device=device, dtype=dtype) for t in problem]
        results = []
        for compiled in (False, True):
            torch._dynamo.reset()
            planner = build_planner("grasp", iterations=iterations, sync_every=10, compile=compiled)
            results.append(planner.plan(wm, inputs[0], inputs[1], horizon,
                                        generator=torch.Generator(device).manual_seed(seed),
                                        past_z=inputs[2], past_a=inputs[3]))
        eager, comp = results
        rel = ((comp.cost_trace - eager.cost_trace).abs() / eager.cost_trace.abs().clamp_min(1e-12)).max().item()
        da = (comp.actions - eager.actions).abs().max().item()
        ds = (comp.states - eager.states).abs().max().item()
        label = "float64" if dtype == torch.float64 else ("float32 (bf16 autocast)" if device.type == "cuda" else "float32")
        print(f"| {label} | {rel:.2e} | {da:.2e} | {ds:.2e} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
