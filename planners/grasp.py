"""GRASP (Psenka et al., arXiv 2602.00475): gradient planning over lifted states with a stop-gradient.

Variables per episode: actions a_0..a_{T-1} and virtual ("lifted") states s_1..s_{T-1};
s_0 = z0 and s_T = g are fixed. The loss (the authors' solver: a mean over latent elements
per term, summed over t) is

    L = sum_t ||F(sg(s_t), a_t) - s_{t+1}||^2 + gamma * sum_t ||F(sg(s_t), a_t) - g||^2

where sg stops the gradient into F's state input: gradients reach a_t and the target s_{t+1},
never dF/ds, which in a learned latent space is an adversarial direction (a tiny
off-manifold step can make F jump to g). The dense goal term removes the trivial minimum
(states stay at the start and the last action jumps). All T transitions are one batched
`wm.step` call on [B, T] leading dims; the loss is summed over episodes, and Adam acts
element by element, so each episode gets exactly the update it would get planned alone.

A world model with history k > 1 reads F(s_{t-k+1..t}, a_{t-k+1..t}): the T transitions are
then one `wm.step_sequence` call on the trajectory (observed context, s_0, .., s_{T-1}), each
with its own k-frame window, the first ones reaching into the context (`Planner.plan`'s
past_z, past_a: the observed frames before z0 and the actions executed there). The sg covers
every state input of a window, the context latents included (they are data anyway). Actions
keep their gradient wherever they enter F: a_t conditions transition t and, as context, the
k - 1 after it, as it does in the true rollout, so dL/da_t sums both. No extra stop-gradient:
the sg exists for the adversarial dF/ds, and dF/da is the direction GRASP optimises along
in every term. The rollouts (initial states, probes, syncs, the final cost) start from the
same context. With k = 1 the context is ignored and every call is the Markov one.

The update rule is the authors' (`michael-psenka/le-wm-grasp`, described step by step in
reference/grasp.md), and `GRASPConfig`'s defaults are their code defaults:
1. one Adam over two groups, states at `lr_states` (0.1), actions at `lr_actions` (0.01);
   states start on the straight line from z0 to g, actions at zeros or the warm start;
2. after each step, Gaussian noise of std `state_noise` on the states only; actions are
   never noised and never clipped;
3. every `sync_every` iterations the actions are refined on the true rollout against the
   final step's distance to g: `sync="gd"` runs a fresh Adam at `sync_lr` for `sync_steps`
   steps; `sync="cem"` runs `sync_steps` CEM iterations whose per-step variance starts at the
   gap between the rollout and the virtual state at each action's input, with the floor
   `sync_var_min` re-added every iteration and no clipping;
4. after a sync the virtual states stay where they are and Adam restarts with fresh moments.

Our departures are switches, all off (the authors' behaviour) by default; each one's
measured effect is in benchmarks/RESULTS.md: `reset_states` (states reset to the rollout
after a sync), `clip_actions` (clamp to the box after every step), `sync_cost="objective"`
(the sync optimises the planner's own objective, e.g. summed over steps),
`init_noise` (noise on the initial states), `sync_spread="output_gap"` (our earlier CEM
sync: std = the gap at the output states including the goal, floor added once, samples
clipped), `sync_keep_mean` (the CEM sync scores its current mean as sample 0) and
`state_init` (rollout or zeros instead of the straight line). `compile` changes speed only.

Diagnostics, to tell whether the lifted optimisation or the sync did the work: the cost
trace is the lifted loss per iteration; `diagnostics` holds the dynamics defect per
iteration and, at each probe (the start, every sync, the end), the true shooting cost of the
current actions before and after the sync and the virtual-vs-rollout gap per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import (Planner, PlannerConfig, Search, WorldModel, check_choice, check_elites, model_history,
                           model_rollout, model_step, model_step_sequence, randn, start_actions)
from planners.cem import cem_search, elite_set, score_samples
from planners.gd import gd_descend
from planners.objective import Objective

SYNCS = ("gd", "cem", "none")
STATE_INITS = ("interp", "rollout", "zeros")
SYNC_COSTS = ("last", "objective")
SYNC_SPREADS = ("input_gap", "output_gap")


@dataclass
class GRASPConfig(PlannerConfig):
    # -- the authors' solver (their code defaults; configs/plan.yaml names their two presets)
    iterations: int = 200
    lr_states: float = 0.1  # Adam, virtual states
    lr_actions: float = 0.01  # Adam, actions
    gamma: float = 1.0  # weight of the dense goal term; 0 turns it off
    stop_grad: bool = True  # sg on F's state input
    state_noise: float = 0.01  # std of the noise added to the states after each step; 0 turns it off
    sync: str = "gd"  # gd | cem | none
    sync_every: int = 50  # iterations between syncs (also the probe interval when sync=none)
    sync_steps: int = 10  # GD steps or CEM iterations per sync
    sync_lr: float = 0.05  # the GD sync's fresh Adam
    sync_samples: int = 64  # the CEM sync
    sync_elites: int = 8
    sync_var_scale: float = 1.0  # CEM sync variance = scale * gap + floor
    sync_var_min: float = 0.01  # the floor, re-added every CEM iteration
    # -- our departures, off by default (module docstring)
    reset_states: bool = False  # reset the virtual states to the rollout after each sync
    clip_actions: bool = False  # clamp the actions to the box after every step
    sync_cost: str = "last"  # last: final step's distance to g (authors) | objective: the planner's objective
    sync_spread: str = "input_gap"  # input_gap (authors) | output_gap (ours: std from the output gap, clipped)
    init_noise: float = 0.0  # std of the noise on the initial states
    sync_keep_mean: bool = False  # the CEM sync scores its current mean as sample 0 (as DINO-WM's CEM does)
    state_init: str = "interp"  # interp: the straight line z0 -> g (authors) | rollout | zeros
    compile: bool = False  # torch.compile the lifted loss (forward and backward); same numbers, see the tests

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "sync", SYNCS)
        check_choice(self, "state_init", STATE_INITS)
        check_choice(self, "sync_cost", SYNC_COSTS)
        check_choice(self, "sync_spread", SYNC_SPREADS)
        if self.sync_every < 1:
            raise ValueError(f"GRASPConfig: sync_every={self.sync_every} must be at least 1")
        check_elites(self, "sync_elites", "sync_samples")


class GRASPPlanner(Planner):
    """Cost trace: the lifted loss L per episode before each iteration's step.

    `diagnostics` (P probes: iteration 0, every `sync_every`-th iteration, the last):
    - `defect [iters, B]`: the dynamics term of L (0 when the virtual states sit on F)
    - `probe_iteration [P]`: iterations done at each probe
    - `shooting_cost [P, B]`: the planner's objective of the current actions, before the sync
    - `synced_cost [P, B]`: the same after the sync (equal to `shooting_cost` where none ran)
    - `rollout_gap [P, B, T - 1]`: mean squared gap per element between s_t and the rollout's z_t
    """

    config: GRASPConfig

    def __init__(self, config: GRASPConfig):
        super().__init__(config)
        self.goal_objective = Objective(config.metric, "all")  # the dense goal term sums over steps
        self.sync_objective = Objective("l2", "last") if config.sync_cost == "last" else self.objective
        self.terms = torch.compile(self.lifted_terms, dynamic=False) if config.compile else self.lifted_terms

    def search(self, wm, z0, goal, horizon, init, generator, low, high, past_z=None, past_a=None) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        context = {"past_z": past_z, "past_a": past_a}
        actions = start_actions(init, batch, horizon, low, high)
        states = self.initial_states(wm, z0, goal, actions, generator, **context)
        actions.requires_grad_(True)
        states.requires_grad_(True)
        optimiser = self.optimiser(states, actions)
        noise = torch.empty_like(states)
        trace, defects = [], []
        probes = {"probe_iteration": [], "shooting_cost": [], "synced_cost": [], "rollout_gap": []}
        rollouts = (cfg.state_init == "rollout") + self.probe(probes, 0, wm, z0, goal, states, actions, **context)
        with torch.enable_grad():
            for k in range(cfg.iterations):
                loss, defect = self.lifted_step(wm, z0, goal, states, actions, optimiser, noise, generator, low, high,
                                                **context)
                trace.append(loss)
                defects.append(defect)

                # Probe and sync: the true rollout of the current actions, then refine them on it
                if (k + 1) % cfg.sync_every == 0 or k + 1 == cfg.iterations:
                    sync = cfg.sync != "none" and (k + 1) % cfg.sync_every == 0 and k > 0
                    rollouts += self.probe(probes, k + 1, wm, z0, goal, states, actions, generator,
                                           low, high, sync=sync, **context)
                    if sync:
                        optimiser = self.optimiser(states, actions)  # fresh moments, as the authors restart Adam

        diagnostics = {"defect": torch.stack(defects),
                       "probe_iteration": torch.tensor(probes.pop("probe_iteration"))}
        diagnostics.update({key: torch.stack(values) for key, values in probes.items()})
        # A lifted step evaluates the T transitions and, for k > 1, the c context frames' windows it drops
        lifted = horizon + (past_z.shape[1] if past_z is not None and model_history(wm) > 1 else 0)
        transitions = batch * (cfg.iterations * lifted + rollouts * horizon)
        return Search(actions=actions.detach(), cost_trace=torch.stack(trace), transitions=transitions,
                      states=states.detach(), diagnostics=diagnostics)

    # -- pieces, public for tests, ablations and benchmarks/bench_grasp_iteration.py -----------
    def lifted_step(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                    actions: torch.Tensor, optimiser: torch.optim.Optimizer, noise: torch.Tensor,
                    generator: torch.Generator | None, low: torch.Tensor, high: torch.Tensor,
                    past_z: torch.Tensor | None = None,
                    past_a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration on states [B, T - 1, *S] and actions [B, T, A] in place: every transition
        at once (after the context past_z [B, c, *S], past_a [B, c, A] when given), one Adam
        step, then noise on the states (into the buffer `noise`).

        -> (lifted loss [B], dynamics defect [B]) before the step, detached.
        """
        cfg = self.config
        defect, goal_term = self.terms(wm, z0, goal, states, actions, past_z, past_a)  # [B], [B]
        loss = defect + cfg.gamma * goal_term
        optimiser.zero_grad(set_to_none=True)
        loss.sum().backward()  # episodes are independent: each gets its own gradient
        optimiser.step()
        with torch.no_grad():
            if cfg.state_noise > 0:  # Langevin-style noise on the states only, never the actions
                states.add_(randn(states.shape, generator, states.device, out=noise), alpha=cfg.state_noise)
            if cfg.clip_actions:
                actions.clamp_(low, high)
        return loss.detach(), defect.detach()

    def optimiser(self, states: torch.Tensor, actions: torch.Tensor) -> torch.optim.Adam:
        """One Adam, two groups: the authors' separate rates for states and actions."""
        return torch.optim.Adam([{"params": [states], "lr": self.config.lr_states},
                                 {"params": [actions], "lr": self.config.lr_actions}], foreach=True)

    def initial_states(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor,
                       generator: torch.Generator | None, past_z: torch.Tensor | None = None,
                       past_a: torch.Tensor | None = None) -> torch.Tensor:
        """Lifted states s_1..s_{T-1} [B, T - 1, *S] before the first step (T = actions.shape[1]);
        `state_init="rollout"` rolls out from the context past_z [B, c, *S], past_a [B, c, A] when given."""
        cfg = self.config
        horizon = actions.shape[1]
        shape = (z0.shape[0], horizon - 1, *z0.shape[1:])
        if cfg.state_init == "interp":
            frac = torch.arange(1, horizon, device=z0.device, dtype=z0.dtype) / horizon
            frac = frac.view(1, -1, *([1] * (z0.dim() - 1)))
            states = z0.unsqueeze(1) + frac * (goal - z0).unsqueeze(1)
        elif cfg.state_init == "rollout":
            with torch.no_grad():
                states = model_rollout(wm, z0, actions, past_z, past_a)[:, :-1]
        else:
            states = torch.zeros(shape, device=z0.device)
        if cfg.init_noise > 0:
            states = states + cfg.init_noise * randn(shape, generator, z0.device)
        return states.contiguous()

    def lifted_terms(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                     actions: torch.Tensor, past_z: torch.Tensor | None = None,
                     past_a: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z0, goal [B, *S], states [B, T - 1, *S], actions [B, T, A], optional context past_z
        [B, c, *S], past_a [B, c, A] -> (dynamics defect [B], goal term [B]).

        One batched call evaluates every transition: `wm.step` on [B, T] leading dims for a
        Markov model (the context ignored); for history k > 1, `wm.step_sequence` on
        (context, s_0..s_{T-1}), transition t reading its k-frame window (module docstring).
        """
        history = model_history(wm)
        context = [past_z] if past_z is not None and history > 1 else []
        inputs = torch.cat([*context, z0.unsqueeze(1), states], dim=1)  # (context,) s_0..s_{T-1}
        if self.config.stop_grad:
            inputs = inputs.detach()  # sg: no gradient through F's state inputs, a window's earlier frames included
        if history == 1:
            pred = model_step(wm, inputs, actions)  # F(s_t, a_t), [B, T, *S]
        else:  # actions keep their gradient in every window they enter: a_t also conditions t + 1..t + k - 1
            seq_actions = torch.cat([past_a, actions], dim=1) if context else actions
            pred = model_step_sequence(wm, inputs, seq_actions)[:, inputs.shape[1] - actions.shape[1]:]  # [B, T, *S]
        targets = torch.cat([states, goal.unsqueeze(1)], dim=1)  # s_1..s_T; g is fixed, s_{t+1} keeps its gradient
        defect = (pred - targets).pow(2).flatten(2).mean(-1).sum(-1)
        return defect, self.goal_objective(pred, goal)

    def lifted_loss(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                    actions: torch.Tensor, past_z: torch.Tensor | None = None,
                    past_a: torch.Tensor | None = None) -> torch.Tensor:
        """L per episode [B] (see `lifted_terms` for the shapes)."""
        defect, goal_term = self.lifted_terms(wm, z0, goal, states, actions, past_z, past_a)
        return defect + self.config.gamma * goal_term

    @torch.no_grad()
    def probe(self, probes: dict, iteration: int, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor,
              states: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
              low: torch.Tensor | None = None, high: torch.Tensor | None = None, sync: bool = False,
              past_z: torch.Tensor | None = None, past_a: torch.Tensor | None = None) -> int:
        """Record the rollout of the current actions (from the context past_z [B, c, *S], past_a
        [B, c, A] when given); with `sync`, refine the actions in place (and reset the states
        when `reset_states`). -> the number of [B, T] rollouts spent."""
        rolled = model_rollout(wm, z0, actions, past_z, past_a)  # z_1..z_T
        cost = self.objective(rolled, goal)
        probes["probe_iteration"].append(iteration)
        probes["shooting_cost"].append(cost)
        gap = (rolled[:, :-1] - states).pow(2).flatten(2).mean(-1)  # [B, T - 1]
        probes["rollout_gap"].append(gap)
        if not sync:
            probes["synced_cost"].append(cost)
            return 1
        synced, spent = self.sync_actions(wm, z0, goal, states, actions.detach(), rolled, gap, low, high, generator,
                                          past_z, past_a)
        actions.copy_(synced)
        rolled = model_rollout(wm, z0, actions, past_z, past_a)
        probes["synced_cost"].append(self.objective(rolled, goal))
        if self.config.reset_states:
            states.copy_(rolled[:, :-1])
        return 2 + spent

    def sync_actions(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                     actions: torch.Tensor, rolled: torch.Tensor, gap: torch.Tensor, low: torch.Tensor,
                     high: torch.Tensor, generator: torch.Generator | None, past_z: torch.Tensor | None = None,
                     past_a: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Refine actions [B, T, A] on the true rollout (from the context past_z, past_a when
        given): `rolled` [B, T, *S] is the rollout of `actions`, `gap` [B, T - 1] its mean
        squared gap to the virtual states per step.

        -> (actions [B, T, A], the number of [B, T] rollouts spent).
        """
        cfg = self.config
        if cfg.sync == "gd":
            box = (low, high) if cfg.clip_actions else (None, None)
            context = {"past_z": past_z, "past_a": past_a}
            synced, _ = gd_descend(wm, self.sync_objective, z0, goal, actions, *box, **context, steps=cfg.sync_steps,
                                   lr=cfg.sync_lr)
            return synced, cfg.sync_steps
        if cfg.sync_spread == "output_gap":  # ours: std from the gap at s_1..s_T (g included), clipped samples
            virtual = torch.cat([states, goal.unsqueeze(1)], dim=1)
            gap = (virtual - rolled).pow(2).flatten(2).mean(-1).sqrt()  # [B, T]
            std = (gap + cfg.sync_var_min).unsqueeze(-1).expand_as(actions)
            synced, _ = cem_search(wm, self.sync_objective, z0, goal, actions, std, low, high,
                                   samples=cfg.sync_samples, elites=cfg.sync_elites, iterations=cfg.sync_steps,
                                   generator=generator, past_z=past_z, past_a=past_a)
            return synced, cfg.sync_steps * cfg.sync_samples
        synced = self.cem_sync(wm, z0, goal, actions, rolled, gap, generator, past_z, past_a)
        return synced, cfg.sync_steps * cfg.sync_samples

    def cem_sync(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, mean: torch.Tensor,
                 rolled: torch.Tensor, gap: torch.Tensor, generator: torch.Generator | None,
                 past_z: torch.Tensor | None = None, past_a: torch.Tensor | None = None) -> torch.Tensor:
        """The authors' CEM sync: mean [B, T, A] -> refined mean [B, T, A] (samples rolled out
        from the context past_z [B, c, *S], past_a [B, c, A] when given).

        Action a_t's variance starts at the gap at its input state s_t (a_0, whose input z0 is
        exact, takes the mean gap; with T = 1, the final step's distance to g); it is shared
        over action dims, the samples are not clipped, and the floor is re-added every iteration.
        """
        cfg = self.config
        batch, horizon, dim = mean.shape
        if horizon > 1:  # gap [B, T - 1] at s_1..s_{T-1}, the inputs of a_1..a_{T-1}
            gap = torch.cat([gap.mean(1, keepdim=True), gap], dim=1)  # [B, T], a_0 gets the mean gap
        else:
            gap = (rolled[:, -1] - goal).pow(2).flatten(1).mean(-1, keepdim=True)  # [B, 1]
        var = (cfg.sync_var_scale * gap + cfg.sync_var_min).unsqueeze(-1)  # [B, T, 1]
        for _ in range(cfg.sync_steps):
            # Sample around the mean and score by the final step
            noise = randn((batch, cfg.sync_samples, horizon, dim), generator, mean.device)
            if cfg.sync_keep_mean:
                noise[:, 0] = 0  # sample 0 is the mean itself: a sync never returns worse elites than it had
            samples = mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * noise  # [B, K, T, A]
            cost = score_samples(wm, self.sync_objective, z0, goal, samples, past_z, past_a)  # [B, K]
            # Refit to the elites: their mean, their variance averaged over action dims plus the floor
            elite, _ = elite_set(samples, cost, cfg.sync_elites)  # [B, E, T, A]
            mean = elite.mean(1)
            var = elite.var(1).mean(-1, keepdim=True) + cfg.sync_var_min
        return mean
