"""How well the scripted Push-T expert pushes, and what each collection policy covers (not a test).

    python benchmarks/bench_pusht_expert.py                          # 20 pairs, 300 steps, noise 0 and 0.2
    python benchmarks/bench_pusht_expert.py episodes=50 steps=200 noise=[0,0.1,0.2]

Expert: `episodes` random start/goal pairs (`PushTEnv.goal_pairs("random")`, seed 0) driven
closed-loop by `PushTExpert` for `steps` env steps at each action-noise level, through the env's
public `reset`/`step` (frames rendered at 64 px, as in collection). Prints swm's success at the
end (`PushT.eval_state`: agent and block positions together within 20 px, and the block angle
within pi/9), the block-only success (block position within 20 px and angle within pi/9), the
share that ever succeeded, and the final block errors.

Collection: `PushTEnv.collect` of `episodes` x 100 steps with expert_fraction 1 and 0 (the
WeakPolicy), and the coverage statistics `collect.py` prints for each.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.envs.pusht import BLOCK_ANGLE, BLOCK_XY, PushTConfig, PushTEnv, wrap_angle  # noqa: E402
from jepa_plan.envs.pusht_policies import PushTExpert  # noqa: E402

DEFAULTS = {"episodes": 20, "steps": 300, "noise": [0.0, 0.2], "collect_steps": 100, "seed": 0}


def expert_rows(env: PushTEnv, episodes: int, steps: int, noise: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    starts, goals = env.goal_pairs("random", rng, episodes)
    env.reset(starts, goals)
    expert = PushTExpert(env.geo, noise=noise)
    ever = np.zeros(episodes, dtype=bool)
    started = time.perf_counter()
    for _ in range(steps):
        env.step(expert.act(env.states(), goals, rng))
        ever |= env.success()
    seconds = time.perf_counter() - started
    final = env.states()
    position = np.linalg.norm(final[:, BLOCK_XY] - goals[:, BLOCK_XY], axis=1)
    angle = np.degrees(np.abs(wrap_angle(final[:, BLOCK_ANGLE] - goals[:, BLOCK_ANGLE])))
    return {"noise": noise, "swm success": env.success().mean(), "ever": ever.mean(),
            "block-only": ((position < env.cfg.position_threshold) & (np.radians(angle) < env.cfg.angle_threshold)).mean(),
            "block px": position.mean(), "block deg": angle.mean(), "ms/episode-step": 1000 * seconds / (steps * episodes)}


def main(argv: list[str]) -> None:
    cfg = script_args(argv, DEFAULTS)
    env = PushTEnv(PushTConfig())
    print(f"expert: {cfg['episodes']} random start/goal pairs, {cfg['steps']} steps")
    print("| action noise | swm success (end) | ever succeeded | block-only success (end) | final block error px | deg | ms per episode-step |")
    print("|---|---|---|---|---|---|---|")
    for noise in cfg["noise"]:
        r = expert_rows(env, cfg["episodes"], cfg["steps"], float(noise), cfg["seed"])
        print(f"| {r['noise']:g} | {r['swm success']:.0%} | {r['ever']:.0%} | {r['block-only']:.0%} | "
              f"{r['block px']:.1f} | {r['block deg']:.1f} | {r['ms/episode-step']:.2f} |")
    print(f"\ncollection: {cfg['episodes']} episodes x {cfg['collect_steps']} steps per policy")
    for name, fraction in (("expert (noise 0.2)", 1.0), ("WeakPolicy", 0.0)):
        policy_env = PushTEnv(replace(env.cfg, expert_fraction=fraction))
        data = policy_env.collect(np.random.default_rng(cfg["seed"]), cfg["episodes"], cfg["collect_steps"])
        stats = policy_env.coverage(data.states, data.actions)
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in stats.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
