"""GRASP's ingredients one by one: stop-gradient, batched transitions, state-only noise,
interpolation init, sync, diagnostics, and that every switch changes the plan. The whole update
rule is checked against an independent implementation in test_grasp_reference.py."""

import pytest
import torch

from jepa_plan.envs.two_rooms.oracle import TwoRoomsOracle
from jepa_plan.envs.two_rooms import TwoRoomsConfig
from planners import GRASPPlanner, LatCoConfig, build_planner
from world_models.world_model import rollout_steps

ORACLE = TwoRoomsOracle(TwoRoomsConfig(), frameskip=1)
Z0 = torch.tensor([[0.3, 0.2], [0.5, -0.4], [0.6, 0.0]])
GOAL = torch.tensor([[0.6, 0.4], [0.3, -0.2], [0.6, 0.3]])


class Recorder:
    """A linear world model F(s, a) = s M + a N that records, per `step` call, the leading dims,
    whether the state input requires grad, and the gradient that reaches it."""

    frameskip = 1
    action_dim = 2

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.m = torch.eye(2) + 0.1 * torch.randn(2, 2, generator=gen)
        self.n = 0.1 * torch.randn(2, 2, generator=gen)
        self.action_low, self.action_high = -torch.ones(2), torch.ones(2)
        self.calls, self.state_grads = [], []

    def encode(self, frames):
        raise NotImplementedError

    def step(self, z, a):
        self.calls.append((tuple(z.shape[:-1]), z.requires_grad))
        if z.requires_grad:
            z.register_hook(lambda g: self.state_grads.append(g.abs().sum()))
        return z @ self.m + a @ self.n

    def rollout(self, z0, actions):
        return rollout_steps(self.step, z0, actions)


def plan(wm=ORACLE, horizon=5, seed=0, **overrides):
    planner = build_planner("grasp", **{"iterations": 40, "sync_every": 20, **overrides})
    return planner.plan(wm, Z0, GOAL, horizon, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- stop-gradient


@pytest.mark.parametrize("stop_grad", [True, False])
def test_stop_gradient_keeps_gradient_out_of_the_state_input(stop_grad):
    wm = Recorder()
    plan(wm, iterations=5, sync="none", stop_grad=stop_grad)
    lifted = [c for c in wm.calls if c[0] == (3, 5)]  # the batched lifted calls, not the final rollout
    assert len(lifted) == 5
    assert all(requires_grad is (not stop_grad) for _, requires_grad in lifted)
    if stop_grad:
        assert wm.state_grads == []
    else:
        assert len(wm.state_grads) == 5 and all(g > 0 for g in wm.state_grads)


def test_lifted_gradient_on_the_states_is_the_target_term_only():
    # With sg, s_{t+1} is moved only as the target of transition t: dL/ds_{t+1} = -(2/D) r_t,
    # r_t = F(s_t, a_t) - s_{t+1}; the goal term does not touch the states at all.
    wm, planner = Recorder(), build_planner("grasp", gamma=1.0)
    states = torch.randn(3, 4, 2, requires_grad=True)
    actions = torch.randn(3, 5, 2, requires_grad=True)
    planner.lifted_loss(wm, Z0, GOAL, states, actions).sum().backward()
    inputs = torch.cat([Z0[:, None], states.detach()], 1)
    pred = inputs @ wm.m + actions.detach() @ wm.n
    residual = pred[:, :-1] - states.detach()
    assert torch.allclose(states.grad, -residual, atol=1e-6)  # 2 / D = 1 with D = 2


def test_every_transition_is_one_batched_step_call():
    wm = Recorder()
    planner = build_planner("grasp")
    states, actions = torch.zeros(3, 6, 2), torch.zeros(3, 7, 2)
    planner.lifted_loss(wm, Z0, GOAL, states, actions)
    assert wm.calls == [((3, 7), False)]


# ----------------------------------------------------------------------------- noise and init


def test_noise_goes_to_the_states_only():
    init = torch.full((3, 5, 2), 0.3)
    frozen = dict(lr_states=0.0, lr_actions=0.0, sync="none", init_noise=0.0, iterations=3)
    gen = torch.Generator().manual_seed(0)
    noisy = build_planner("grasp", state_noise=0.5, **frozen).plan(ORACLE, Z0, GOAL, 5, init=init, generator=gen)
    quiet = build_planner("grasp", state_noise=0.0, **frozen).plan(ORACLE, Z0, GOAL, 5, init=init, generator=gen)
    assert torch.equal(noisy.actions, init) and torch.equal(quiet.actions, init)
    interp = build_planner("grasp", init_noise=0.0).initial_states(ORACLE, Z0, GOAL, init, None)
    assert torch.allclose(quiet.states, interp)
    spread = (noisy.states - interp).std()
    assert 0.5 < spread < 1.3  # three steps of std 0.5: about 0.87


def test_interpolation_init_runs_from_start_to_goal():
    planner = build_planner("grasp", init_noise=0.0)
    actions = torch.zeros(3, 4, 2)
    states = planner.initial_states(ORACLE, Z0, GOAL, actions, None)
    assert states.shape == (3, 3, 2)
    for t in range(1, 4):
        assert torch.allclose(states[:, t - 1], t / 4 * GOAL + (1 - t / 4) * Z0)
    rollout = build_planner("grasp", init_noise=0.0, state_init="rollout")
    assert torch.allclose(rollout.initial_states(ORACLE, Z0, GOAL, actions, None), Z0[:, None].expand(3, 3, 2))
    zeros = build_planner("grasp", init_noise=0.0, state_init="zeros").initial_states(ORACLE, Z0, GOAL, actions, None)
    assert torch.equal(zeros, torch.zeros(3, 3, 2))
    assert build_planner("grasp").initial_states(ORACLE, Z0, GOAL, actions[:, :1], None).shape == (3, 0, 2)


def test_horizon_one_has_no_lifted_states():
    result = plan(horizon=1)
    assert result.actions.shape == (3, 1, 2) and result.states.shape == (3, 0, 2)


# ----------------------------------------------------------------------------- sync and ablations


def test_states_are_kept_after_a_sync_unless_reset_states():
    kept = plan(iterations=40, sync_every=20)  # the last iteration syncs
    reset = plan(iterations=40, sync_every=20, reset_states=True)
    assert torch.allclose(reset.states, ORACLE.rollout(Z0, reset.actions)[:, :-1], atol=1e-6)
    assert not torch.allclose(kept.states, ORACLE.rollout(Z0, kept.actions)[:, :-1], atol=1e-3)


@pytest.mark.parametrize("change", [
    dict(stop_grad=False), dict(state_noise=0.0), dict(gamma=0.0), dict(sync="none"), dict(sync="cem"),
    dict(state_init="zeros"), dict(lr_states=0.01), dict(reset_states=True), dict(sync_cost="objective"),
    dict(init_noise=0.05), dict(sync="cem", sync_spread="output_gap"),
])
def test_every_switch_changes_the_plan(change):
    base = plan(sync="cem" if "sync_spread" in change else "gd")
    changed = plan(**change)
    assert not torch.allclose(base.actions, changed.actions, atol=1e-4)


# ----------------------------------------------------------------------------- diagnostics


def test_diagnostics_probe_the_true_rollout_at_the_start_every_sync_and_the_end():
    wm = Recorder()
    wm.action_low, wm.action_high = torch.full((2,), -50.0), torch.full((2,), 50.0)  # no final clamp
    result = plan(wm, iterations=45, sync_every=20)  # syncs after 20 and 40; the end at 45 is a probe only
    d = result.diagnostics
    assert d["probe_iteration"].tolist() == [0, 20, 40, 45]
    assert d["defect"].shape == result.cost_trace.shape == (45, 3)
    assert d["shooting_cost"].shape == d["synced_cost"].shape == (4, 3) and d["rollout_gap"].shape == (4, 3, 4)
    # Probe 0: zero actions, states on the straight line from z0 to g.
    zero = torch.zeros(3, 5, 2)
    rolled = wm.rollout(Z0, zero)
    objective = build_planner("grasp").objective
    assert torch.allclose(d["shooting_cost"][0], objective(rolled, GOAL))
    line = torch.stack([Z0 + t / 5 * (GOAL - Z0) for t in range(1, 5)], 1)
    assert torch.allclose(d["rollout_gap"][0], (rolled[:, :-1] - line).pow(2).mean(-1))
    # No sync at the start or at a probe-only end; the end's cost is the plan's cost.
    assert torch.equal(d["synced_cost"][[0, 3]], d["shooting_cost"][[0, 3]])
    assert torch.allclose(d["synced_cost"][-1], result.cost, atol=1e-6)
    # A GD sync on the planner's own objective lowers it (on this linear model).
    synced = plan(wm, iterations=45, sync_every=20, sync_cost="objective").diagnostics
    assert (synced["synced_cost"][1:3] < synced["shooting_cost"][1:3]).all()


def test_the_lifted_loss_is_its_defect_plus_the_weighted_goal_term():
    planner = build_planner("grasp", gamma=0.5)
    states, actions = torch.randn(3, 4, 2), torch.randn(3, 5, 2)
    defect, goal_term = planner.lifted_terms(ORACLE, Z0, GOAL, states, actions)
    assert torch.allclose(planner.lifted_loss(ORACLE, Z0, GOAL, states, actions), defect + 0.5 * goal_term)
    pred = ORACLE.step(torch.cat([Z0[:, None], states], 1), actions)
    assert torch.allclose(defect, (pred - torch.cat([states, GOAL[:, None]], 1)).pow(2).mean(-1).sum(-1))


def test_latco_is_grasp_without_stop_gradient_noise_and_sync():
    config = LatCoConfig()
    assert (config.stop_grad, config.state_noise, config.sync) == (False, 0.0, "none")
    assert isinstance(build_planner("latco"), GRASPPlanner)


# ----------------------------------------------------------------------------- torch.compile


@pytest.mark.slow
def test_compiled_iteration_matches_eager():
    """`compile=True` compiles the lifted loss (forward and backward); the plan must not change.
    In float64, so that Adam's first steps (about lr whatever the gradient's size) do not
    turn rounding-level gradient differences into visible ones."""
    wm = Recorder()
    wm.m, wm.n = wm.m.double(), wm.n.double()
    wm.action_low, wm.action_high = wm.action_low.double(), wm.action_high.double()
    z0, goal = Z0.double(), GOAL.double()
    results = [build_planner("grasp", iterations=30, sync_every=10, compile=compiled)
               .plan(wm, z0, goal, 5, generator=torch.Generator().manual_seed(0)) for compiled in (False, True)]
    eager, compiled = results
    assert torch.allclose(compiled.cost_trace, eager.cost_trace, rtol=1e-9, atol=1e-12)
    assert torch.allclose(compiled.actions, eager.actions, atol=1e-9)
    assert torch.allclose(compiled.states, eager.states, atol=1e-9)
