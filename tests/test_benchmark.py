"""python -m jepa_plan.benchmark: collect, train, readiness, every protocol's planners, reports."""

import json

import pytest

from helpers import tiny_overrides
from jepa_plan.benchmark import load_recipe, plan_overrides, run, train_overrides
from jepa_plan.config import CONFIG_DIR, PlanConfig, load_config, to_container
from jepa_plan.config import ConfigError

FAST_PLAN = ["plan.episodes=2", "plan.planners=[cem,grasp]", "plan.planner.cem.samples=16",
             "plan.planner.cem.iterations=2", "plan.planner.cem.elites=4", "plan.planner.grasp.iterations=6",
             "plan.planner.grasp.sync_every=3", "plan.planner.grasp.sync_steps=1", "plan.horizon=3",
             "plan.max_steps=6", "plan.videos=0", "plan.logger.wandb.mode=disabled"]


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_writes_our_rows_beside_the_published(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the data set goes to data/<env>_<size> under the working folder
    train = [f"train.{item}" for item in tiny_overrides(tmp_path)
             if not item.startswith(("output_dir=", "data.dir="))]
    report = run(["env=two_rooms", "size=tiny", f"out={tmp_path / 'bench'}", *train, *FAST_PLAN])
    root = tmp_path / "bench" / "two_rooms" / "tiny"
    saved = json.loads((root / "results.json").read_text())
    assert [p["name"] for p in saved["protocols"]] == ["dataset", "door"]
    for protocol in saved["protocols"]:
        assert set(protocol["planners"]) == {"cem", "grasp"}
        assert protocol["planners"]["cem"]["episodes"] == 2
    assert saved["data"]["episodes"] == 16 and "door_crossing_fraction" in saved["data"]["coverage"]
    assert "probe_r2" in saved["diagnostics"]["planning_readiness"]
    md = (root / "results.md").read_text()
    assert "| cem | ours, tiny" in md and "python -m jepa_plan.benchmark env=two_rooms size=tiny" in md
    assert report["train_seconds"] > 0

    # A second run reuses the data and the checkpoint.
    again = run(["env=two_rooms", "size=tiny", f"out={tmp_path / 'bench'}", *train, *FAST_PLAN])
    assert again["train_seconds"] == pytest.approx(report["train_seconds"], abs=1)


def test_benchmark_errors_name_the_input():
    with pytest.raises(ConfigError, match="unknown env 'three_rooms'; registered envs: .*two_rooms"):
        run(["env=three_rooms"])
    with pytest.raises(ConfigError, match="size='huge' is not one of tiny, full"):
        run(["env=two_rooms", "size=huge"])
    with pytest.raises(ConfigError, match="unknown benchmark key 'episodes'"):
        run(["env=two_rooms", "episodes=3"])
    with pytest.raises(ConfigError, match=r"protocols=\['lewm'\]: unknown \['lewm'\]; this recipe's protocols: lewm_25, grasp_table1_h40"):
        run(["env=pusht", "protocols=[lewm]"])


@pytest.mark.parametrize("env", sorted(p.stem for p in (CONFIG_DIR / "benchmark").glob("*.yaml")))
@pytest.mark.parametrize("size", ["tiny", "full"])
def test_every_recipe_resolves_to_valid_train_and_plan_configs(env, size, tmp_path):
    # A typo in a recipe (a key, a group option, a planner setting) fails here, not an hour into a run.
    recipe = load_recipe(env)
    args = {"env": env, "size": size, "train": [], "plan": []}
    train_cfg = load_config(train_overrides(args, recipe, tmp_path))
    assert train_cfg.env.name == env
    env_cfg = {k: v for k, v in to_container(train_cfg.env).items()}
    for protocol in recipe["protocols"]:
        plan_cfg = load_config(plan_overrides(args, recipe, protocol, tmp_path, tmp_path / "wm.pt", env_cfg),
                               preset="plan", schema=PlanConfig, groups=("env",))
        assert plan_cfg.env.resolution == train_cfg.env.resolution
        assert set(protocol["plan"]["planners"]) <= set(plan_cfg.planners)
        if env == "pusht":  # the tiny size's CPU CEM budget overrides the protocol's 300 x 30
            assert plan_cfg.planner.cem.samples == (128 if size == "tiny" else 300)
