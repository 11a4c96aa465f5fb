"""Merge the bench.csv of several bench_planners.py runs into one report (not a test).

    python benchmarks/merge_bench.py out=benchmarks/results/learned_open_loop \
        runs=[outputs/bench/learned_open_loop,outputs/bench/learned_open_loop_tuned] drop_family_from_first=[grasp_tuned]

For families added to a benchmark after its first run: the runs must share their goals (same
env, goal source, seed, episodes and horizons), which bench_planners.py guarantees for equal
settings. Rows of a later run replace rows of an earlier one with the same (device, mode,
horizon, planner); `drop_family_from_first` drops whole families of the first run (a preset
redefined since). Writes `bench.md` (with `title` as its header), `bench.csv` and the frontier
plots under `out`, exactly as bench_planners.py does.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_planners import COLUMNS, markdown, plot_frontiers  # noqa: E402

NUMERIC = {"horizon": int, "episodes": int, "transitions_per_replan": int, "replans": int}
KEYS = {"out", "runs", "drop_family_from_first", "title", "reference_family"}


def read_rows(path: Path) -> list[dict]:
    """bench.csv -> rows with bench_planners.py's types (numbers, None for empty cells)."""
    rows = []
    with path.open() as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if key in ("device", "mode", "family", "planner"):
                    row[key] = value
                elif value == "":
                    row[key] = None
                else:
                    row[key] = NUMERIC.get(key, float)(value)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    cfg = OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv)
    unknown = sorted(set(cfg) - KEYS)
    if unknown or "out" not in cfg or "runs" not in cfg:
        sys.exit(f"merge_bench: need out= and runs=[...]; unknown keys {unknown}; valid keys: {sorted(KEYS)}")
    runs = [Path(r) for r in cfg.runs]
    for run in runs:
        if not (run / "bench.csv").exists():
            sys.exit(f"merge_bench: {run / 'bench.csv'}: file not found")
    drop = set(cfg.get("drop_family_from_first", []) or [])
    merged: dict[tuple, dict] = {}
    for i, run in enumerate(runs):
        for row in read_rows(run / "bench.csv"):
            if i == 0 and row["family"] in drop:
                continue
            merged[(row["device"], row["mode"], row["horizon"], row["planner"])] = row
    rows = sorted(merged.values(), key=lambda r: (r["device"], r["mode"], r["horizon"]))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "bench.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    header = cfg.get("title", "") + "\n\nMerged from: " + ", ".join(f"`{r}`" for r in runs) + "."
    (out / "bench.md").write_text(markdown(rows, cfg.get("reference_family", "cem"), header) + "\n")
    for device in dict.fromkeys(r["device"] for r in rows):
        for mode in dict.fromkeys(r["mode"] for r in rows):
            sel = [r for r in rows if r["device"] == device and r["mode"] == mode]
            title = f"{mode}, {device}"
            plot_frontiers(sel, "seconds_per_replan", "seconds per replan (batched)",
                           out / f"frontier_seconds_{mode}.png", title)
            plot_frontiers(sel, "transitions_per_replan", "transitions per replan",
                           out / f"frontier_transitions_{mode}.png", title)
    print(f"wrote {out}/bench.md, bench.csv and plots ({len(rows)} rows from {len(runs)} runs)")


if __name__ == "__main__":
    main()
