"""Push-T with a perfect perception of each frame (privileged; not a test): what would the tiny
recipe's world model and planners reach if the latent were the true pose, with or without the
block's angle?

    python benchmarks/pusht_state_latent.py out=outputs/oracle/pusht_pose features=pose
    python benchmarks/pusht_state_latent.py out=outputs/oracle/pusht_position features=position

The latent of each frame is the env's own state features (`PushTEnv.probe_features`) instead of an
encoder's vector: `features=pose` gives the agent's x, y, the block's x, y and its angle as sin, cos
(what one frame shows); `features=position` drops the angle (what our encoders carry). Everything
else is the benchmark's tiny recipe, unchanged:
1. the world model trains as `python -m jepa_plan.benchmark env=pusht size=tiny` trains it (the
   recipe's transformer, history, steps and batch; per-dimension standardisation), on those
   features of the same train episodes, cached where the recipe caches encoder latents;
2. planning runs `protocol` (default `lewm_25`) with the size's planners and budgets on the same
   held-out goals. The env hands the planners its state features where it hands them frames, and
   the goals' features replace the goal images.

So the gap between `pose` and `position` is what the block's angle is worth to these planners at
this budget, and the gap between `position` and the encoder's row is what the encoder loses besides
the angle. Writes `<out>/pusht/tiny/train/` (the world model and its readiness), and
`<out>/pusht/tiny/plan/<protocol>/` (`episodes.csv`, comparable with `benchmarks/compare_runs.py`,
and `table.txt`).

Keys: out (required), features (pose | position), protocol (lewm_25), encoder (the encoder.pt the
world model file carries, unused for planning: outputs/benchmark/pusht/tiny_r0/pusht/tiny/train/encoder.pt),
plus train.KEY=VALUE / plan.KEY=VALUE overrides as in `jepa_plan.benchmark`.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.benchmark import load_recipe, parse_args, plan_overrides, select_protocols, train_overrides  # noqa: E402
from jepa_plan.config import PlanConfig, load_config, script_args, to_container  # noqa: E402
from jepa_plan.envs.pusht import PushTEnv  # noqa: E402
from jepa_plan.evaluation.goals import GoalSet  # noqa: E402
from jepa_plan.evaluation.report import format_table, write_episodes_csv  # noqa: E402
from jepa_plan.planning import build_env, build_planners, goal_set, run_planners  # noqa: E402
from jepa_plan.training import make_datamodule, open_data, prepare_output_dir, train_world_model  # noqa: E402
from world_models import WorldModel  # noqa: E402

FEATURES = {"pose": ["agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos"],
            "position": ["agent_x", "agent_y", "block_x", "block_y"]}


def state_features(states: np.ndarray, names: list[str]) -> np.ndarray:
    """Env states [..., S] -> the named `PushTEnv.probe_features` [..., len(names)], float32."""
    features, all_names = PushTEnv.probe_features(states)
    return np.ascontiguousarray(features[..., [all_names.index(n) for n in names]], dtype=np.float32)


def packed(features: np.ndarray) -> np.ndarray:
    """[N, F] -> [N, 1, 1, F]: the shape of a frame batch [N, H, W, C], which the episode loop
    turns into [N, 1, F, 1, 1] for `encode`."""
    return features[:, None, None, :]


class StateObservations:
    """An env whose observations are its state features, packed as frames; all else is the env's."""

    def __init__(self, env, names: list[str]):
        self.env, self.names = env, names

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, start_states: np.ndarray, goal_states: np.ndarray) -> np.ndarray:
        self.env.reset(start_states, goal_states)
        return packed(state_features(self.env.states(), self.names))

    def step(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        self.env.step(actions, active)
        return packed(state_features(self.env.states(), self.names))


class StateWorldModel:
    """A trained `WorldModel` whose `encode` takes packed state features [B, T, F, 1, 1] instead of frames."""

    def __init__(self, wm: WorldModel):
        self.wm = wm

    def __getattr__(self, name):
        return getattr(self.wm, name)

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.wm.standardize(features.flatten(2).float())


def write_state_latents(train_cfg, dm, out: Path, names: list[str]) -> None:
    """The world-model stage's latent cache (`jepa_plan.training.cached_latents`), holding each
    frame's state features as its latent; no codec-noise shifts (the recipe's basis keeps every
    direction)."""
    data = {}
    for split, episode_names in (("train", dm.train_names), ("val", dm.val_names)):
        eps = [dm.store.episode(n) for n in episode_names]
        states = [np.asarray(ep.states, dtype=np.float32) for ep in eps]
        data[split] = {"latents": torch.from_numpy(np.concatenate([state_features(s, names) for s in states])),
                       "actions": torch.from_numpy(np.concatenate([np.asarray(ep.actions, np.float32) for ep in eps])),
                       "states": torch.from_numpy(np.concatenate(states)),
                       "lengths": torch.tensor([len(s) for s in states])}
    frames = train_cfg.world_model.nuisance_frames
    data.update(shifts=torch.zeros(frames, len(names)), shift_frames=frames,
                train_names=list(dm.train_names), val_names=list(dm.val_names))
    torch.save(data, out / "latents.pt")


def main(argv: list[str]) -> None:
    keys = [a for a in argv if not a.startswith(("train.", "plan."))]
    args = script_args(keys, {"out": None, "features": "pose", "protocol": "lewm_25",
                              "encoder": "outputs/benchmark/pusht/tiny_r0/pusht/tiny/train/encoder.pt"})
    if not args["out"]:
        raise SystemExit("give out=DIR")
    if args["features"] not in FEATURES:
        raise SystemExit(f"features={args['features']!r}; valid: {', '.join(FEATURES)}")
    names = FEATURES[args["features"]]
    bench = parse_args(["env=pusht", "size=tiny", f"out={args['out']}", *(a for a in argv if a not in keys)])
    recipe = load_recipe("pusht")
    protocol = select_protocols(recipe, [args["protocol"]])[0]
    root = Path(args["out"]) / "pusht" / "tiny"
    train_cfg = load_config(train_overrides(bench, recipe, root) + ["stage=world_model"])
    out = prepare_output_dir(train_cfg)  # writes its config.yaml, as train.py does
    checkpoint = out / "world_model.pt"
    if not checkpoint.exists():
        if not Path(args["encoder"]).is_file():
            raise SystemExit(f"encoder={args['encoder']}: not found (the world-model file carries an encoder; "
                             "any encoder.pt of the recipe will do)")
        shutil.copy(args["encoder"], out / "encoder.pt")
        dm = make_datamodule(train_cfg, open_data(train_cfg))
        write_state_latents(train_cfg, dm, out, names)  # after encoder.pt: the cache must not be older
        started = time.time()
        train_world_model(train_cfg, dm, out)
        (out / "wall_seconds.txt").write_text(f"{time.time() - started:.0f}\n")
    print(f"world model on state features {names}: {checkpoint}", flush=True)

    items = plan_overrides(bench, recipe, protocol, root, checkpoint, to_container(train_cfg.env))
    cfg = load_config(items, preset="plan", schema=PlanConfig, groups=("env",))
    plan_out = Path(cfg.output_dir)
    plan_out.mkdir(parents=True, exist_ok=True)
    wm = WorldModel.from_checkpoint(checkpoint)
    env = build_env(cfg)
    goals = goal_set(cfg, env, wm, np.random.default_rng(cfg.seed))  # the encoder runs' goals
    goals = GoalSet(goals.start_states, goals.goal_states, packed(state_features(goals.goal_states, names)), goals.kind)
    started, logs, summaries = time.time(), {}, {}
    for name, episodes, summary in run_planners(cfg, StateWorldModel(wm), build_planners(cfg),
                                                StateObservations(env, names), goals, "cpu"):
        logs[name], summaries[name] = episodes, summary
        print(f"{name}: success {summary['success_rate']:.0%}", flush=True)
    table = format_table(summaries, f"{protocol['name']}, latent = state features {names}, {len(goals)} episodes")
    write_episodes_csv(plan_out, logs, goals)
    (plan_out / "table.txt").write_text(table + "\n")
    print(table)
    print(f"plan wall time {(time.time() - started) / 60:.1f} min; {plan_out}/episodes.csv")


if __name__ == "__main__":
    main(sys.argv[1:])
