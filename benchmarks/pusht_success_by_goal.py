"""Which Push-T goals a plan run solved (not a test): success against how far the block must move and turn.

    python benchmarks/pusht_success_by_goal.py runs=[outputs/.../plan/lewm_25/episodes.csv,...]

For each planner in each `episodes.csv` of a Push-T plan run, splits the goals by the block's
change from start to goal: its turn (|angle difference| below swm's success threshold pi/9, or
not) and its move (below or above `move_px`, 20 px by default, swm's position threshold). Prints
the successes in each group and the median turn and move of the solved and the failed goals. The
state columns are PushTEnv's: start_2 / start_3 block x / y, start_4 block angle (goal_* likewise).
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.config import script_args  # noqa: E402

ANGLE_THRESHOLD = math.pi / 9


def block_change(row: dict) -> tuple[float, float]:
    """(|turn| in rad, wrapped to [0, pi]; move in px) of the block from start to goal."""
    turn = float(row["goal_4"]) - float(row["start_4"])
    turn = abs((turn + math.pi) % (2 * math.pi) - math.pi)
    move = math.hypot(float(row["goal_2"]) - float(row["start_2"]), float(row["goal_3"]) - float(row["start_3"]))
    return turn, move


def summary_rows(path: Path, move_px: float) -> list[str]:
    if not path.is_file():
        raise SystemExit(f"{path}: no such episodes.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in ("start_2", "start_3", "start_4", "goal_2", "goal_3", "goal_4") if rows and c not in rows[0]]
    if not rows or missing:
        raise SystemExit(f"{path}: no Push-T episodes (missing columns {missing or 'all'})")
    out = []
    for planner in dict.fromkeys(r["planner"] for r in rows):
        goals = [(float(r["success"]) > 0, *block_change(r)) for r in rows if r["planner"] == planner]

        def share(keep) -> str:
            picked = [ok for ok, turn, move in goals if keep(turn, move)]
            return f"{sum(picked)}/{len(picked)}"

        def median(ok: bool, i: int) -> str:
            values = [g[i] for g in goals if g[0] == ok]
            return f"{statistics.median(values):.2f}" if values else "-"

        out.append(f"| {path} | {planner} | {share(lambda t, m: True)} "
                   f"| {share(lambda t, m: t < ANGLE_THRESHOLD)} | {share(lambda t, m: t >= ANGLE_THRESHOLD)} "
                   f"| {share(lambda t, m: m < move_px)} | {share(lambda t, m: m >= move_px)} "
                   f"| {median(True, 1)} / {median(False, 1)} | {median(True, 2)} / {median(False, 2)} |")
    return out


def main(argv: list[str]) -> None:
    args = script_args(argv, {"runs": [], "move_px": 20.0})
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
