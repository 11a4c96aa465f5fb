"""CEM, MPPI and GD against small worked examples: each expected value is derived here from
the model's dynamics and the update's formula, not read off the planner's code.

The world model is linear, z_H = z0 + gain * (a_1 + ... + a_H) with z in R^A, so with the l2
objective and H = 1 the cost of an action is mean((z0 + gain * a - goal)^2) over A: the best
action is known in closed form and each sample's cost can be computed by hand.
"""

import math

import pytest
import torch

from planners import GDPlanner, Objective, build_planner
from planners.cem import cem_search, elite_set, sample_actions, score_samples
from planners.gd import gd_descend
from planners.mppi import mppi_update, mppi_weights


class Linear:
    """z_{t+1} = z_t + gain * a_t on z [B, A]; records the actions of every rollout call."""

    frameskip = 1

    def __init__(self, low=(-1.0, -1.0), high=(1.0, 1.0), gain=1.0):
        self.action_low, self.action_high = torch.tensor(low), torch.tensor(high)
        self.gain = gain
        self.calls: list[torch.Tensor] = []  # actions [N, H, A] per rollout

    @property
    def action_dim(self):
        return self.action_low.numel()

    def encode(self, frames):
        raise NotImplementedError

    def step(self, z, a):
        return z + self.gain * a

    def rollout(self, z0, actions):
        self.calls.append(actions.detach().clone())
        return z0.unsqueeze(1) + self.gain * actions.cumsum(1)

    def extreme_actions(self):
        seen = torch.cat([a.flatten() for a in self.calls])
        return seen.min().item(), seen.max().item()


TARGET = torch.tensor([0.6, -0.4])  # the best single action from z0 = 0: goal = z0 + TARGET


def cost_by_hand(actions, target=TARGET):
    """One-step actions [..., A] -> l2 cost mean((a - target)^2) [...], from z0 = 0, gain 1."""
    return (actions - target).pow(2).mean(-1)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- scoring and elites


def test_score_samples_is_the_cost_of_each_sample():
    wm = Linear()
    actions = torch.tensor([[[[0.6, -0.4]], [[0.0, 0.0]], [[1.0, 1.0]]]])  # [B=1, K=3, H=1, A=2]
    cost = score_samples(wm, Objective(), torch.zeros(1, 2), TARGET[None], actions)
    # (0, 0): ((0.6)^2 + (0.4)^2) / 2 = 0.26; (1, 1): ((0.4)^2 + (1.4)^2) / 2 = 1.06
    assert torch.allclose(cost, torch.tensor([[0.0, 0.26, 1.06]]))


def test_elite_set_keeps_the_cheapest_best_first():
    actions = torch.arange(5.0).view(1, 5, 1, 1)  # sample k is the action k
    cost = torch.tensor([[3.0, 1.0, 4.0, 0.5, 2.0]])
    elite, elite_cost = elite_set(actions, cost, 3)
    assert elite.flatten().tolist() == [3.0, 1.0, 4.0]
    assert elite_cost.flatten().tolist() == [0.5, 1.0, 2.0]


def test_cem_refits_to_the_cheapest_samples_and_moves_toward_the_best_action():
    wm = Linear()
    mean, std = torch.zeros(1, 1, 2), torch.full((1, 1, 2), 0.5)
    new_mean, trace = cem_search(wm, Objective(), torch.zeros(1, 2), TARGET[None], mean, std, wm.action_low,
                                 wm.action_high, samples=32, elites=4, iterations=1, generator=generator())
    samples = wm.calls[0].view(32, 2)  # what the model was asked to roll out
    cost = cost_by_hand(samples)
    cheapest = sorted(range(32), key=lambda k: cost[k].item())[:4]
    assert torch.allclose(new_mean.view(2), samples[cheapest].mean(0))
    assert torch.allclose(trace.view(()), cost[cheapest[0]])
    assert cost_by_hand(new_mean.view(2)) < cost_by_hand(mean.view(2))


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_sampling_planners_find_the_best_action(name):
    wm = Linear()
    planner = build_planner(name, samples=64, elites=8, iterations=8)
    result = planner.plan(wm, torch.zeros(3, 2), TARGET.expand(3, 2), 1, generator=generator())
    assert torch.allclose(result.actions.view(3, 2), TARGET.expand(3, 2), atol=0.05)


# ----------------------------------------------------------------------------- CEM: sample 0 and clipping


def test_sample_zero_is_the_mean_and_k_samples_are_drawn():
    mean = torch.tensor([[[0.2, -0.3]], [[0.5, 0.1]]])  # [B=2, H=1, A=2], inside the box
    std = torch.full_like(mean, 0.3)
    low, high = -torch.ones(2), torch.ones(2)
    kept = sample_actions(mean, std, 16, low, high, generator(), keep_mean=True)
    assert kept.shape == (2, 16, 1, 2)
    assert torch.equal(kept[:, 0], mean)
    assert not (kept[:, 1:] == mean.unsqueeze(1)).all(-1).any()
    drawn = sample_actions(mean, std, 16, low, high, generator(), keep_mean=False)
    assert drawn.shape == (2, 16, 1, 2) and not (drawn == mean.unsqueeze(1)).all(-1).any()


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_planners_score_the_warm_start_as_it_stands(name):
    wm = Linear()
    init = torch.tensor([[[0.1, 0.2], [-0.3, 0.4]]])  # [B=1, H=2, A=2]
    build_planner(name, samples=16, elites=4, iterations=1).plan(wm, torch.zeros(1, 2), TARGET[None], 2, init=init)
    assert torch.equal(wm.calls[0].view(16, 2, 2)[0], init[0])
    wm = Linear()
    build_planner(name, samples=16, elites=4, iterations=1, keep_mean=False).plan(
        wm, torch.zeros(1, 2), TARGET[None], 2, init=init)
    assert not (wm.calls[0].view(16, 2, 2) == init[0]).all((-2, -1)).any()


def test_cem_keeps_an_optimal_warm_start_under_a_huge_std():
    # With one elite the mean is the cheapest sample, and with sample 0 the mean it can only get
    # cheaper: an optimal warm start (cost 0) survives any std.
    wm = Linear()
    init = TARGET.view(1, 1, 2)
    kept = build_planner("cem", samples=32, elites=1, iterations=5, std_init=10.0).plan(
        wm, torch.zeros(1, 2), TARGET[None], 1, init=init, generator=generator())
    assert cost_by_hand(TARGET).item() == 0.0 and kept.cost.item() <= 0.0
    lost = build_planner("cem", samples=32, elites=1, iterations=5, std_init=10.0, keep_mean=False).plan(
        wm, torch.zeros(1, 2), TARGET[None], 1, init=init, generator=generator())
    assert lost.cost.item() > 0.01  # the switch matters: without sample 0 the warm start is lost


@pytest.mark.parametrize("clip", [True, False])
def test_cem_clips_samples_to_the_box_only_when_asked(clip):
    wm = Linear(low=(-1.0, 0.0), high=(0.5, 2.0))  # asymmetric, and excludes the target
    planner = build_planner("cem", samples=64, elites=8, iterations=3, std_init=3.0, clip_samples=clip)
    result = planner.plan(wm, torch.zeros(2, 2), torch.tensor([[3.0, -3.0], [-3.0, 3.0]]), 2,
                          generator=generator())
    searched = torch.cat(wm.calls[:-1])  # the last call scores the final plan, clamped by Planner.plan
    inside = ((searched >= wm.action_low) & (searched <= wm.action_high)).all()
    assert inside.item() is clip
    assert ((result.actions >= wm.action_low) & (result.actions <= wm.action_high)).all()


def test_mppi_clips_samples_as_td_mpc2_does():
    wm = Linear()
    build_planner("mppi", samples=64, elites=8, iterations=2).plan(wm, torch.zeros(1, 2), torch.tensor([[5.0, -5.0]]),
                                                                 2, generator=generator())
    low, high = wm.extreme_actions()
    assert low >= -1.0 and high <= 1.0


# ----------------------------------------------------------------------------- MPPI update


def softmax_by_hand(scores):
    exps = [math.exp(s) for s in scores]
    return [e / sum(exps) for e in exps]


ELITE = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # [B=1, E=3, H=1, A=1], best first
COST = torch.tensor([[0.0, 1.0, 2.0]])
NO_CLAMP = (torch.tensor(0.0), torch.tensor(100.0))


def weighted_mean_std(weights, actions=(-1.0, 0.0, 1.0)):
    mean = sum(w * a for w, a in zip(weights, actions))
    return mean, math.sqrt(sum(w * (a - mean) ** 2 for w, a in zip(weights, actions)))


@pytest.mark.parametrize("factor", [1.0, 100.0])
def test_mppi_elite_spread_weights_and_update(factor):
    # (c - c_min) / (c_max - c_min) = [0, 0.5, 1] for costs [0, 1, 2] and for [0, 100, 200]
    temperature = 2.0
    expected = softmax_by_hand([-temperature * 0.0, -temperature * 0.5, -temperature * 1.0])
    weights = mppi_weights(COST * factor, temperature, "elite_spread")
    assert torch.allclose(weights, torch.tensor([expected]))
    mean, std = mppi_update(ELITE, COST * factor, temperature, "elite_spread", *NO_CLAMP)
    want_mean, want_std = weighted_mean_std(expected)
    assert mean.item() == pytest.approx(want_mean, rel=1e-5) and want_mean < -0.5  # uniform weights give 0
    assert std.item() == pytest.approx(want_std, rel=1e-5)


def test_mppi_raw_weights_follow_td_mpc2_and_depend_on_the_scale():
    temperature = 0.5
    expected = softmax_by_hand([-temperature * c for c in (0.0, 1.0, 2.0)])
    assert torch.allclose(mppi_weights(COST, temperature, "none"), torch.tensor([expected]))
    scaled = softmax_by_hand([-temperature * c for c in (0.0, 100.0, 200.0)])  # about [1, 0, 0]
    assert torch.allclose(mppi_weights(COST * 100, temperature, "none"), torch.tensor([scaled]))
    mean, _ = mppi_update(ELITE, COST, temperature, "none", *NO_CLAMP)
    assert mean.item() == pytest.approx(weighted_mean_std(expected)[0], rel=1e-5)


def test_mppi_equal_costs_give_equal_weights():
    weights = mppi_weights(torch.full((2, 4), 3.0), 5.0, "elite_spread")
    assert torch.allclose(weights, torch.full((2, 4), 0.25))


def test_mppi_std_is_clamped_to_its_bounds():
    half_width = 2.0
    std_min, std_max = torch.tensor(0.05 * half_width), torch.tensor(0.5 * half_width)
    same = torch.full((1, 4, 1, 1), 0.3)  # identical elites: weighted std 0
    _, std = mppi_update(same, torch.tensor([[0.0, 1.0, 2.0, 3.0]]), 5.0, "elite_spread", std_min, std_max)
    assert std.item() == pytest.approx(0.1)
    spread = torch.tensor([-3.0, 3.0]).view(1, 2, 1, 1)  # equal costs: weights 1/2, std 3 > std_max = 1
    mean, std = mppi_update(spread, torch.tensor([[1.0, 1.0]]), 5.0, "elite_spread", std_min, std_max)
    assert mean.item() == pytest.approx(0.0) and std.item() == pytest.approx(1.0)


def test_mppi_std_bounds_are_in_half_widths_of_the_box():
    # std_init = 0: every first-iteration sample is the mean 0, so the refitted std is the
    # floor, std_min * half width = 0.05 * 2 = 0.1, and the second iteration samples with it.
    wm = Linear(low=(-1.0, -1.0), high=(3.0, 3.0))
    build_planner("mppi", samples=4000, elites=8, iterations=2, std_init=0.0).plan(
        wm, torch.zeros(1, 2), TARGET[None], 1, generator=generator())
    assert (wm.calls[0] == 0).all()
    second = wm.calls[1].view(4000, 2)[1:]  # sample 0 is the mean
    assert second.std().item() == pytest.approx(0.1, rel=0.05)


def test_mppi_temperature_is_scale_free_only_with_elite_spread():
    # Costs x100: latents x10 (z0, goal and the dynamics' gain), the l2 cost grows by 10^2.
    z0, goal = torch.zeros(2, 2), torch.tensor([[0.8, -0.6], [-0.5, 0.9]])

    def plan(scale, factor):
        wm = Linear(gain=factor)
        planner = build_planner("mppi", samples=64, elites=8, iterations=3, temperature_scale=scale,
                                temperature=0.5 if scale == "none" else 5.0)
        return planner.plan(wm, z0 * factor, goal * factor, 2, generator=generator()).actions

    assert torch.allclose(plan("elite_spread", 1.0), plan("elite_spread", 10.0), atol=1e-4)
    assert (plan("none", 1.0) - plan("none", 10.0)).abs().max() > 1e-2
    update = [mppi_update(ELITE, COST * f, 0.5, "none", *NO_CLAMP)[0] for f in (1.0, 100.0)]
    assert not torch.allclose(*update, atol=1e-2)


def test_unknown_temperature_scale_fails_loudly():
    with pytest.raises(ValueError, match=r"temperature_scale='returns'; valid: \['elite_spread', 'none'\]"):
        build_planner("mppi", temperature_scale="returns")


# ----------------------------------------------------------------------------- GD


def test_gd_first_adam_step_moves_each_action_by_lr_toward_the_target():
    # Adam's first step is lr * g / (|g| + eps): each coordinate moves by lr against its gradient.
    wm = Linear()
    actions, trace = gd_descend(wm, Objective(), torch.zeros(1, 2), TARGET[None], torch.zeros(1, 1, 2),
                                wm.action_low, wm.action_high, steps=1, lr=0.1)
    assert torch.allclose(actions.view(2), torch.tensor([0.1, -0.1]), atol=1e-6)
    assert trace.item() == pytest.approx(cost_by_hand(torch.zeros(2)).item())


@pytest.mark.parametrize("clip", [True, False])
def test_gd_clamps_during_the_optimisation_only_when_asked(clip):
    wm = Linear()
    planner = build_planner("gd", iterations=30, lr=0.2, clip_actions=clip)
    assert isinstance(planner, GDPlanner)
    result = planner.plan(wm, torch.zeros(1, 2), torch.tensor([[3.0, -3.0]]), 1)  # best action (3, -3)
    low, high = wm.extreme_actions()
    assert (low >= -1.0 and high <= 1.0) is clip
    assert torch.equal(result.actions.view(2), torch.tensor([1.0, -1.0]))  # Planner.plan clamps the plan
