"""pusht: stable-worldmodel's swm/PushT-v1 behind the batched env protocol, checked against the
package's own env (its render, its `eval_state`), and the collection policies.

Nothing here is skipped: the `envs` extra (stable-worldmodel, pymunk, pygame, shapely) is part
of `make test`, so a missing package is a failure."""

from __future__ import annotations

import sys

import cv2
import gymnasium as gym
import numpy as np
import pytest

from jepa_plan.envs import make_env
from jepa_plan.envs.base import MissingExtra
from jepa_plan.envs.pusht import BLOCK_POSE, PushTConfig, PushTEnv, block_pose_features
from jepa_plan.envs.pusht_policies import PushTExpert, block_coverage

# [agent x, y, block x, y, angle, agent vx, vy]: the block in the top-left quarter, clear of the
# goal overlay the package draws at (256, 256, pi / 4), the agent apart from it.
STATE = np.array([400.0, 420.0, 150.0, 130.0, 0.7, 0.0, 0.0], dtype=np.float32)
GOAL = np.array([300.0, 100.0, 330.0, 300.0, 2.0, 0.0, 0.0], dtype=np.float32)


@pytest.fixture(scope="module")
def env():
    env = PushTEnv(PushTConfig(resolution=64))
    yield env
    env.close()


def package_env(with_target: bool = False):
    """The package's own env at its 512 px window, to compare against."""
    return gym.make("swm/PushT-v1", with_target=with_target, resolution=512, disable_env_checker=True)


def package_frame(pkg, state, goal) -> np.ndarray:
    pkg.reset(options={"state": np.float64(state), "goal_state": np.float64(goal)})
    return pkg.render()


def test_reset_reproduces_the_state_and_the_packages_render(env):
    starts = np.stack([STATE, GOAL, env.sample_states(np.random.default_rng(3), 1)[0]])
    starts[2, 5:] = (40.0, -25.0)  # a moving agent: its velocity is part of the state
    frames = env.reset(starts, np.full_like(starts, np.nan))
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(env.states(), starts)
    # angles come back modulo 2 pi, as the package observes them
    turned = STATE.copy()
    turned[4] += 2 * np.pi
    env.reset(turned[None], turned[None])
    np.testing.assert_allclose(env.states()[0], STATE, atol=1e-5)
    # frames: the package's 512 px render (agent at rest), area-averaged
    pkg = package_env()
    for start, frame in zip(starts[:2], frames):
        native = package_frame(pkg, start, GOAL)
        np.testing.assert_array_equal(frame, cv2.resize(native, (64, 64), interpolation=cv2.INTER_AREA))
    full = PushTEnv(PushTConfig(resolution=512))
    np.testing.assert_array_equal(full.render_states(STATE[None])[0], package_frame(pkg, STATE, GOAL))
    full.close()


def test_goal_images_carry_no_overlay(env):
    frames = env.reset(np.stack([STATE, STATE]), np.stack([GOAL, STATE]))
    np.testing.assert_array_equal(frames[0], frames[1])  # the goal does not show
    np.testing.assert_array_equal(env.render_states(STATE[None])[0], frames[0])
    # ... where the package, asked for its overlay, draws one: the check above could fail
    marked = cv2.resize(package_frame(package_env(with_target=True), STATE, GOAL), (64, 64),
                        interpolation=cv2.INTER_AREA)
    assert (np.abs(marked.astype(int) - frames[0]).sum(-1) > 30).sum() > 50
    # and different block poses give different images
    moved = STATE.copy()
    moved[4] += 0.3
    assert not np.array_equal(env.render_states(moved[None])[0], frames[0])


@pytest.mark.parametrize("change, success", [
    ({}, True),
    ({2: 19.0}, True),  # block 19 px off
    ({3: 21.0}, False),  # block 21 px off
    ({0: 12.0, 2: 12.0}, True),  # agent and block 12 px off each: 17 px together
    ({0: 15.0, 3: 15.0}, False),  # 21 px together: the agent's error counts
    ({4: np.pi / 9 - 0.01}, True),
    ({4: -(np.pi / 9 + 0.01)}, False),
    ({5: 300.0}, True),  # velocity does not count
])
def test_success_is_the_packages_eval_state(env, change, success):
    goal = STATE.copy()
    goal[4] = 0.05  # near 0: an angle error across 2 pi must wrap
    state = goal.copy()
    for i, delta in change.items():
        state[i] += delta
    state[4] %= 2 * np.pi
    env.reset(state[None], goal[None])
    ours = bool(env.success()[0])
    theirs, _ = package_env().unwrapped.eval_state(np.float64(goal), np.float64(env.states()[0]))
    assert ours == bool(theirs) == success
    assert (env.distance()[0] < 1) == success


def test_success_is_false_for_an_unknown_goal(env):
    env.reset(STATE[None], np.full((1, 7), np.nan, np.float32))
    assert not env.success()[0] and np.isnan(env.distance()[0])


def test_step_moves_active_episodes_and_pushes_the_block(env):
    # the agent 40 px left of the block's stem, pushing right into it
    start = np.array([100.0, 200.0, 160.0, 140.0, 0.0, 0.0, 0.0], dtype=np.float32)
    starts = np.stack([start, start])
    env.reset(starts, starts)
    for _ in range(6):
        env.step(np.array([[0.5, 0.0], [0.5, 0.0]], np.float32), active=np.array([True, False]))
    moved = env.states() - starts
    assert moved[0, 0] > 60 and moved[0, 2] > 5  # the agent travelled and pushed the block right
    np.testing.assert_array_equal(moved[1], 0.0)  # inactive: stays put


def test_sampled_states_are_valid_and_at_rest(env):
    states = env.sample_states(np.random.default_rng(0), 400)
    assert states.shape == (400, 7) and states.dtype == np.float32
    assert ((states[:, :2] >= 50) & (states[:, :2] <= 450)).all()
    assert ((states[:, 2:4] >= 100) & (states[:, 2:4] <= 400)).all()
    assert ((states[:, 4] >= 0) & (states[:, 4] < 2 * np.pi)).all() and (states[:, 5:] == 0).all()
    # the agent never overlaps the block: a step of no action moves nothing
    env.reset(states[:40], states[:40])
    env.step(np.zeros((40, 2), np.float32))
    np.testing.assert_allclose(env.states(), states[:40], atol=1e-3)


def test_block_pose_features_are_continuous_in_the_angle():
    states = np.stack([STATE, STATE])
    states[0, 4], states[1, 4] = 0.001, 2 * np.pi - 0.001
    features = block_pose_features(states)
    assert features.shape == (2, 4)
    np.testing.assert_allclose(features[0], features[1], atol=3e-3)


def block_pose_error(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """[N, 7], [N, 7] -> the block's pose error [N], max(position / 20 px, angle / (pi / 9))."""
    pose, goal = states[:, BLOCK_POSE].astype(np.float64), goals[:, BLOCK_POSE].astype(np.float64)
    angle = np.abs((pose[:, 2] - goal[:, 2] + np.pi) % (2 * np.pi) - np.pi)
    return np.maximum(np.linalg.norm(pose[:, :2] - goal[:, :2], axis=1) / 20, angle / (np.pi / 9))


def test_the_expert_moves_the_block_to_its_goal(env):
    starts, goals = env.goal_pairs("random", np.random.default_rng(7), 4)
    env.reset(starts, goals)
    expert = PushTExpert(env.geo)
    before = block_pose_error(env.states(), goals)
    for _ in range(100):
        env.step(expert.act(env.states(), goals))
    after = block_pose_error(env.states(), goals)
    assert (after < before).all() and after.mean() < 0.5 * before.mean()


def test_collect_mixes_policies_and_replays_in_the_env(env):
    data = env.collect(np.random.default_rng(2), 6, 20)
    assert data.states.shape == (6, 20, 7) and data.actions.shape == (6, 20, 2)
    assert data.frames.shape == (6, 20, 64, 64, 3) and data.frames.dtype == np.uint8
    assert (np.abs(data.actions) <= 1).all()
    np.testing.assert_array_equal(data.frames[:, 5], env.render_states(data.states[:, 5]))
    # replaying the actions from the first states gives the states again
    env.reset(data.states[:, 0], data.states[:, 0])
    for t in range(19):
        env.step(data.actions[:, t])
        np.testing.assert_allclose(env.states(), data.states[:, t + 1], atol=1e-2)


def test_coverage_has_its_keys_and_ranges(env):
    data = env.collect(np.random.default_rng(4), 6, 20)
    stats = env.coverage(data.states, data.actions)
    fractions = ["block_moved_step_fraction", "block_moved_episode_fraction", "block_angle_spread",
                 "block_angle_bin_fraction", "goal_in_range_fraction", "goal_pose_covered_fraction"]
    assert set(stats) == set(fractions) | {"block_x_std", "block_y_std", "goal_pose_nn_median"}
    assert all(isinstance(v, float) for v in stats.values())
    assert all(0 <= stats[k] <= 1 for k in fractions)
    assert stats["block_moved_step_fraction"] > 0 and stats["goal_pose_nn_median"] > 0
    # a block that never moves, at the very goal poses: no motion, every goal covered
    still = np.repeat(np.stack([STATE, GOAL])[:, None], 5, axis=1)
    stats = block_coverage(still, np.stack([STATE, GOAL]))
    assert stats["block_moved_step_fraction"] == 0 and stats["goal_pose_covered_fraction"] == 1
    assert stats["goal_pose_nn_median"] == 0 and stats["goal_in_range_fraction"] == 1


def test_weak_policy_episodes_touch_the_block(env):
    weak = PushTEnv(PushTConfig(expert_fraction=0.0))
    data = weak.collect(np.random.default_rng(5), 4, 30)
    assert weak.coverage(data.states, data.actions)["block_moved_episode_fraction"] > 0
    weak.close()


def test_registry_and_config_checks():
    env = make_env({"name": "pusht", "resolution": 32})
    assert isinstance(env, PushTEnv) and env.render_states(STATE[None]).shape == (1, 32, 32, 3)
    env.close()
    with pytest.raises(ValueError, match="valid keys"):
        make_env({"name": "pusht", "radius": 3})
    with pytest.raises(ValueError, match="expert_fraction"):
        PushTEnv(PushTConfig(expert_fraction=1.5))


@pytest.mark.parametrize("module", ["pymunk", "stable_worldmodel"])
def test_building_without_the_package_names_the_extra(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import now fails
    with pytest.raises(MissingExtra, match=r"\.\[envs\]"):
        PushTEnv(PushTConfig())


def test_probe_features_read_the_block_angle_across_the_wrap():
    from world_models.diagnostics import readiness_table

    a = np.array([[100, 200, 250, 260, np.pi - 1e-3, 1, 2], [100, 200, 250, 260, -np.pi + 1e-3, 1, 2]], dtype=np.float32)
    features, names = PushTEnv.probe_features(a)
    assert names == ["agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos", "agent_vx", "agent_vy"]
    assert features.shape == (2, 8)
    assert np.abs(features[0] - features[1]).max() < 1e-2  # the same pose on both sides of the wrap
    np.testing.assert_allclose(features[:, [0, 1, 2, 3, 6, 7]], a[:, [0, 1, 2, 3, 5, 6]])
    # The readiness table labels the probe's per-dim R^2 with these names.
    d = {"rollout_err_k1": 0.1, "repeat_err_k1": 0.2, "probe_err_k1": 1.0, "probe_repeat_err_k1": 2.0,
         "probe_r2": 0.9, "dist_spearman": 0.8, **{f"probe_r2_s{i}": 0.5 + i / 100 for i in range(8)}}
    assert "block_sin 0.540" in readiness_table(d, names)
