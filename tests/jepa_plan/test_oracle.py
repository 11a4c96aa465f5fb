"""two_rooms oracle: exact dynamics, pixel-accurate encoding, smoothed gradients, protocol."""

import numpy as np
import pytest
import torch

from jepa_plan.envs.two_rooms.oracle import TwoRoomsOracle
from jepa_plan.envs.two_rooms import TwoRoomsConfig, geometry, render_states, sample_free_state, step_states
from planners import WorldModel

CFG = TwoRoomsConfig()
GEO = geometry(CFG)


def hard_cases() -> np.ndarray:
    """States on wall faces, in the door, at the door jambs and in the corners, [N, 2]."""
    w, d, b = GEO.wall_x, GEO.door_y, GEO.bound
    return np.array([[-w, 0.6], [w, -0.6], [0.0, 0.0], [0.0, d], [-w, d + 1e-3], [w, -d], [b, b], [-b, -b],
                     [-w - 0.01, 0.05], [0.05, -0.05]], np.float32)


@pytest.mark.parametrize("frameskip", [1, 2])
@pytest.mark.parametrize("wall_softness", [0.0, 0.05])
def test_rollout_matches_step_states(frameskip, wall_softness):
    rng = np.random.default_rng(0)
    starts = np.concatenate([sample_free_state(rng, 54, CFG), hard_cases()])
    horizon = 12
    env_actions = rng.uniform(-1.5, 1.5, size=(len(starts), horizon * frameskip, 2)).astype(np.float32)
    expected, states = [], starts
    for t in range(horizon * frameskip):
        states = step_states(states, env_actions[:, t], CFG)
        if (t + 1) % frameskip == 0:
            expected.append(states)
    oracle = TwoRoomsOracle(CFG, frameskip=frameskip, wall_softness=wall_softness)
    actions = oracle.normalize_actions(torch.as_tensor(env_actions).view(len(starts), horizon, frameskip, 2))
    actions.requires_grad_(True)  # the smoothed path runs only when gradients are wanted
    got = oracle.rollout(torch.as_tensor(starts), actions)
    assert got.shape == (len(starts), horizon, 2)
    assert torch.allclose(got.detach(), torch.as_tensor(np.stack(expected, 1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("resolution", [32, 64])
def test_encode_recovers_the_state_within_half_a_pixel(resolution):
    cfg = TwoRoomsConfig(resolution=resolution)
    rng = np.random.default_rng(1)
    states = np.concatenate([sample_free_state(rng, 62, cfg), hard_cases()])
    frames = torch.as_tensor(render_states(states, cfg)).permute(0, 3, 1, 2).reshape(8, 9, 3, resolution, resolution)
    z = TwoRoomsOracle(cfg).encode(frames)
    assert z.shape == (8, 9, 2) and z.dtype == torch.float32
    error = (z.reshape(-1, 2) - torch.as_tensor(states)).abs().max()
    assert error < 0.5 * 2.0 / resolution


def test_encode_without_an_agent_is_nan_and_bad_frames_raise():
    oracle = TwoRoomsOracle(CFG)
    blank = torch.zeros(1, 1, 3, CFG.resolution, CFG.resolution, dtype=torch.uint8)
    assert torch.isnan(oracle.encode(blank)).all()
    with pytest.raises(ValueError, match="uint8 frames"):
        oracle.encode(blank.float())


def test_soft_walls_give_gradients_where_hard_walls_give_none():
    # Pressed on the left wall face just above the door, pushing right for two steps: hard
    # walls block x, so x_2 depends on no action. The smoothed copy says pushing harder moves
    # x and moving down first (toward the door) opens the way.
    start = torch.tensor([[-GEO.wall_x, GEO.door_y + 0.03]])
    grads = {}
    for softness in (0.0, 0.05):
        oracle = TwoRoomsOracle(CFG, wall_softness=softness)
        a = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], requires_grad=True)  # on the box edge, as planners leave it
        oracle.rollout(start, a)[0, -1, 0].backward()
        grads[softness] = a.grad[0]
    assert torch.equal(grads[0.0], torch.zeros(2, 2))
    assert torch.isfinite(grads[0.05]).all()
    assert grads[0.05][1, 0] > 0 and grads[0.05][0, 1] < 0


def test_gradients_are_finite_through_a_long_soft_rollout():
    oracle = TwoRoomsOracle(CFG, frameskip=2, wall_softness=0.05)
    rng = np.random.default_rng(2)
    z0 = torch.as_tensor(sample_free_state(rng, 16, CFG))
    actions = torch.empty(16, 20, 4).uniform_(-1, 1).requires_grad_(True)
    oracle.rollout(z0, actions).pow(2).sum().backward()
    assert torch.isfinite(actions.grad).all() and actions.grad.abs().sum() > 0


def test_oracle_meets_the_planner_protocol():
    oracle = TwoRoomsOracle(CFG, frameskip=3)
    assert isinstance(oracle, WorldModel)
    assert oracle.action_dim == 6 and oracle.frameskip == 3
    assert torch.equal(oracle.action_low, -torch.ones(6)) and torch.equal(oracle.action_high, torch.ones(6))
    a = torch.randn(4, 5, 6)
    assert torch.equal(oracle.normalize_actions(oracle.env_actions(a)), a)
    assert oracle.env_actions(a).shape == (4, 5, 3, 2)
    assert oracle.step(torch.zeros(4, 5, 2), a).shape == (4, 5, 2)  # any leading dims
    with pytest.raises(ValueError, match="step expects"):
        oracle.step(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="frameskip"):
        TwoRoomsOracle(CFG, frameskip=0)
    with pytest.raises(ValueError, match="wall_softness"):
        TwoRoomsOracle(CFG, wall_softness=-1.0)
