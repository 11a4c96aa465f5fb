"""One benchmark command per env: collect, train, check readiness, plan under the published protocol.

    python -m jepa_plan.benchmark env=NAME size=tiny|full [protocols=[a,b]] [plan.KEY=VALUE ...] [train.KEY=VALUE ...]

`configs/benchmark/<env>.yaml` holds, per env:

    sizes:      {tiny: [train.py overrides], full: [...]}: `tiny` is sized for 2 CPU cores
                (each recipe's header says its measured training time), `full` for one GPU
    protocols:  [{name, source, plan: {plan.py keys}}]: each the published protocol it follows
                (goal source and offset, horizon, MPC or open loop, replanning, budget, episodes)
    published:  [{method, success, protocol, source}]: the published rows to stand beside ours
    plan_sizes: {tiny: [plan.py overrides], ...} (optional): what a size changes in every
                protocol, e.g. a CEM budget that 2 CPU cores can run

Steps, each skipped when its output exists (so a killed run resumes where it stopped):
1. collect the env's data set into `data/<env>_<size>` (`env.collect`, with coverage stats);
2. train both stages into `outputs/benchmark/<env>/<size>/train` (`train.py`'s run, resumable);
3. print the planning-readiness table (held-out episodes) and the data's coverage;
4. run every planner of each protocol on the same goals (`plan.py`'s run);
5. write `outputs/benchmark/<env>/<size>/results.json` and `results.md`: our rows beside the
   published ones, with the protocol, resolution, data size, training and planning wall times
   and the exact commands.

`protocols=[a,b]` runs only the named protocols (default: all), `plan.KEY=VALUE` overrides every
protocol's plan config (e.g. `plan.episodes=10`), and `train.KEY=VALUE` the training config
(e.g. `train.trainer.threads=2`).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from jepa_plan.config import CONFIG_DIR, ConfigError, PlanConfig, load_config, to_container
from jepa_plan.data.episodes import read_manifest
from jepa_plan.envs import ENVS, MissingExtra
from world_models import CheckpointError
from world_models.diagnostics import readiness_table

SIZES = ("tiny", "full")


def log(msg: str) -> None:
    print(f"[jepa-benchmark] {msg}", flush=True)


def parse_args(argv: list[str]) -> dict:
    """`env=`, `size=`, `out=` and the `plan.` / `train.` overrides, each named on error."""
    args = {"env": None, "size": "tiny", "out": "outputs/benchmark", "protocols": None, "plan": [], "train": []}
    for item in argv:
        if "=" not in item:
            raise ConfigError(f"command-line item '{item}' is not key=value")
        key, value = item.split("=", 1)
        if key in ("env", "size", "out"):
            args[key] = value
        elif key == "protocols":
            args[key] = [name.strip() for name in value.strip("[]").split(",") if name.strip()]
        elif key.split(".", 1)[0] in ("plan", "train") and "." in key:
            group, rest = key.split(".", 1)
            args[group].append(f"{rest}={value}")
        else:
            raise ConfigError(f"unknown benchmark key '{key}'; valid: env=, size=, out=, protocols=, plan.KEY=, train.KEY=")
    if args["env"] not in ENVS:
        raise ConfigError(f"unknown env {args['env']!r}; registered envs: {', '.join(sorted(ENVS))}")
    if args["size"] not in SIZES:
        raise ConfigError(f"size={args['size']!r} is not one of {', '.join(SIZES)}")
    return args


def load_recipe(env: str) -> dict:
    path = CONFIG_DIR / "benchmark" / f"{env}.yaml"
    if not path.exists():
        raise ConfigError(f"env {env!r} has no benchmark recipe ({path}); benchmarked envs: "
                          f"{', '.join(sorted(p.stem for p in path.parent.glob('*.yaml')))}")
    recipe = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for key in ("sizes", "protocols"):
        if key not in recipe:
            raise ConfigError(f"{path}: missing key '{key}'")
    return recipe


def train_overrides(args: dict, recipe: dict, root: Path) -> list[str]:
    env, size = args["env"], args["size"]
    return [f"env={env}", f"output_dir={root / 'train'}", f"data.dir=data/{env}_{size}", "resume=true",
            *recipe["sizes"][size], *args["train"]]


def plan_overrides(args: dict, recipe: dict, protocol: dict, root: Path, checkpoint: Path, env_cfg: dict) -> list[str]:
    """plan.py's items: the env exactly as trained, the checkpoint, the protocol, the size's
    `plan_sizes` items, the user's `plan.` items."""
    items = [f"env={args['env']}", *(f"env.{k}={v}" for k, v in env_cfg.items() if k != "name"),
             f"checkpoint={checkpoint}", f"output_dir={root / 'plan' / protocol['name']}"]
    size_plan = recipe.get("plan_sizes", {}).get(args["size"], [])
    return items + dotlist(protocol["plan"]) + list(size_plan) + args["plan"]


def select_protocols(recipe: dict, names: list[str] | None) -> list[dict]:
    """The recipe's protocols, or those named by `protocols=` (in the recipe's order)."""
    if names is None:
        return recipe["protocols"]
    known = [p["name"] for p in recipe["protocols"]]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"protocols={names}: unknown {unknown}; this recipe's protocols: {', '.join(known)}")
    return [p for p in recipe["protocols"] if p["name"] in names]


def dotlist(values: dict, prefix: str = "") -> list[str]:
    """{planner: {cem: {samples: 300}}, planners: [a, b]} -> ["planner.cem.samples=300", "planners=[a,b]"]:
    nested keys one by one, so a protocol's planner settings add to plan.yaml's instead of replacing them."""
    items = []
    for key, value in values.items():
        if isinstance(value, dict):
            items += dotlist(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            items.append(f"{prefix}{key}=[{','.join(map(str, value))}]")
        else:
            items.append(f"{prefix}{key}={value}")
    return items


def train(root: Path, cfg, items: list[str]) -> tuple[dict, float | None]:
    """Train `cfg` (resolved from the train.py `items`) unless world_model.pt exists
    -> (the run's diagnostics, wall seconds, also when reused; None if never recorded)."""
    from jepa_plan.training import run as train_run

    checkpoint = root / "train" / "world_model.pt"
    seconds = None
    if checkpoint.exists():
        log(f"world model found ({checkpoint}): not retraining")
    else:
        log("training: python train.py " + " ".join(shlex.quote(i) for i in items))
        started = time.time()
        train_run(cfg)
        seconds = time.time() - started
        (root / "train" / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    diag_file = root / "train" / "diagnostics.json"
    diagnostics = json.loads(diag_file.read_text()) if diag_file.exists() else {}
    if seconds is None and (root / "train" / "wall_seconds.txt").exists():
        seconds = float((root / "train" / "wall_seconds.txt").read_text())
    return diagnostics, seconds


def markdown(args: dict, recipe: dict, report: dict) -> str:
    """results.md: the readiness table, the coverage, and per protocol our rows beside the published ones."""
    env, size = args["env"], args["size"]
    data = report["data"]
    lines = [f"# {env}, size={size}", "",
             f"Command: `{report['command']}`", "",
             f"- data: {data['episodes']} episodes x {data['episode_steps']} steps at {data['resolution']} px "
             f"({data['dir']}); coverage: " + ", ".join(f"{k} {v:.3g}" for k, v in data["coverage"].items()),
             f"- training: {report['train_seconds'] / 60:.1f} min wall" if report["train_seconds"] else
             "- training: reused an existing checkpoint (wall time not recorded)",
             f"- hardware: {report['hardware']}", ""]
    readiness = report["diagnostics"].get("planning_readiness")
    if readiness:
        lines += ["Planning readiness on held-out episodes:", "", "```", readiness_table(readiness, report["diagnostics"].get("probe_features")), "```", ""]
    for proto in report["protocols"]:
        lines += [f"## {proto['name']}: {proto['source']}", "", f"Command: `{proto['command']}`", "",
                  f"Plan wall time: {proto['seconds'] / 60:.1f} min.", "",
                  "| method | rows | success [95% CI] | s/replan | episodes |", "|---|---|---|---|---|"]
        for name, s in proto["planners"].items():
            lo, hi = s["success_ci95"]
            per = "-" if s["seconds_per_replan"] is None else f"{s['seconds_per_replan']:.2f}"
            lines.append(f"| {name} | ours, {size} ({report['hardware_short']}) | {s['success_rate']:.0%} "
                         f"[{lo:.0%}, {hi:.0%}] | {per} | {s['episodes']} |")
        for row in recipe.get("published", []):
            if row.get("protocol") == proto["name"]:
                lines.append(f"| {row['method']} | published ({row['source']}) | {row['success']} | - | - |")
        lines.append("")
    return "\n".join(lines)


def run(argv: list[str]) -> dict:
    args = parse_args(argv)
    recipe = load_recipe(args["env"])
    selected = select_protocols(recipe, args["protocols"])  # a typo fails before training
    root = Path(args["out"]) / args["env"] / args["size"]
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()

    items = train_overrides(args, recipe, root)
    train_cfg = load_config(items)
    diagnostics, train_seconds = train(root, train_cfg, items)
    manifest = read_manifest(train_cfg.data.dir)
    coverage = {k: v for k, v in manifest["stats"].items() if isinstance(v, float) and k != "seconds"}
    log(f"data {train_cfg.data.dir}: " + ", ".join(f"{k} {v:.3g}" for k, v in coverage.items()))
    if diagnostics.get("planning_readiness"):
        log("planning readiness on held-out episodes:\n" + readiness_table(diagnostics["planning_readiness"], diagnostics.get("probe_features")))

    from jepa_plan.planning import run as plan_run

    protocols = []
    for protocol in selected:
        items = plan_overrides(args, recipe, protocol, root, root / "train" / "world_model.pt", to_container(train_cfg.env))
        log(f"protocol {protocol['name']} ({protocol['source']}): python plan.py "
            + " ".join(shlex.quote(i) for i in items))
        plan_started = time.time()
        result = plan_run(load_config(items, preset="plan", schema=PlanConfig, groups=("env",)))
        protocols.append({"name": protocol["name"], "source": protocol["source"], "plan": protocol["plan"],
                          "command": "python plan.py " + " ".join(shlex.quote(i) for i in items),
                          "seconds": time.time() - plan_started, "planners": result["planners"]})

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    threads = torch.get_num_threads()
    report = {
        "env": args["env"], "size": args["size"],
        "command": "python -m jepa_plan.benchmark " + " ".join(shlex.quote(a) for a in argv),
        "data": {"dir": train_cfg.data.dir, "episodes": len(manifest["episodes"]),
                 "episode_steps": train_cfg.data.episode_steps, "resolution": train_cfg.env.resolution,
                 "coverage": coverage},
        "train_config": to_container(train_cfg), "train_seconds": train_seconds, "diagnostics": diagnostics,
        "protocols": protocols, "published": recipe.get("published", []),
        "hardware": f"{gpu or platform.processor() or 'CPU'}, {os.cpu_count()} CPU cores, torch threads {threads}",
        "hardware_short": "GPU" if gpu else f"CPU, {os.cpu_count()} cores",
        "wall_seconds": time.time() - started,
    }
    (root / "results.json").write_text(json.dumps(report, indent=2))
    (root / "results.md").write_text(markdown(args, recipe, report) + "\n")
    print((root / "results.md").read_text(), flush=True)
    log(f"done in {report['wall_seconds'] / 60:.1f} min; {root}/results.json, {root}/results.md")
    return report


def main(argv: list[str] | None = None) -> None:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except (ConfigError, CheckpointError, MissingExtra) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
