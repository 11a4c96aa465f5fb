"""two_rooms: dynamics, rendering, env API, registry and exploration policy."""

import numpy as np
import pytest

from jepa_plan.envs import ENVS, make_env
from jepa_plan.envs.two_rooms import (
    TwoRoomsConfig,
    TwoRoomsEnv,
    TwoRoomsExplorer,
    TwoRoomsGymEnv,
    crossed_door,
    geometry,
    is_free,
    render_states,
    room_of,
    sample_free_state,
    step_states,
)

CFG = TwoRoomsConfig(resolution=32)
GEO = geometry(CFG)


def run(state, action, steps):
    """Apply one action repeatedly from one state -> states [steps + 1, 2]."""
    states = [np.asarray(state, np.float32)]
    for _ in range(steps):
        states.append(step_states(states[-1][None], np.asarray([action], np.float32), CFG)[0])
    return np.stack(states)


# ----------------------------------------------------------------------------- dynamics


def test_wall_blocks_outside_the_door():
    path = run([-0.5, 0.6], [1.0, 0.0], 20)
    assert (path[:, 0] <= -GEO.wall_x).all()
    assert path[-1, 0] == pytest.approx(-GEO.wall_x)  # pressed against the wall face
    assert path[-1, 1] == pytest.approx(0.6)


def test_door_lets_the_agent_through():
    path = run([-0.5, 0.0], [1.0, 0.0], 20)
    assert path[-1, 0] > GEO.wall_x
    assert room_of(path[0]) == -1 and room_of(path[-1]) == 1
    assert crossed_door(path[None], CFG).item()


def test_agent_slides_along_the_wall():
    (state,) = step_states(np.array([[-GEO.wall_x, 0.6]]), np.array([[1.0, -0.5]]), CFG)
    assert state == pytest.approx([-GEO.wall_x, 0.6 - 0.5 * CFG.max_speed])
    # Sliding down the wall face into the door rows, then through the door.
    path = run([-GEO.wall_x, 0.6], [1.0, -1.0], 30)
    assert path[-1, 0] > GEO.wall_x


def test_door_corridor_confines_vertical_motion():
    (state,) = step_states(np.array([[0.0, 0.0]]), np.array([[0.0, 1.0]]), CFG)
    assert state == pytest.approx([0.0, GEO.door_y])


def test_actions_are_clipped_and_bounds_hold():
    start = np.array([[0.5, -0.5]], np.float32)
    big = step_states(start, np.array([[5.0, -7.0]]), CFG)
    unit = step_states(start, np.array([[1.0, -1.0]]), CFG)
    np.testing.assert_array_equal(big, unit)
    corner = run([0.8, 0.8], [1.0, 1.0], 5)[-1]
    assert corner == pytest.approx([GEO.bound, GEO.bound])


def test_random_motion_never_enters_the_wall():
    rng = np.random.default_rng(0)
    states = sample_free_state(rng, 500, CFG)
    for _ in range(40):
        states = step_states(states, rng.uniform(-1.5, 1.5, size=(500, 2)), CFG)
        assert is_free(states, CFG).all()


# ----------------------------------------------------------------------------- rendering


def test_render_shape_dtype_and_agent_moves():
    env = TwoRoomsGymEnv(CFG)
    a = env.render_state([-0.5, 0.5])
    b = env.render_state([0.5, -0.5])
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    # Pixel under the agent at (-0.5, 0.5): row 8, column 8 at 32 px.
    assert tuple(a[8, 8]) != tuple(b[8, 8])
    assert not np.array_equal(a, b)


def test_rooms_have_different_floors():
    image = render_states(np.array([[0.0, 0.0]]), CFG)[0]
    assert tuple(image[4, 8]) != tuple(image[4, 24])


def test_render_state_batched_matches_single():
    env = TwoRoomsGymEnv(CFG)
    states = sample_free_state(np.random.default_rng(1), 6, CFG)
    batch = env.render_state(states)
    assert batch.shape == (6, 32, 32, 3)
    for state, image in zip(states, batch):
        np.testing.assert_array_equal(env.render_state(state), image)


# ----------------------------------------------------------------------------- env API


def test_env_is_deterministic_under_a_seed():
    def rollout(seed):
        env = TwoRoomsGymEnv(CFG)
        obs, info = env.reset(seed=seed)
        frames, states = [obs], [info["state"]]
        for a in np.random.default_rng(0).uniform(-1, 1, size=(10, 2)):
            obs, _, _, _, info = env.step(a)
            frames.append(obs)
            states.append(info["state"])
        return np.stack(frames), np.stack(states)

    f1, s1 = rollout(3)
    f2, s2 = rollout(3)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(s1[0], rollout(4)[1][0])


def test_reset_options_goal_reward_and_truncation():
    env = TwoRoomsGymEnv(TwoRoomsConfig(resolution=16, max_episode_steps=5))
    obs, info = env.reset(options={"state": [0.5, 0.0], "goal_state": [0.5, 0.25]})
    assert obs.shape == (16, 16, 3)
    np.testing.assert_allclose(info["state"], [0.5, 0.0])
    _, reward, terminated, truncated, info = env.step([0.0, 1.0])
    assert reward == pytest.approx(-0.15, abs=1e-6) and not terminated and not truncated
    _, reward, terminated, _, info = env.step([0.0, 1.0])
    assert terminated and info["is_success"]

    env.reset(options={"state": [-0.5, 0.0]})
    for _ in range(5):
        _, reward, terminated, truncated, _ = env.step([0.0, 0.0])
        assert reward == 0.0 and not terminated
    assert truncated


def test_state_accessors_and_invalid_states():
    env = TwoRoomsGymEnv(CFG)
    env.reset(seed=0)
    env.set_state([0.3, -0.4])
    np.testing.assert_allclose(env.get_state(), [0.3, -0.4])
    np.testing.assert_array_equal(env.render(), env.render_state([0.3, -0.4]))
    with pytest.raises(ValueError, match="not a free position"):
        env.set_state([0.0, 0.8])  # inside the wall
    with pytest.raises(ValueError, match="unknown options"):
        env.reset(options={"start": [0, 0]})


def test_is_success_scalar_and_batched():
    env = TwoRoomsGymEnv(CFG)
    assert env.is_success([0.0, 0.0], [0.05, 0.0]) is True
    assert env.is_success([0.0, 0.0], [0.2, 0.0]) is False
    batch = env.is_success(np.zeros((3, 2)), np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.09]]))
    np.testing.assert_array_equal(batch, [True, False, True])


def test_spaces_and_sampler():
    env = TwoRoomsGymEnv(CFG)
    assert env.observation_space.shape == (32, 32, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    states = env.sample_free_state(np.random.default_rng(0), 200)
    assert states.shape == (200, 2) and is_free(states, CFG).all()
    assert set(np.unique(room_of(states))) == {-1, 1}
    right = sample_free_state(np.random.default_rng(0), 50, CFG, room=1)
    assert (right[:, 0] >= GEO.wall_x).all()


# ----------------------------------------------------------------------------- registry


def test_every_table_has_one_shape_name_to_class_and_config():
    from dataclasses import is_dataclass

    from encoders import ENCODERS
    from planners import PLANNERS
    from world_models import PREDICTORS

    for table in (ENVS, ENCODERS, PREDICTORS, PLANNERS):
        for name, (cls, config) in table.items():
            assert isinstance(cls, type) and is_dataclass(config), name


def test_make_env_from_dataclass_and_mapping():
    env = make_env({"name": "two_rooms", "resolution": 16})
    assert isinstance(env, TwoRoomsEnv) and isinstance(make_env(CFG), TwoRoomsEnv)
    frames = env.reset(np.zeros((3, 2)) + [[-0.5, 0.0]], np.full((3, 2), np.nan))
    assert frames.shape == (3, 16, 16, 3) and frames.dtype == np.uint8


def test_make_env_rejects_unknown_names_and_keys():
    with pytest.raises(ValueError, match="registered envs: .*pointmaze_umaze.*two_rooms"):
        make_env({"name": "three_rooms"})
    with pytest.raises(ValueError, match="resolution"):
        make_env({"name": "two_rooms", "resolutoin": 16})


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="door_half_width"):
        TwoRoomsGymEnv(TwoRoomsConfig(door_half_width=0.05))


# ----------------------------------------------------------------------------- exploration


def test_explorer_crosses_the_door_often_with_diverse_actions():
    cfg = TwoRoomsConfig()
    rng = np.random.default_rng(0)
    states = sample_free_state(rng, 200, cfg)
    explorer = TwoRoomsExplorer(cfg, rng)
    explorer.reset(states)
    path, actions = [], []
    for _ in range(50):
        path.append(states)
        actions.append(explorer.act(states))
        states = step_states(states, actions[-1], cfg)
    path, actions = np.stack(path, 1), np.stack(actions, 1)
    assert crossed_door(path, cfg).mean() > 0.4
    assert is_free(path, cfg).all()
    assert np.abs(actions).max() <= 1.0
    # Saturated, small and middling actions all occur.
    magnitude = np.abs(actions).ravel()
    assert (magnitude > 0.99).mean() > 0.02 and (magnitude < 0.1).mean() > 0.05


# ----------------------------------------------------------------------------- batched env protocol


def test_batched_env_resets_steps_and_judges_success_by_its_own_criterion():
    env = TwoRoomsEnv(CFG)
    starts = np.array([[-0.5, 0.0], [0.5, 0.5], [0.5, -0.5]], np.float32)
    goals = np.array([[-0.35, 0.0], [0.5, 0.5], [np.nan, np.nan]], np.float32)
    frames = env.reset(starts, goals)
    np.testing.assert_array_equal(env.states(), starts)
    np.testing.assert_array_equal(frames, render_states(starts, CFG))  # the goal draws nothing
    assert env.success().tolist() == [False, True, False]  # 0.15 away; on the goal; a NaN goal never
    frames = env.step(np.array([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]], np.float32), np.array([True, False, True]))
    np.testing.assert_allclose(env.states()[0], [-0.4, 0.0], atol=1e-6)  # clipped to the box: 0.1 a step
    np.testing.assert_array_equal(env.states()[1], starts[1])  # inactive: stays put
    assert env.success().tolist() == [True, True, False]
    np.testing.assert_array_equal(frames[1], render_states(starts[1:2], CFG)[0])
    assert np.isnan(env.distance()[2])
    with pytest.raises(ValueError, match=r"actions must have shape \(3, 2\)"):
        env.step(np.zeros((2, 2)), None)
    sampled = env.sample_states(np.random.default_rng(0), 500)
    assert sampled.shape == (500, 2) and is_free(sampled, CFG).all()
