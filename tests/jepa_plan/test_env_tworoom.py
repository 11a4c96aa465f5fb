"""tworoom: stable-worldmodel's swm/TwoRoom-v1 behind the batched env protocol, checked against
the package's own env (its render, its dynamics, its `terminated`)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("stable_worldmodel", reason="stable-worldmodel is not installed: pip install -e '.[envs]'")

import cv2  # noqa: E402  (opencv-python-headless comes with the extra)
import gymnasium as gym  # noqa: E402

from jepa_plan.envs.base import MissingExtra  # noqa: E402
from jepa_plan.envs.swm_tworoom import SWMTwoRoomEnv, TwoRoomConfig  # noqa: E402

SPEED = 5.0  # px per unit action, stable-worldmodel's TwoRoom
LEFT_FREE, RIGHT_FREE = (60.0, 150.0), (170.0, 150.0)  # room centres, far from every wall
DOOR_ROW = 49.0  # y of the door's centre


@pytest.fixture(scope="module")
def env():
    env = SWMTwoRoomEnv(TwoRoomConfig(resolution=64))
    yield env
    env.close()


@pytest.fixture(scope="module")
def package_env():
    """The package's own env, to compare against."""
    return gym.make("swm/TwoRoom-v1", render_target=False, disable_env_checker=True)


def package_frame(package_env, state, target, size):
    package_env.reset(options={"state": np.float32(state), "target_state": np.float32(target)})
    return cv2.resize(package_env.render(), (size, size), interpolation=cv2.INTER_AREA)


def test_reset_puts_the_agent_at_the_start(env):
    starts = np.array([LEFT_FREE, RIGHT_FREE, (112.0, DOOR_ROW), (21.0, 203.0)], dtype=np.float32)
    frames = env.reset(starts, np.full_like(starts, np.nan))
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(env.states(), starts)
    read = np.stack([env.state_from_frame(frame) for frame in frames])
    np.testing.assert_allclose(read, starts, atol=1.0)  # within a third of a frame pixel


def test_reset_refuses_a_start_inside_the_wall(env):
    starts = np.array([LEFT_FREE, (112.0, 150.0)], dtype=np.float32)
    with pytest.raises(ValueError, match="not reachable"):
        env.reset(starts, starts)


def test_frames_are_the_packages_render_resized(env, package_env):
    states = np.array([LEFT_FREE, (99.5, 120.0), (112.0, DOOR_ROW), (21.0, 21.0), (203.0, 203.0)], dtype=np.float32)
    ours = env.render_states(states)
    for state, frame in zip(states, ours):
        np.testing.assert_array_equal(frame, package_frame(package_env, state, RIGHT_FREE, 64))


def test_goal_renders_carry_no_target_marker(env):
    start = np.array([LEFT_FREE], dtype=np.float32)
    near, far = np.array([RIGHT_FREE], np.float32), np.array([(190.0, 30.0)], np.float32)
    np.testing.assert_array_equal(env.reset(start, near), env.reset(start, far))
    # ... where the package draws one when asked, so the check above could fail
    marked = gym.make("swm/TwoRoom-v1", render_target=True, disable_env_checker=True)
    assert not np.array_equal(package_frame(marked, start[0], far[0], 64), env.reset(start, far)[0])
    # different agent states give different images
    moved = env.render_states(np.array([LEFT_FREE, (LEFT_FREE[0] + 4, LEFT_FREE[1])], dtype=np.float32))
    assert not np.array_equal(moved[0], moved[1])


def test_step_moves_active_episodes_by_speed_times_action(env):
    starts = np.array([LEFT_FREE, RIGHT_FREE, LEFT_FREE], dtype=np.float32)
    env.reset(starts, starts + 50)
    actions = np.array([[1.0, 0.0], [-0.4, 0.6], [1.0, 1.0]], dtype=np.float32)
    env.step(actions, active=np.array([True, True, False]))
    moved = env.states() - starts
    np.testing.assert_allclose(moved[:2], SPEED * actions[:2], atol=1e-4)
    np.testing.assert_array_equal(moved[2], 0.0)  # inactive: stays put
    env.step(np.full((3, 2), 3.0, dtype=np.float32))  # clipped to the box
    np.testing.assert_allclose(env.states() - starts - moved, SPEED, atol=1e-4)


def test_the_wall_blocks_and_the_door_lets_through(env):
    starts = np.array([(90.0, 150.0), (90.0, DOOR_ROW), (140.0, 150.0)], dtype=np.float32)
    env.reset(starts, np.full_like(starts, np.nan))
    push = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    for _ in range(12):
        env.step(push)
    x = env.states()[:, 0]
    assert x[0] < 107 - 7 + 1  # left of the wall's face, radius included
    assert x[1] > 117 + 7  # through the door, clear of the wall
    assert x[2] > 117 + 7 - 1


@pytest.mark.parametrize("offset", [0.0, 15.0, 15.9, 16.1, 17.0])
def test_success_matches_the_packages_terminated(env, package_env, offset):
    start = np.array([LEFT_FREE], dtype=np.float32)
    goal = start + np.array([[0.6, 0.8]], dtype=np.float32) * offset
    env.reset(start, goal)
    env.step(np.zeros((1, 2), np.float32))
    package_env.reset(options={"state": start[0], "target_state": goal[0]})
    terminated = package_env.step(np.zeros(2, np.float32))[2]
    assert bool(env.success()[0]) == bool(terminated) == (offset < 16)
    np.testing.assert_allclose(env.distance(), offset, atol=1e-4)


def test_success_is_false_for_an_unknown_goal(env):
    start = np.array([LEFT_FREE], dtype=np.float32)
    env.reset(start, np.full_like(start, np.nan))
    assert not env.success()[0] and np.isnan(env.distance()[0])


def test_sampled_states_are_free(env, package_env):
    states = env.sample_states(np.random.default_rng(0), 2000)
    assert states.shape == (2000, 2) and states.dtype == np.float32
    x, y = states[:, 0], states[:, 1]
    assert (np.minimum(x, y) >= 14 + 7).all() and (np.maximum(x, y) <= 224 - 14 - 7).all()  # border + radius
    assert not ((x >= 112 - 5 - 7) & (x <= 112 + 5 + 7)).any()  # wall half-thickness + radius
    assert 0.4 < (env.room_of(states) < 0).mean() < 0.6
    # the package's dynamics leave them where they are: nothing pushes them out of a wall
    env.reset(states[:50], np.full_like(states[:50], np.nan))
    env.step(np.zeros((50, 2), np.float32))
    np.testing.assert_array_equal(env.states(), states[:50])


@pytest.mark.parametrize("kind", ["door", "same_room", "random"])
def test_goal_pairs(env, kind):
    starts, goals = env.goal_pairs(kind, np.random.default_rng(1), 300)
    assert starts.shape == goals.shape == (300, 2)
    assert env.is_free(starts).all() and env.is_free(goals).all()
    assert not env.is_success(starts, goals).any()
    same = env.room_of(starts) == env.room_of(goals)
    if kind == "door":
        assert not same.any()
    elif kind == "same_room":
        assert same.all()
    else:
        assert 0.2 < same.mean() < 0.8


def test_unknown_goal_set_names_the_valid_ones(env):
    with pytest.raises(ValueError, match="door"):
        env.goal_pairs("maze", np.random.default_rng(0), 3)


def test_collect_crosses_the_door_and_replays_in_the_env(env):
    data = env.collect(np.random.default_rng(2), 32, 40)
    assert data.states.shape == (32, 40, 2) and data.actions.shape == (32, 40, 2)
    assert data.frames.shape == (32, 40, 64, 64, 3) and data.frames.dtype == np.uint8
    assert (np.abs(data.actions) <= 1).all()
    stats = env.coverage(data.states, data.actions)
    assert stats["door_crossing_fraction"] > 0
    assert 0 < stats["left_room_fraction"] < 1 and 0 <= stats["blocked_step_fraction"] < 1
    # frames show the states; replaying the actions in the env gives the states again
    np.testing.assert_array_equal(data.frames[:, 7], env.render_states(data.states[:, 7]))
    env.reset(data.states[:, 0], np.full_like(data.states[:, 0], np.nan))
    for t in range(39):
        env.step(data.actions[:, t])
        np.testing.assert_allclose(env.states(), data.states[:, t + 1], atol=1e-4)


def test_coverage_counts_a_crossing_only_when_fully_in_both_rooms(env):
    x = np.array([[60.0, 95.0, 112.0, 130.0], [60.0, 95.0, 112.0, 118.0]], dtype=np.float32)
    states = np.stack([x, np.full_like(x, DOOR_ROW)], axis=-1)
    actions = np.zeros_like(states)
    assert env.coverage(states, actions)["door_crossing_fraction"] == 0.5


def test_building_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_worldmodel", None)  # import now fails
    with pytest.raises(MissingExtra, match=r"\.\[envs\]"):
        SWMTwoRoomEnv(TwoRoomConfig())
