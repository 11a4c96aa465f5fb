"""pointmaze: the gymnasium-robotics PointMaze adapter behind the batched env protocol."""

import importlib

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="PointMaze needs the envs extra: pip install -e '.[envs]'")
pytest.importorskip("mujoco", reason="PointMaze needs the envs extra: pip install -e '.[envs]'")

from jepa_plan.envs.base import MissingExtra  # noqa: E402
from jepa_plan.envs.pointmaze import (  # noqa: E402
    PointMazeConfig,
    PointMazeEnv,
    PointMazeMediumConfig,
    PointMazeUMazeConfig,
    physics_step,
)


@pytest.fixture(scope="module")
def env():
    env = PointMazeEnv(PointMazeUMazeConfig(resolution=32))
    yield env
    env.close()


def free_cell_centres(env):
    """Centres (x, y) of the free cells, from gymnasium-robotics' own maze map -> [F, 2]."""
    maze = env.scratch.maze
    return np.array([maze.cell_rowcol_to_xy(np.array([i, j]))
                     for i, row in enumerate(maze.maze_map) for j, cell in enumerate(row) if cell != 1])


def is_free(env, xy):
    """Is (x, y) in a free cell of gymnasium-robotics' maze map?"""
    i, j = env.scratch.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
    return env.scratch.maze.maze_map[i][j] != 1


def at_rest(xy):
    xy = np.asarray(xy, dtype=np.float32)
    return np.concatenate([xy, np.zeros_like(xy)], axis=-1)


# ----------------------------------------------------------------------------- configs


def test_configs_name_their_maze_and_limits():
    umaze, medium = PointMazeUMazeConfig(), PointMazeMediumConfig()
    assert (umaze.name, umaze.maze) == ("pointmaze_umaze", "UMaze")
    assert (medium.name, medium.maze) == ("pointmaze_medium", "Medium")
    assert medium.max_episode_steps > umaze.max_episode_steps
    assert umaze.success_radius == medium.success_radius == 0.45
    with pytest.raises(ValueError, match="UMaze"):
        PointMazeEnv(PointMazeConfig(maze="Spiral"))


def test_missing_package_is_a_missing_extra(monkeypatch):
    real_import = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name.split(".")[0] == "gymnasium_robotics":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(MissingExtra, match=r"pip install -e '\.\[envs\]'"):
        PointMazeEnv(PointMazeUMazeConfig())


# ----------------------------------------------------------------------------- episode loop


def test_reset_puts_the_agent_in_the_start_state(env):
    starts = env.sample_states(np.random.default_rng(0), 3)
    starts[:, 2:] = [[0.5, -1.0], [0.0, 2.0], [-3.0, 0.25]]  # moving starts too
    frames = env.reset(starts, env.sample_states(np.random.default_rng(1), 3))
    np.testing.assert_array_equal(env.states(), starts)
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, env.render_states(starts))  # goal images match episode frames


def test_frames_hide_the_goal_and_show_the_agent(env):
    centres = free_cell_centres(env)
    agent = at_rest(centres[:1])
    far_goal = at_rest(centres[-1:])
    on_agent = env.reset(agent, agent)  # the goal ball would sit on the agent
    far = env.reset(agent, far_goal)
    np.testing.assert_array_equal(on_agent, far)
    np.testing.assert_array_equal(on_agent, env.render_states(agent))
    others = env.render_states(at_rest(centres[1:3]))
    assert not np.array_equal(others[0], on_agent[0])
    assert not np.array_equal(others[0], others[1])


def test_camera_looks_straight_down_on_the_whole_maze(env):
    """The ball's pixels sit where a top-down view of the map (y up) puts them."""
    maze, res = env.scratch.maze, env.resolution
    size = max(maze.map_length, maze.map_width)
    under_wall = at_rest(maze.cell_rowcol_to_xy(np.array([0, 0]))[None])  # a wall block hides the ball
    background = env.render_states(under_wall)[0].astype(int)
    centres = free_cell_centres(env)
    for frame, (x, y) in zip(env.render_states(at_rest(centres)), centres):
        rows, cols = np.nonzero(np.abs(frame.astype(int) - background).sum(-1) > 30)
        assert len(rows) > 0
        expected_col, expected_row = (x / size + 0.5) * res - 0.5, (0.5 - y / size) * res - 0.5
        assert abs(cols.mean() - expected_col) < 1.0 and abs(rows.mean() - expected_row) < 1.0


def test_step_pushes_along_the_force_and_inactive_episodes_stay_put(env):
    # From a cell centre the ball has 0.4 of free travel in every direction; 10 steps at full
    # force move it about 0.12, so no wall is touched.
    centre = free_cell_centres(env)[0]
    starts = at_rest(np.repeat(centre[None], 5, axis=0))
    forces = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]], dtype=np.float32)
    active = np.array([True, True, True, True, False])
    first = env.reset(starts, np.full_like(starts, np.nan))
    for _ in range(10):
        frames = env.step(forces, active)
    moved = env.states()[:, :2] - starts[:, :2]
    along = (moved[:4] * forces[:4]).sum(1)
    across = np.abs(moved[:4] * forces[:4, ::-1]).sum(1)
    assert (along > 0.05).all() and (across < 1e-6).all()
    assert ((env.states()[:4, 2:] * forces[:4]).sum(1) > 0).all()  # velocity along the force
    np.testing.assert_array_equal(env.states()[4], starts[4])
    np.testing.assert_array_equal(frames[4], first[4])
    assert all(not np.array_equal(frames[k], first[k]) for k in range(4))


def test_physics_step_is_gymnasiums_point_step(env):
    """Episodes are MjData stepped by physics_step; it must agree with PointEnv.step exactly,
    wall contacts and the velocity clip included."""
    import mujoco

    rng = np.random.default_rng(0)
    start = env.sample_states(rng, 1)[0].astype(np.float64)
    point_env = env.scratch.point_env
    point_env.set_state(start[:2], start[2:])
    data = mujoco.MjData(env.model)
    data.qpos[:], data.qvel[:] = start[:2], start[2:]
    mujoco.mj_forward(env.model, data)
    for action in np.repeat(rng.uniform(-1, 1, size=(20, 2)), 10, axis=0):  # long pushes reach walls
        physics_step(mujoco, env.model, data, action)
        point_env.step(action)
    np.testing.assert_array_equal(data.qpos, point_env.data.qpos)
    np.testing.assert_array_equal(data.qvel, point_env.data.qvel)


def test_success_is_within_0_45_of_the_goal_position(env):
    goal = at_rest(free_cell_centres(env)[:1])
    near, far, moving = goal.copy(), goal.copy(), goal.copy()
    near[0, 0] += 0.4
    far[0, 0] += 0.5
    moving[0, 2:] = [3.0, -2.0]  # the goal's velocity does not count
    starts = np.concatenate([near, far, moving, goal])
    goals = np.concatenate([goal, goal, goal, np.full_like(goal, np.nan)])
    env.reset(starts, goals)
    np.testing.assert_array_equal(env.success(), [True, False, True, False])
    np.testing.assert_allclose(env.distance()[:3], [0.4, 0.5, 0.0], atol=1e-6)
    assert np.isnan(env.distance()[3])


# ----------------------------------------------------------------------------- sampling and goals


@pytest.mark.parametrize("config", [PointMazeUMazeConfig, PointMazeMediumConfig])
def test_sample_states_are_free_positions_at_rest(config):
    env = PointMazeEnv(config(resolution=16))
    try:
        states = env.sample_states(np.random.default_rng(0), 400)
        assert states.shape == (400, 4) and states.dtype == np.float32
        assert (states[:, 2:] == 0).all()
        # The ball (radius 0.1) fits: its rim is in free cells in every axis direction.
        for dx, dy in [(0, 0), (0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1)]:
            assert all(is_free(env, (x + dx, y + dy)) for x, y in states[:, :2])
        # Every free cell gets samples.
        cells = {tuple(env.scratch.maze.cell_xy_to_rowcol(s.astype(np.float64))) for s in states[:, :2]}
        assert len(cells) == len(free_cell_centres(env))
    finally:
        env.close()


def test_far_goal_pairs_are_many_cells_apart_along_the_maze(env):
    # The two arms of the U are 2 cells apart as the crow flies but 6 moves along the maze.
    steps = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    arm_ends = [c for c in free_cell_centres(env) if sum(is_free(env, c + step) for step in steps) == 1]
    assert len(arm_ends) == 2
    assert env.cells_apart(at_rest(arm_ends[:1]), at_rest(arm_ends[1:]))[0] == 6
    starts, goals = env.goal_pairs("far", np.random.default_rng(0), 50)
    assert starts.shape == goals.shape == (50, 4)
    assert (env.cells_apart(starts, goals) >= env.cfg.far_min_cells).all()


# ----------------------------------------------------------------------------- collection


def test_collect_shapes_and_coverage(env):
    data = env.collect(np.random.default_rng(0), 3, 8)
    assert data.states.shape == (3, 8, 4) and data.states.dtype == np.float32
    assert data.actions.shape == (3, 8, 2) and data.actions.dtype == np.float32
    assert data.frames.shape == (3, 8, 32, 32, 3) and data.frames.dtype == np.uint8
    assert (np.abs(data.actions) <= 1).all()
    np.testing.assert_array_equal(data.frames[:, 0], env.render_states(data.states[:, 0]))
    assert all(is_free(env, xy) for xy in data.states[:, :, :2].reshape(-1, 2))
    stats = env.coverage(data.states, data.actions)
    for key in ("cell_visit_fraction", "mean_cells_per_episode", "speed_mean",
                "velocity_autocorr_lag1", "velocity_autocorr_lag5"):
        assert np.isfinite(stats[key]), key
    assert 0 < stats["cell_visit_fraction"] <= 1
    assert 1 <= stats["mean_cells_per_episode"] <= 8
    assert stats["speed_mean"] > 0
