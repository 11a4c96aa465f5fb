"""Which Push-T goals a plan run solved (not a test): success against how far the block must move and turn.

    python benchmarks/pusht_success_by_goal.py runs=[outputs/.../plan/lewm_25/episodes.csv,...]

For each planner in each `episodes.csv` of a Push-T plan run, splits the goals by the block's
change from start to goal: its turn (|angle difference| below swm's success threshold pi/9, or
not) and its move (below or above `move_px`, by default swm's position threshold of 20 px; both
thresholds are `PushTConfig`'s). Prints the successes in each group and the median turn and move
of the solved and the failed goals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.envs.pusht import BLOCK_ANGLE, BLOCK_XY, STATE_FIELDS, PushTConfig, wrap_angle  # noqa: E402
from jepa_plan.evaluation.report import read_episodes_csv  # noqa: E402

THRESHOLDS = PushTConfig()


def block_change(start: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Push-T states [..., 7] -> the block's |turn| (rad, wrapped to [0, pi]) and move (px) [...]."""
    turn = np.abs(wrap_angle(goal[..., BLOCK_ANGLE] - start[..., BLOCK_ANGLE]))
    move = np.linalg.norm(goal[..., BLOCK_XY] - start[..., BLOCK_XY], axis=-1)
    return turn, move


def summary_rows(path: Path, move_px: float) -> list[str]:
    runs = read_episodes_csv(path)
    out = []
    for planner, run in runs.items():
        if run["start"].shape[1] != len(STATE_FIELDS):
            raise SystemExit(f"{path}: no Push-T episodes (states of {run['start'].shape[1]} values, not "
                             f"{len(STATE_FIELDS)}: {', '.join(STATE_FIELDS)})")
        solved = run["success"]
        turn, move = block_change(run["start"], run["goal"])
        small_turn, small_move = turn < THRESHOLDS.angle_threshold, move < move_px

        def share(group: np.ndarray) -> str:
            return f"{solved[group].sum()}/{group.sum()}"

        def medians(x: np.ndarray) -> str:
            return " / ".join(f"{np.median(x[pick]):.2f}" if pick.any() else "-" for pick in (solved, ~solved))

        out.append(f"| {path} | {planner} | {share(np.ones_like(solved))} | {share(small_turn)} | {share(~small_turn)} "
                   f"| {share(small_move)} | {share(~small_move)} | {medians(turn)} | {medians(move)} |")
    return out


def main(argv: list[str]) -> None:
    args = script_args(argv, {"runs": [], "move_px": THRESHOLDS.position_threshold})
    if not args["runs"]:
        raise SystemExit("give runs=[path/to/episodes.csv,...]")
    move = args["move_px"]
    print(f"| run | planner | solved | turn < pi/9 | turn >= pi/9 | move < {move:g} px | move >= {move:g} px "
          "| median turn (rad), solved / failed | median move (px), solved / failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in args["runs"]:
        print("\n".join(summary_rows(Path(run), move)))


if __name__ == "__main__":
    main(sys.argv[1:])
