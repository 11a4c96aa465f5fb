"""Training from every data source through train.py's config: a LeRobot export (v3.0 and v2.1)
trains both stages and serves dataset goals; a video folder pretrains the encoder only."""

import json

import numpy as np
import pytest

from helpers import tiny_overrides
from jepa_plan.collect import collect_episodes
from jepa_plan.config import ConfigError, PlanConfig, load_config
from jepa_plan.envs import make_env
from jepa_plan.evaluation.goals import GoalError
from jepa_plan.envs.two_rooms import TwoRoomsConfig
from jepa_plan.export import export
from jepa_plan.planning import goal_set
from jepa_plan.training import run
from world_models import WorldModel

RES = 32


def quiet(*_):
    pass


def source_overrides(tmp, *items):
    """The tiny run of tests/helpers.py reading another source: no collection keys."""
    drop = ("data.dir=", "data.episodes=", "data.episode_steps=")
    return [o for o in tiny_overrides(tmp) if not o.startswith(drop)] + list(items)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("source") / "two_rooms"
    collect_episodes(TwoRoomsConfig(resolution=RES), root, episodes=16, steps=20, seed=0)
    return root


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_a_lerobot_export_trains_both_stages_and_serves_dataset_goals(episodes, tmp_path, version):
    lerobot = tmp_path / "lerobot"
    export(episodes, lerobot, format="lerobot", version=version, log=quiet)
    result = run(load_config(source_overrides(tmp_path, "data=lerobot", f"data.path={lerobot}",
                                              "data.camera=observation.image", "data.action_key=action")))
    readiness = result["planning_readiness"]
    assert {"probe_r2", "probe_r2_s0", "rollout_err_k3"} <= set(readiness)  # states came from observation.state
    saved = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert saved["planning_readiness"] == readiness

    wm = WorldModel.from_checkpoint(tmp_path / "run" / "world_model.pt")
    assert wm.frameskip == 2 and wm.action_dim == 4 and wm.meta["config"]["data"]["name"] == "lerobot"
    assert all(name.startswith("episode_") for name in wm.meta["val_names"])
    # The exported action box travels with the data set, so planning keeps the env's box.
    np.testing.assert_allclose(wm.meta["env_action_low"], json.loads((episodes / "manifest.json").read_text())["action_low"])

    # Dataset goals come from the LeRobot copy's held-out episodes: decoded frames of the
    # recorded states, close to what the env renders for them (AV1 is lossy).
    def plan_config(*items):
        return load_config(["goals=dataset", "episodes=4", "horizon=2", f"env.resolution={RES}", *items],
                           preset="plan", schema=PlanConfig, groups=("env",))

    plan_cfg = plan_config()
    env = make_env({"name": "two_rooms", "resolution": RES})
    goals = goal_set(plan_cfg, env, wm, np.random.default_rng(0))
    assert goals.goal_frames.shape == (4, RES, RES, 3)
    rendered = env.render_states(goals.goal_states).astype(float)
    assert 0 < np.abs(goals.goal_frames.astype(float) - rendered).mean() < 8
    # goal_frames=env: the same goals, imaged as the env renders their states (swm's protocol).
    by_env = goal_set(plan_config("goal_frames=env"), env, wm, np.random.default_rng(0))
    np.testing.assert_array_equal(by_env.goal_states, goals.goal_states)
    np.testing.assert_array_equal(by_env.goal_frames, rendered.astype(np.uint8))
    with pytest.raises(GoalError, match="goal_frames='decoded'; valid: data, env"):
        goal_set(plan_config("goal_frames=decoded"), env, wm, np.random.default_rng(0))


def test_a_video_folder_pretrains_the_encoder_and_refuses_the_world_model_stage(episodes, tmp_path):
    videos = tmp_path / "videos"
    export(episodes, videos, format="mp4", log=quiet)
    items = ["data=video_folder", f"data.path={videos}"]
    with pytest.raises(ConfigError, match=r"data=video_folder .* has no actions.*stage=encoder"):
        run(load_config(source_overrides(tmp_path, *items)))
    run(load_config(source_overrides(tmp_path, *items, "stage=encoder")))
    metrics = json.loads((tmp_path / "run" / "encoder_metrics.json").read_text())
    assert metrics["val/jepa_loss"] > 0 and "val/probe_r2" not in metrics  # no states in plain video
    assert (tmp_path / "run" / "encoder.pt").exists()


def test_data_source_errors_name_the_input(tmp_path):
    with pytest.raises(ConfigError, match="unknown data 'nope'; registered data names: episodes, lerobot, video_folder"):
        load_config(["data=nope"])
    with pytest.raises(ConfigError, match="data=lerobot needs data.path=DIR"):
        run(load_config(source_overrides(tmp_path, "data=lerobot")))
    with pytest.raises(ConfigError, match=r"no meta/info\.json|not a LeRobot"):
        run(load_config(source_overrides(tmp_path, "data=lerobot", f"data.path={tmp_path}")))
    with pytest.raises(ConfigError, match="data.cache applies to video sources"):
        run(load_config([o for o in tiny_overrides(tmp_path)] + [f"data.cache={tmp_path / 'cache'}"]))
