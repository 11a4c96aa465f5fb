"""End to end: plan.py on the oracle and on a tiny trained checkpoint; its errors name the input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tiny_overrides
from jepa_plan.config import ConfigError, PlanConfig, load_config
from jepa_plan.planning import run
from jepa_plan.training import run as train
from world_models import CheckpointError

REPO = Path(__file__).resolve().parents[1]
FAST = ["planner.cem.samples=32", "planner.cem.iterations=3", "planner.cem.elites=4",
        "planner.grasp.iterations=20", "planner.grasp.sync_every=10", "planner.grasp.sync_steps=2",
        "planner.grasp_authors_cem.iterations=20", "planner.grasp_authors_cem.sync_every=10",
        "planner.grasp_authors_cem.sync_steps=2", "planner.grasp_authors_cem.sync_samples=16",
        "planner.grasp_authors_cem.sync_elites=4"]


def plan_config(tmp_path, *items):
    return load_config([f"output_dir={tmp_path / 'plan'}", "logger.wandb.mode=disabled", "videos=2", *FAST, *items],
                       preset="plan", schema=PlanConfig, groups=("env",))


def test_plan_on_the_oracle_writes_every_report(tmp_path):
    cfg = plan_config(tmp_path, "world_model=oracle", "goals=same_room", "episodes=4", "horizon=4",
                      "planners=[cem,grasp,grasp_authors_cem]", "max_steps=30", "env.resolution=32")
    result = run(cfg)
    out = tmp_path / "plan"
    data = json.loads((out / "results.json").read_text())
    assert set(data["planners"]) == {"cem", "grasp", "grasp_authors_cem"}
    for summary in data["planners"].values():
        assert {"success_rate", "success_ci95", "median_seconds_to_success", "seconds_per_replan", "transitions",
                "episodes"} <= set(summary)
        assert summary["episodes"] == 4
    assert data["config"]["goals"] == "same_room" and result["planners"]["cem"]["success_rate"] == 1.0
    assert data["planners"]["grasp"]["sync_share"] is not None and data["planners"]["cem"]["sync_share"] is None
    assert "grasp_authors_cem: lifted loss" in (out / "table.txt").read_text()
    rows = (out / "episodes.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 4
    for name in ("cost_vs_iteration.png", "success_vs_time.png", "config.yaml", "videos/cem/ep_001.gif"):
        assert (out / name).exists(), name


def test_plan_cli_with_a_trained_checkpoint_on_dataset_goals(tmp_path):
    overrides = tiny_overrides(tmp_path, steps=2)
    train(load_config(overrides))
    ckpt = tmp_path / "run" / "world_model.pt"
    cmd = [sys.executable, str(REPO / "plan.py"), f"checkpoint={ckpt}", "episodes=3", "horizon=3", "max_steps=6",
           "env.resolution=32", "planners=[grasp,cem]", f"output_dir={tmp_path / 'plan'}", "logger.wandb.mode=offline",
           *FAST]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "dataset goals" in proc.stdout and "95% CI" in proc.stdout
    data = json.loads((tmp_path / "plan" / "results.json").read_text())
    assert data["planners"]["grasp"]["episodes"] == 3
    assert list((tmp_path / "plan" / "wandb").glob("offline-run-*"))

    # Incompatible: the checkpoint was trained at 32 px, this run would plan at 64 px.
    with pytest.raises(CheckpointError, match=r"world_model.pt: trained on env 'two_rooms' at 32 px"):
        run(plan_config(tmp_path, f"checkpoint={ckpt}", "episodes=1"))


def test_plan_errors_name_the_input(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt: world-model checkpoint not found"):
        run(plan_config(tmp_path, f"checkpoint={tmp_path / 'nope.pt'}"))
    with pytest.raises(ConfigError, match="needs checkpoint=PATH"):
        run(plan_config(tmp_path))
    with pytest.raises(ConfigError, match="unknown planner 'ilqr'; registered planners: cem, gd, grasp, latco, mppi"):
        run(plan_config(tmp_path, "world_model=oracle", "planners=[ilqr]"))
    with pytest.raises(ConfigError, match="planner.cem: .*unknown config keys \\['sampels'\\]"):
        run(plan_config(tmp_path, "world_model=oracle", "planners=[cem]", "planner.cem.sampels=3"))
    with pytest.raises(ConfigError, match="goals='maze' is not a goal source of env 'two_rooms'; "
                                          "valid: dataset, random, image, door, same_room"):
        run(plan_config(tmp_path, "world_model=oracle", "goals=maze"))
    for bound in ("episodes=0", "horizon=0", "max_steps=-5", "replan_every=0"):
        with pytest.raises(ConfigError, match=f"{bound}: must be at least 1"):
            run(plan_config(tmp_path, "world_model=oracle", "goals=random", bound))
    with pytest.raises(ConfigError, match="goal image .*missing.png: file not found"):
        run(plan_config(tmp_path, "world_model=oracle", "goals=image", f"goal_image={tmp_path / 'missing.png'}"))


def test_each_grasp_ablation_in_plan_yaml_turns_off_one_ingredient(tmp_path):
    """configs/plan.yaml's ablations differ from grasp_authors_cem in exactly the switch they name."""
    from dataclasses import asdict

    from jepa_plan.planning import build_planners

    ablations = {"grasp_no_stop_grad": {"stop_grad": False}, "grasp_no_noise": {"state_noise": 0.0},
                 "grasp_no_sync": {"sync": "none"}, "grasp_no_goal_term": {"gamma": 0.0}}
    cfg = load_config([f"planners=[grasp_authors_cem,{','.join(ablations)}]"], preset="plan", schema=PlanConfig,
                      groups=("env",))
    planners = {name: asdict(p.config) for name, p in build_planners(cfg).items()}
    tuned = planners["grasp_authors_cem"]
    assert tuned["sync"] == "cem" and tuned["state_noise"] > 0 and tuned["stop_grad"] and tuned["gamma"] > 0
    for name, switch in ablations.items():
        changed = {k: v for k, v in planners[name].items() if v != tuned[k]}
        assert changed == switch, name


def test_the_presets_named_for_the_authors_are_their_published_settings():
    """`grasp` is the authors' code defaults and `grasp_authors_gd` / `grasp_authors_cem` their two
    published configurations (le-wm-grasp's config/eval/solver/grasp.yaml and grasp_cem_sync.yaml,
    as reference/grasp.md tabulates them), with every departure of ours off. That they then
    compute what the authors' solver computes is test_grasp_reference.py's golden test."""
    from dataclasses import asdict

    from jepa_plan.planning import build_planners

    code_defaults = dict(iterations=200, lr_states=0.1, lr_actions=0.01, state_noise=0.01, sync="gd", sync_every=50,
                         sync_steps=10, sync_lr=0.05, sync_samples=64, sync_elites=8, sync_var_scale=1.0,
                         sync_var_min=0.01)
    published = {
        "grasp": code_defaults,
        "grasp_authors_gd": {**code_defaults, "iterations": 750, "lr_actions": 0.005, "state_noise": 0.005},
        "grasp_authors_cem": {**code_defaults, "iterations": 750, "lr_actions": 0.005, "state_noise": 0.005,
                              "sync": "cem", "sync_steps": 5},
    }
    ours_off = dict(stop_grad=True, gamma=1.0, metric="l2", reset_states=False, clip_actions=False, sync_cost="last",
                    sync_spread="input_gap", sync_keep_mean=False, init_noise=0.0, state_init="interp")
    cfg = load_config([f"planners=[{','.join(published)}]"], preset="plan", schema=PlanConfig, groups=("env",))
    for name, planner in build_planners(cfg).items():
        config = asdict(planner.config)
        assert {key: config[key] for key in {**published[name], **ours_off}} == {**published[name], **ours_off}, name
