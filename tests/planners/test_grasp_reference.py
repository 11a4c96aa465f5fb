"""The golden test: the batched GRASP planner against a second, independent implementation.

`reference_grasp` below is written from reference/grasp.md alone (the authors' update rule,
step by step), one episode and one time step at a time, with its own Adam. It shares no code
with planners/grasp.py: not the loss, not the optimiser, not the syncs. On a small fixed
random world model, the batched planner must match it on every episode to TOLERANCE after
ITERATIONS iterations, through GD syncs and CEM syncs, with the same noise draws (both read
one generator in the same order: the state noise [B, T-1, D] after every step, then the CEM
sync's samples [B, K, T, A] per CEM iteration). Both run in float64, so the tolerance
measures the rule, not float32 rounding (in float32 the two drift apart by about 1e-5 in 40
iterations: Adam divides small gradients by their own small scale).
"""

import math

import pytest
import torch

from planners import build_planner
from world_models.world_model import rollout_steps

TOLERANCE = 1e-5
ITERATIONS = 40  # with a sync every 10: four syncs, the last on the last iteration
B, T, D, A = 3, 4, 5, 2
SEED = 7


class RandomMLPModel:
    """A fixed random world model z' = z + W2 tanh(W1 [z, a] + b1): smooth, nonlinear, small."""

    frameskip = 1
    action_dim = A

    def __init__(self):
        gen = torch.Generator().manual_seed(3)
        self.w1 = 0.5 * torch.randn(D + A, 16, generator=gen)
        self.b1 = 0.1 * torch.randn(16, generator=gen)
        self.w2 = 0.3 * torch.randn(16, D, generator=gen)
        # A box wide enough that the final clamp in Planner.plan never bites: the authors
        # never clip, and the comparison is about their update rule.
        self.action_low, self.action_high = torch.full((A,), -50.0), torch.full((A,), 50.0)

    def encode(self, frames):
        raise NotImplementedError

    def step(self, z, a):
        return z + torch.tanh(torch.cat([z, a], dim=-1) @ self.w1 + self.b1) @ self.w2

    def rollout(self, z0, actions):
        return rollout_steps(self.step, z0, actions)


class HandAdam:
    """Adam written out (Kingma & Ba; PyTorch's defaults: betas 0.9/0.999, eps 1e-8), one list
    of tensors per learning rate."""

    def __init__(self, groups: list[tuple[list[torch.Tensor], float]]):
        self.groups = groups
        self.m = [[torch.zeros_like(p) for p in params] for params, _ in groups]
        self.v = [[torch.zeros_like(p) for p in params] for params, _ in groups]
        self.t = 0

    def step(self, grads: list[list[torch.Tensor]]) -> None:
        self.t += 1
        for (params, lr), ms, vs, gs in zip(self.groups, self.m, self.v, grads):
            for p, m, v, g in zip(params, ms, vs, gs):
                m.mul_(0.9).add_(0.1 * g)
                v.mul_(0.999).add_(0.001 * g * g)
                m_hat = m / (1 - 0.9 ** self.t)
                v_hat = v / (1 - 0.999 ** self.t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))


class Noise:
    """The batched planner's noise, read per episode: draw the batch's tensor, keep row b."""

    def __init__(self, episode: int):
        self.gen, self.episode = torch.Generator().manual_seed(SEED), episode

    def __call__(self, *shape: int) -> torch.Tensor:
        return torch.randn((B, *shape), generator=self.gen)[self.episode]


def final_distance(wm, z0, actions, goal) -> torch.Tensor:
    """mse(rollout(z0, a)_T, g), one step at a time."""
    z = z0
    for a in actions:
        z = wm.step(z, a)
    return (z - goal).pow(2).mean()


def reference_grasp(wm, z0: torch.Tensor, goal: torch.Tensor, cfg: dict, noise: Noise):
    """One episode: z0, goal [D] -> (actions [T, A], virtual states [T - 1, D])."""
    actions = [torch.zeros(A) for _ in range(T)]
    states = [z0 + k / T * (goal - z0) for k in range(1, T)]  # straight line, no noise
    adam = HandAdam([(states, cfg["lr_states"]), (actions, cfg["lr_actions"])])
    for k in range(cfg["iterations"]):
        # 1-2. loss with sg on the state input; the target s_{t+1} keeps its gradient, g does not
        s = [x.clone().requires_grad_(True) for x in states]
        a = [x.clone().requires_grad_(True) for x in actions]
        loss = torch.zeros(())
        for t in range(T):
            state_in = z0 if t == 0 else s[t - 1].detach()
            pred = wm.step(state_in, a[t])
            target = goal if t == T - 1 else s[t]
            loss = loss + (pred - target).pow(2).mean() + cfg["gamma"] * (pred - goal).pow(2).mean()
        loss.backward()
        # 3. one Adam step on both groups
        adam.step([[x.grad for x in s], [x.grad for x in a]])
        # 4. noise on the virtual states only
        if cfg["state_noise"] > 0:
            draw = noise(T - 1, D)
            for t in range(T - 1):
                states[t].add_(cfg["state_noise"] * draw[t])
        # 5. sync, then a fresh Adam; the virtual states are kept
        if (k + 1) % cfg["sync_every"] == 0 and k > 0:
            actions = gd_sync(wm, z0, goal, actions, cfg) if cfg["sync"] == "gd" else \
                cem_sync(wm, z0, goal, actions, states, cfg, noise)
            adam = HandAdam([(states, cfg["lr_states"]), (actions, cfg["lr_actions"])])
    return torch.stack(actions), torch.stack(states)


def gd_sync(wm, z0, goal, actions, cfg):
    """A fresh Adam at sync_lr on the final step's mse, `sync_steps` steps, no clipping."""
    actions = [x.clone() for x in actions]
    adam = HandAdam([(actions, cfg["sync_lr"])])
    for _ in range(cfg["sync_steps"]):
        a = [x.clone().requires_grad_(True) for x in actions]
        final_distance(wm, z0, a, goal).backward()
        adam.step([[x.grad for x in a]])
    return actions


def cem_sync(wm, z0, goal, actions, states, cfg, noise):
    """Variance per step from the gap at each action's input state; final-step cost; no clipping."""
    with torch.no_grad():
        z, gaps = z0, []
        for t in range(T - 1):
            z = wm.step(z, actions[t])
            gaps.append((z - states[t]).pow(2).mean())
        var = [sum(gaps) / len(gaps)] + gaps  # a_0's input is z0 itself: it gets the mean gap
        var = torch.stack([cfg["sync_var_scale"] * v + cfg["sync_var_min"] for v in var])  # [T]
        mean = torch.stack(actions)
        for _ in range(cfg["sync_steps"]):
            draw = noise(cfg["sync_samples"], T, A)
            samples = [mean + var.sqrt()[:, None] * draw[i] for i in range(cfg["sync_samples"])]
            costs = torch.stack([final_distance(wm, z0, x, goal) * D for x in samples])  # sum over elements
            order = sorted(range(len(samples)), key=lambda i: costs[i].item())[: cfg["sync_elites"]]
            elite = torch.stack([samples[i] for i in order])  # [E, T, A]
            mean = elite.mean(0)
            n = len(order)
            var = ((elite - mean).pow(2).sum(0) / (n - 1)).mean(-1) + cfg["sync_var_min"]  # unbiased
    return list(mean)


GD_SYNC = dict(iterations=ITERATIONS, lr_states=0.1, lr_actions=0.01, gamma=1.0, state_noise=0.01, sync="gd",
               sync_every=10, sync_steps=3, sync_lr=0.05)
CEM_SYNC = dict(GD_SYNC, sync="cem", sync_steps=2, sync_samples=16, sync_elites=4, sync_var_scale=1.0,
                sync_var_min=0.01)
SYNC_EVERY_STEP = dict(GD_SYNC, iterations=6, sync_every=1)  # the first sync comes after the second step


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def starts_and_goals():
    gen = torch.Generator().manual_seed(11)
    return torch.randn(B, D, generator=gen), torch.randn(B, D, generator=gen)


@pytest.mark.parametrize("cfg", [GD_SYNC, CEM_SYNC, SYNC_EVERY_STEP], ids=["gd_sync", "cem_sync", "sync_every_step"])
def test_batched_grasp_matches_the_per_episode_reference(cfg):
    wm = RandomMLPModel()
    z0, goal = starts_and_goals()
    planner = build_planner("grasp", **cfg)
    result = planner.plan(wm, z0, goal, T, generator=torch.Generator().manual_seed(SEED))
    for b in range(B):
        actions, states = reference_grasp(wm, z0[b], goal[b], cfg, Noise(b))
        assert torch.allclose(result.actions[b], actions, atol=TOLERANCE, rtol=0), (b, result.actions[b] - actions)
        assert torch.allclose(result.states[b], states, atol=TOLERANCE, rtol=0), b
    # The comparison means something: the plan moved far from its zero start, and the syncs ran.
    assert result.actions.abs().max() > 0.1
    assert math.isclose(float(result.diagnostics["probe_iteration"][-1]), cfg["iterations"])


@pytest.mark.parametrize("base, departure", [
    (GD_SYNC, {}), (CEM_SYNC, {}),  # controls: the exact rule matches through `search` too
    (GD_SYNC, dict(reset_states=True)), (GD_SYNC, dict(sync_cost="objective")), (GD_SYNC, dict(clip_actions=True)),
    (GD_SYNC, dict(init_noise=0.01)), (GD_SYNC, dict(state_init="rollout")), (CEM_SYNC, dict(sync_spread="output_gap")),
    (CEM_SYNC, dict(reset_states=True)), (CEM_SYNC, dict(sync_keep_mean=True)),
])
def test_each_departure_is_off_in_the_reference_rule_and_breaks_the_match(base, departure):
    wm = RandomMLPModel()
    z0, goal = starts_and_goals()
    actions, _ = reference_grasp(wm, z0[0], goal[0], base, Noise(0))
    box = torch.full((A,), 0.3)  # narrower than the reference's actions, so clipping would bite
    found = build_planner("grasp", **base, **departure).search(wm, z0, goal, T, None,
                                                                torch.Generator().manual_seed(SEED), -box, box)
    assert torch.allclose(found.actions[0], actions, atol=TOLERANCE, rtol=0) is (not departure)
