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

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.evaluation.report import mcnemar_exact, read_episodes_csv  # noqa: E402


def compare(a: dict, b: dict, planners: list[str] | None = None) -> list[str]:
    """Markdown rows, one per planner in both runs (`read_episodes_csv` dicts); stops on goals that differ."""
    shared = [p for p in a if p in b and (not planners or p in planners)]
    if not shared:
        raise SystemExit(f"no planner in both a ({', '.join(a)}) and b ({', '.join(b)})")
    rows = []
    for planner in shared:
        _, i, j = np.intersect1d(a[planner]["episode"], b[planner]["episode"], return_indices=True)
        states_a = np.concatenate([a[planner]["start"][i], a[planner]["goal"][i]], axis=1)
        states_b = np.concatenate([b[planner]["start"][j], b[planner]["goal"][j]], axis=1)
        differ = np.flatnonzero(np.abs(states_a - states_b).max(axis=1, initial=0.0) > 1e-3)
        if differ.size:
            raise SystemExit(f"{planner} episode {a[planner]['episode'][i[differ[0]]]}: start or goal differs between "
                             "a and b; the runs did not plan to the same goals")
        won_a, won_b = a[planner]["success"][i], b[planner]["success"][j]
        n, a_only, b_only = len(i), int((won_a & ~won_b).sum()), int((won_b & ~won_a).sum())
        rows.append(f"| {planner} | {n} | {won_a.sum()} ({won_a.mean():.0%}) | {won_b.sum()} ({won_b.mean():.0%}) "
                    f"| {a_only} | {b_only} | {mcnemar_exact(a_only, b_only):.2g} |")
    return rows


def main(argv: list[str]) -> None:
    args = script_args(argv, {"a": None, "b": None, "planners": []})
    if not args["a"] or not args["b"]:
        raise SystemExit("give a=<episodes.csv> b=<episodes.csv>")
    rows = compare(read_episodes_csv(Path(args["a"])), read_episodes_csv(Path(args["b"])), args["planners"])
    print(f"a = {args['a']}\nb = {args['b']}")
    print("| planner | goals | a solved | b solved | a only | b only | exact McNemar p |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
