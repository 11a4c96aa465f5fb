"""Planners with a history-k world model: the context (the observed frames before z0 and the
actions executed there) reaches every model call, GRASP's lifted step reads each transition's
k-frame window, and a Markov model (k = 1) plans exactly as without a context."""

import pytest
import torch

from encoders import VideoViT
from jepa_plan.envs.two_rooms.oracle import TwoRoomsOracle
from planners import PLANNERS, HistoryWorldModel, Objective, WorldModel, build_planner, model_history
from world_models import WorldModel as LearnedWorldModel
from world_models.transformer import TransformerPredictor

D, FRAMESKIP, H, B = 8, 2, 4, 2
A = 2 * FRAMESKIP

# Tiny searches, each with every model call it makes (GRASP: syncs, probes, rollout init).
SMALL = {
    "cem": dict(samples=16, iterations=3, elites=4),
    "mppi": dict(samples=16, iterations=3, elites=4),
    "gd": dict(iterations=5),
    "grasp": dict(iterations=6, sync_every=2, sync_steps=2, state_init="rollout", reset_states=True),
    "latco": dict(iterations=5),
}
GRASP_SYNCS = {
    "grasp_gd": dict(SMALL["grasp"]),
    "grasp_cem": dict(SMALL["grasp"], sync="cem", sync_samples=8, sync_elites=2),
    "grasp_cem_output_gap": dict(SMALL["grasp"], sync="cem", sync_samples=8, sync_elites=2, sync_spread="output_gap"),
}
VARIANTS = {**{name: (name, cfg) for name, cfg in SMALL.items()},
            **{name: ("grasp", cfg) for name, cfg in GRASP_SYNCS.items()}}


def world_model(history: int) -> LearnedWorldModel:
    """A transformer world model with random weights (the zero-initialised identity map would
    hide every dependency on the context)."""
    torch.manual_seed(0)
    predictor = TransformerPredictor(D, A, hidden=16, layers=2, action_embed=8, heads=2, history=history)
    for p in predictor.parameters():
        torch.nn.init.normal_(p, std=0.3)
    encoder = VideoViT(img_size=16, patch_size=8, dim=D, depth=1, heads=2, mlp_ratio=2.0)
    return LearnedWorldModel(encoder, predictor.requires_grad_(False), latent_mean=torch.zeros(D),
                             latent_proj=torch.eye(D), action_mean=torch.zeros(A), action_std=torch.full((A,), 0.5),
                             env_action_low=torch.tensor([-1.0, -1.0]), env_action_high=torch.tensor([1.0, 1.0]),
                             frameskip=FRAMESKIP, meta={})


def problem(c: int, seed: int = 1, dim: int = D, dtype=torch.float32):
    """z0, goal [B, dim] and a context of c frames: past_z [B, c, dim], past_a [B, c, A]."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(B, dim), (B, dim), (B, c, dim), (B, c, A)]
    return tuple(torch.randn(shape, generator=gen, dtype=dtype) for shape in shapes)


def plan(name: str, wm, z0, goal, past_z=None, past_a=None, horizon: int = H):
    base, cfg = VARIANTS[name]
    return build_planner(base, **cfg).plan(wm, z0, goal, horizon, generator=torch.Generator().manual_seed(0),
                                           past_z=past_z, past_a=past_a)


def same_result(a, b) -> bool:
    """Bit for bit: actions, cost, trace, transitions, states and diagnostics."""
    tensors = [(a.actions, b.actions), (a.cost, b.cost), (a.cost_trace, b.cost_trace)]
    tensors += [(a.diagnostics[k], b.diagnostics[k]) for k in a.diagnostics if k in b.diagnostics]
    if a.states is not None and b.states is not None:
        tensors.append((a.states, b.states))
    return (a.transitions == b.transitions and (a.states is None) == (b.states is None)
            and a.diagnostics.keys() == b.diagnostics.keys() and all(torch.equal(x, y) for x, y in tensors))


class Recording:
    """A history model that records the context of every call and counts transitions: a window
    of `step_sequence`, a step of `rollout` or `step` counts one (z, a) pair."""

    def __init__(self, wm):
        self.wm, self.history, self.calls, self.pairs = wm, wm.history, [], 0
        self.frameskip, self.action_low, self.action_high = wm.frameskip, wm.action_low, wm.action_high
        self.action_dim = wm.action_dim

    def encode(self, frames):
        return self.wm.encode(frames)

    def step(self, z, a, past_z=None, past_a=None):
        self.calls.append(("step", None if past_z is None else past_z.shape[-2]))
        self.pairs += z.shape[:-1].numel()
        return self.wm.step(z, a, past_z, past_a)

    def rollout(self, z0, actions, past_z=None, past_a=None):
        self.calls.append(("rollout", None if past_z is None else past_z.shape[1]))
        self.pairs += actions.shape[:2].numel()
        return self.wm.rollout(z0, actions, past_z, past_a)

    def step_sequence(self, z, a):
        self.calls.append(("step_sequence", z.shape[-2]))
        self.pairs += z.shape[:-1].numel()
        return self.wm.step_sequence(z, a)


class ExplicitWindows(Recording):
    """`step_sequence` computed the long way: each transition a `step` with its explicit window."""

    def step_sequence(self, z, a):
        return torch.stack([self.wm.step(z[..., t, :], a[..., t, :], z[..., :t, :], a[..., :t, :])
                            for t in range(z.shape[-2])], dim=-2)


def explicit_lifted_terms(wm, planner, z0, goal, states, actions, past_z, past_a):
    """GRASP's terms from one `step` per transition, each with its explicit k-frame window:
    transition t reads (context, s_0..s_t) and (past actions, a_0..a_t), sg on every state input."""
    seq_z = torch.cat([past_z, z0[:, None], states], 1)
    seq_a = torch.cat([past_a, actions], 1)
    if planner.config.stop_grad:
        seq_z = seq_z.detach()
    c = past_z.shape[1]
    pred = torch.stack([wm.step(seq_z[:, c + t], seq_a[:, c + t], seq_z[:, :c + t], seq_a[:, :c + t])
                        for t in range(actions.shape[1])], 1)
    targets = torch.cat([states, goal[:, None]], 1)
    return (pred - targets).pow(2).flatten(2).mean(-1).sum(-1), planner.goal_objective(pred, goal)


# ----------------------------------------------------------------------------- k = 1: nothing changes


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_markov_model_plans_exactly_as_without_a_context(name):
    z0, goal, past_z, past_a = problem(c=2)
    wm = world_model(history=1)
    assert model_history(wm) == 1
    plain = plan(name, wm, z0, goal)
    assert same_result(plan(name, wm, z0, goal, past_z, past_a), plain)
    # the oracle has no `history` (a Markov WorldModel, not a HistoryWorldModel): its context is ignored too
    oracle = TwoRoomsOracle(frameskip=FRAMESKIP)
    assert isinstance(oracle, WorldModel) and not isinstance(oracle, HistoryWorldModel) and model_history(oracle) == 1
    z0, goal, past_z, past_a = problem(c=2, dim=2)
    z0, goal, past_z = 0.3 * z0, 0.3 * goal, 0.3 * past_z
    assert same_result(plan(name, oracle, z0, goal, past_z, past_a), plan(name, oracle, z0, goal))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_an_empty_context_is_no_context(name):
    z0, goal, past_z, past_a = problem(c=0)
    wm = world_model(history=3)
    assert isinstance(wm, HistoryWorldModel)
    assert same_result(plan(name, wm, z0, goal, past_z, past_a), plan(name, wm, z0, goal))


# ----------------------------------------------------------------------------- k > 1: the context is used


@pytest.mark.parametrize("history", [2, 3])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_context_reaches_every_model_call_and_changes_the_plan(name, history):
    z0, goal, past_z, past_a = problem(c=4)  # more than k - 1 frames: the last k - 1 count
    keep = history - 1
    wm = Recording(world_model(history))
    result = plan(name, wm, z0, goal, past_z, past_a)
    assert result.actions.shape == (B, H, A) and torch.isfinite(result.cost).all()

    # every rollout (search, syncs, probes, final cost) starts from the trimmed context; the
    # lifted steps see (context, s_0..s_{T-1}); the transitions counted are the ones evaluated
    assert wm.calls and all(c == (keep + H if kind == "step_sequence" else keep) for kind, c in wm.calls)
    if VARIANTS[name][0] in ("grasp", "latco"):
        assert ("step_sequence", keep + H) in wm.calls
    assert result.transitions == wm.pairs

    # the final cost is the plan's objective rolled out from the context
    rolled = wm.wm.rollout(z0, result.actions, past_z, past_a)
    assert torch.allclose(result.cost, Objective()(rolled, goal))
    # another context changes the search's plan and its cost; the frames beyond k - 1 do not
    other = plan(name, wm, z0, goal, past_z + 1.0, past_a.flip(-1))
    assert not torch.equal(other.actions, result.actions)
    assert (other.cost - result.cost).abs().min() > 1e-4
    older = past_z.clone(), past_a.clone()
    older[0][:, :-keep], older[1][:, :-keep] = 5.0, -1.0
    assert same_result(plan(name, wm, z0, goal, *older), result)
    without = plan(name, wm, z0, goal)
    assert (without.cost - result.cost).abs().min() > 1e-4


def test_plan_checks_the_context():
    z0, goal, past_z, past_a = problem(c=2)
    wm, planner = world_model(history=3), build_planner("cem", **SMALL["cem"])
    with pytest.raises(ValueError, match="go together"):
        planner.plan(wm, z0, goal, H, past_z=past_z)
    with pytest.raises(ValueError, match=r"must be \[B, c, \*S\] / \[B, c, A\]"):
        planner.plan(wm, z0, goal, H, past_z=past_z, past_a=past_a[:, 1:])
    with pytest.raises(ValueError, match=r"must be \[B, c, \*S\] / \[B, c, A\]"):
        planner.plan(wm, z0, goal, H, past_z=past_z[..., :3], past_a=past_a)


# ----------------------------------------------------------------------------- GRASP's lifted step


@pytest.mark.parametrize("stop_grad", [True, False], ids=["grasp", "latco"])
@pytest.mark.parametrize("c", [0, 1, 2])
def test_lifted_step_is_each_transition_with_its_explicit_window(c, stop_grad):
    """Exact: GRASP hands the model the trajectory (context, s_0..s_{T-1}) and keeps the T
    transitions after the context, each reading its own k-frame window (k = 3; with c < k - 1
    the first windows are shorter, as at an episode's start). Values and gradients."""
    wm = ExplicitWindows(world_model(history=3))
    planner = build_planner("grasp", stop_grad=stop_grad, gamma=0.5)
    z0, goal, past_z, past_a = problem(c=c)
    gen = torch.Generator().manual_seed(2)
    states = torch.randn(B, H - 1, D, generator=gen).requires_grad_(True)
    actions = torch.randn(B, H, A, generator=gen).requires_grad_(True)

    terms = planner.lifted_terms(wm, z0, goal, states, actions, past_z if c else None, past_a if c else None)
    want = explicit_lifted_terms(wm.wm, planner, z0, goal, states, actions, past_z, past_a)
    assert all(torch.equal(got, ref) for got, ref in zip(terms, want))
    grads = torch.autograd.grad(sum(t.sum() for t in terms), (states, actions))
    want_grads = torch.autograd.grad(sum(t.sum() for t in want), (states, actions))
    assert all(torch.equal(got, ref) for got, ref in zip(grads, want_grads))


def test_lifted_step_on_the_batched_transformer_matches_the_explicit_windows():
    """The real `step_sequence` (all windows in one call) agrees with the explicit windows to
    rounding: the transformer batches windows differently, so not bit for bit (fp64 here)."""
    wm = world_model(history=3).double()
    planner = build_planner("grasp")
    z0, goal, past_z, past_a = problem(c=2, dtype=torch.float64)
    states = torch.randn(B, H - 1, D, dtype=torch.float64)
    actions = torch.randn(B, H, A, dtype=torch.float64)
    terms = planner.lifted_terms(wm, z0, goal, states, actions, past_z, past_a)
    want = explicit_lifted_terms(wm, planner, z0, goal, states, actions, past_z, past_a)
    for got, ref in zip(terms, want):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_lifted_gradients_stop_at_states_and_reach_actions_through_later_windows():
    """sg (GRASP): a state gets gradient only as a target, never through F's input, not even
    as the context of a later transition; an action gets it from its own transition and from
    the k - 1 after it, which read it as context."""
    wm = world_model(history=3)
    z0, goal, past_z, past_a = problem(c=2)
    states = torch.randn(B, H - 1, D).requires_grad_(True)
    actions = torch.randn(B, H, A).requires_grad_(True)

    defect, _ = build_planner("grasp").lifted_terms(wm, z0, goal, states, actions, past_z, past_a)
    grad_states, grad_actions = torch.autograd.grad(defect.sum(), (states, actions))
    with torch.no_grad():
        pred = wm.step_sequence(torch.cat([past_z, z0[:, None], states], 1), torch.cat([past_a, actions], 1))[:, 2:]
    assert torch.allclose(grad_states, -2 * (pred[:, :-1] - states) / D, atol=1e-6)  # the target term's alone
    # LatCo (no sg): states also get gradient through the windows they sit in
    latco, _ = build_planner("latco").lifted_terms(wm, z0, goal, states, actions, past_z, past_a)
    assert not torch.allclose(torch.autograd.grad(latco.sum(), states)[0], grad_states, atol=1e-4)

    # the same defect with every action read as context detached: a_t's gradient from transition t alone
    own = actions.detach().clone().requires_grad_(True)
    seq_z = torch.cat([past_z, z0[:, None], states], 1).detach()
    seq_a = torch.cat([past_a, actions.detach()], 1)
    pred = torch.stack([wm.step(seq_z[:, 2 + t], own[:, t], seq_z[:, :2 + t], seq_a[:, :2 + t]) for t in range(H)], 1)
    own_defect = (pred - torch.cat([states, goal[:, None]], 1)).pow(2).mean(-1).sum()
    grad_own, = torch.autograd.grad(own_defect, own)
    # the last action is context to no transition: the same gradient; earlier ones gain the later windows' share
    assert torch.allclose(grad_actions[:, -1], grad_own[:, -1], atol=1e-6)
    assert ((grad_actions - grad_own)[:, :-1].flatten(2).abs().amax(-1) > 1e-4).all()
