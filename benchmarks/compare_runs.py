"""Paired comparison of two plan runs on the same goals (not a test): which wins, and is it noise?

    python benchmarks/compare_runs.py a=outputs/.../lewm_25/episodes.csv b=outputs/.../episodes.csv [planners=[cem]]

Two `episodes.csv` files from `plan.py` (for example one model against another, or one budget
against another) are paired goal by goal: episode i must have the same start and goal state in
both, else it stops and names the first episode that differs. For every planner in both it prints
each run's successes, the goals that only A or only B solved, and the exact McNemar p
(`jepa_plan.evaluation.report.mcnemar_exact`). Pairing makes it sharper than comparing the two
Wilson intervals, which ignore that the goals are shared.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.evaluation.report import mcnemar_exact  # noqa: E402


def read_runs(path: Path) -> dict[str, dict[int, tuple[bool, tuple[float, ...]]]]:
    """episodes.csv -> {planner: {episode: (success, start and goal state)}}."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such episodes.csv")
    runs: dict[str, dict[int, tuple[bool, tuple[float, ...]]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            pose = tuple(round(float(v), 3) for k, v in row.items() if k.startswith(("start_", "goal_")))
            runs.setdefault(row["planner"], {})[int(row["episode"])] = (float(row["success"]) > 0, pose)
    if not runs:
        raise SystemExit(f"{path}: no episodes")
    return runs


def compare(a: dict, b: dict, names_a: str, names_b: str, planners: list[str] | None = None) -> list[str]:
    """Markdown rows, one per planner in both runs; stops on goals that differ."""
    shared = [p for p in a if p in b and (not planners or p in planners)]
    if not shared:
        raise SystemExit(f"no planner in both {names_a} ({', '.join(a)}) and {names_b} ({', '.join(b)})")
    rows = []
    for planner in shared:
        episodes = sorted(set(a[planner]) & set(b[planner]))
        for e in episodes:
            if a[planner][e][1] != b[planner][e][1]:
                raise SystemExit(f"{planner} episode {e}: start or goal differs between {names_a} and {names_b}; "
                                 "the runs did not plan to the same goals")
        wins_a = sum(a[planner][e][0] for e in episodes)
        wins_b = sum(b[planner][e][0] for e in episodes)
        a_only = sum(a[planner][e][0] and not b[planner][e][0] for e in episodes)
        b_only = sum(b[planner][e][0] and not a[planner][e][0] for e in episodes)
        n = len(episodes)
        rows.append(f"| {planner} | {n} | {wins_a} ({wins_a / n:.0%}) | {wins_b} ({wins_b / n:.0%}) "
                    f"| {a_only} | {b_only} | {mcnemar_exact(a_only, b_only):.2g} |")
    return rows


def main(argv: list[str]) -> None:
    args = script_args(argv, {"a": None, "b": None, "planners": []})
    if not args["a"] or not args["b"]:
        raise SystemExit("give a=<episodes.csv> b=<episodes.csv>")
    rows = compare(read_runs(Path(args["a"])), read_runs(Path(args["b"])), "a", "b", args["planners"])
    print(f"a = {args['a']}\nb = {args['b']}")
    print("| planner | goals | a solved | b solved | a only | b only | exact McNemar p |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
