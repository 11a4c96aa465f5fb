"""GRASP (arXiv 2602.00475): gradient planning over lifted states with a stop-gradient.

Variables per episode: actions a_0..a_{T-1} and virtual ("lifted") states s_1..s_{T-1};
s_0 = z0 and s_T = g are fixed. The loss (paper's objective, reference solver's reductions:
a mean over latent elements per term, summed over t) is

    L = sum_t ||F(sg(s_t), a_t) - s_{t+1}||^2 + gamma * sum_t ||F(sg(s_t), a_t) - g||^2

where sg stops the gradient into F's state input: gradients reach a_t and the target s_{t+1},
never dF/ds, which in a learned latent space is an adversarial direction (a tiny
off-manifold step can make F jump to g). The dense goal term removes the trivial minimum
(states stay at the start and the last action jumps). All T transitions are one batched
`wm.step` call on [B, T] leading dims. The goal term uses the shared objective's metric
summed over steps, so with the default l2 it is the paper's term.

Updates: Adam with separate rates for states and actions; Gaussian noise on the states only
after each step; actions clamped to the box. The reference solver's rates are 0.1 for states
and 0.005-0.01 for actions. The states default here is 0.01: an Adam step is about `lr` per
element whatever the gradient, and 0.1 is half a model step on the two_rooms oracle, so the
virtual states jittered off the rollout and the lifted loss climbed between syncs (50 door
goals on the oracle: 22% vs 12% success with GD sync, 60% vs 48% with CEM sync). Standardised
latents move by a similar amount per step, so sweep it on a learned model too.

State noise is scale-dependent (the ports differ by 100x) and it mattered most: with the CEM
sync, the per-step std is the virtual-vs-rollout gap, so noisy states make the sync explore.
On door goals, noise 0.3 with a CEM sync every 100 lifted CEM-sync GRASP from 66% to 96% on the
oracle and from 57% to 73% on the learned model (configs/plan.yaml's `grasp_cem_sync`). The
default here stays the reference solver's 0.01.

Sync: every `sync_every` iterations the actions are refined against the true shooting
objective through `wm.rollout` (`sync="gd"`: a fresh Adam at 0.05 for `sync_steps` steps;
`sync="cem"`: a short CEM whose per-step std is the virtual-vs-rolled-out gap plus 0.01),
then the lifted states are reset to the rolled-out ones and Adam restarts (its stale
momentum would drag the reset states off the rollout).

Every ingredient is a switch, for the paper's ablations: `stop_grad`, `state_noise` (0 off),
`gamma` (0 off), `sync` ("none" off), `state_init`. LatCo is the preset without the
stop-gradient, noise and sync (planners/latco.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import (Planner, PlannerConfig, Search, WorldModel, check_choice, check_elites, model_rollout,
                           model_step, randn, start_actions)
from planners.cem import cem_search
from planners.gd import gd_descend
from planners.objective import Objective

SYNCS = ("gd", "cem", "none")
STATE_INITS = ("interp", "rollout", "zeros")


@dataclass
class GRASPConfig(PlannerConfig):
    iterations: int = 300
    lr_states: float = 0.01  # Adam; the reference solver's 0.1 jitters (module docstring)
    lr_actions: float = 0.01  # Adam, reference solver uses 0.005-0.01
    gamma: float = 1.0  # weight of the dense goal term; 0 turns it off
    stop_grad: bool = True  # sg on F's state input
    state_noise: float = 0.01  # std of the noise added to the states after each step; 0 turns it off
    state_init: str = "interp"  # interp: (t/T) g + (1 - t/T) s_0 | rollout: states of the initial actions | zeros
    init_noise: float = 0.01  # std of the noise on the initial states
    sync: str = "gd"  # gd | cem | none
    sync_every: int = 50  # reference solver 50, paper's ablation 100
    sync_steps: int = 10  # GD steps (reference: 10) or CEM iterations (paper's variant: 5)
    sync_lr: float = 0.05  # the GD sync's fresh Adam
    sync_samples: int = 64  # the CEM sync
    sync_elites: int = 8
    sync_std_floor: float = 0.01  # added to the per-step gap to give the CEM sync's std

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "sync", SYNCS)
        check_choice(self, "state_init", STATE_INITS)
        if self.sync != "none" and self.sync_every < 1:
            raise ValueError(f"GRASPConfig: sync_every={self.sync_every} must be at least 1")
        check_elites(self, "sync_elites", "sync_samples")


class GRASPPlanner(Planner):
    """Cost trace: the lifted loss L per episode before each iteration's step (not the
    shooting cost, which would need a sequential rollout every iteration)."""

    config: GRASPConfig

    def __init__(self, config: GRASPConfig):
        super().__init__(config)
        self.goal_objective = Objective(config.metric, "all")  # the dense goal term sums over steps

    def search(self, wm, z0, goal, horizon, init, generator, low, high) -> Search:
        cfg = self.config
        batch = z0.shape[0]
        actions = start_actions(init, batch, horizon, low, high)
        states = self.initial_states(wm, z0, goal, actions, generator)
        actions.requires_grad_(True)
        states.requires_grad_(True)
        optimiser = self.optimiser(states, actions)
        trace, syncs = [], 0
        with torch.enable_grad():
            for i in range(cfg.iterations):
                # Lifted step: every transition at once
                loss = self.lifted_loss(wm, z0, goal, states, actions)  # [B]
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()  # episodes are independent: each gets its own gradient
                optimiser.step()
                with torch.no_grad():
                    if cfg.state_noise > 0:  # noise on the states only, never the actions
                        states.add_(cfg.state_noise * randn(states.shape, generator, states.device))
                    actions.clamp_(low, high)
                trace.append(loss.detach())

                # Sync: refine the actions on the true rollout, then reset the states to it
                if cfg.sync != "none" and (i + 1) % cfg.sync_every == 0:
                    synced = self.sync_actions(wm, z0, goal, states.detach(), actions.detach(), low, high, generator)
                    with torch.no_grad():
                        actions.copy_(synced)
                        states.copy_(model_rollout(wm, z0, actions)[:, :-1])
                    optimiser = self.optimiser(states, actions)  # fresh moments for the reset states
                    syncs += 1

        # Rollouts per sync: GD runs one per step; CEM one per sample and iteration plus the gap's.
        # Both then roll out once more to reset the states.
        per_sync = cfg.sync_steps + 1 if cfg.sync == "gd" else cfg.sync_steps * cfg.sync_samples + 2
        rollouts = cfg.iterations + syncs * per_sync + (cfg.state_init == "rollout")
        transitions = batch * horizon * rollouts
        return Search(actions=actions.detach(), cost_trace=torch.stack(trace), transitions=transitions,
                      states=states.detach())

    # -- pieces, public for tests and ablations ----------------------------------------------
    def optimiser(self, states: torch.Tensor, actions: torch.Tensor) -> torch.optim.Adam:
        """Adam with the reference solver's separate rates for states and actions."""
        return torch.optim.Adam([{"params": [states], "lr": self.config.lr_states},
                                 {"params": [actions], "lr": self.config.lr_actions}])

    def initial_states(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
        """Lifted states s_1..s_{T-1} [B, T - 1, *S] before the first step (T = actions.shape[1])."""
        cfg = self.config
        horizon = actions.shape[1]
        shape = (z0.shape[0], horizon - 1, *z0.shape[1:])
        if cfg.state_init == "interp":
            frac = torch.arange(1, horizon, device=z0.device, dtype=z0.dtype) / horizon
            frac = frac.view(1, -1, *([1] * (z0.dim() - 1)))
            states = frac * goal.unsqueeze(1) + (1 - frac) * z0.unsqueeze(1)
        elif cfg.state_init == "rollout":
            with torch.no_grad():
                states = model_rollout(wm, z0, actions)[:, :-1]
        else:
            states = torch.zeros(shape, device=z0.device)
        if cfg.init_noise > 0:
            states = states + cfg.init_noise * randn(shape, generator, z0.device)
        return states.contiguous()

    def lifted_loss(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                    actions: torch.Tensor) -> torch.Tensor:
        """z0, goal [B, *S], states [B, T - 1, *S], actions [B, T, A] -> L per episode [B].

        One `wm.step` call on [B, T] leading dims evaluates every transition.
        """
        inputs = torch.cat([z0.unsqueeze(1), states], dim=1)  # s_0..s_{T-1}
        if self.config.stop_grad:
            inputs = inputs.detach()  # sg: no gradient through F's state input
        pred = model_step(wm, inputs, actions)  # F(s_t, a_t), [B, T, *S]
        targets = torch.cat([states, goal.unsqueeze(1)], dim=1)  # s_1..s_T
        consistency = (pred - targets).pow(2).flatten(2).mean(-1).sum(-1)
        if self.config.gamma == 0:
            return consistency
        return consistency + self.config.gamma * self.goal_objective(pred, goal)

    def sync_actions(self, wm: WorldModel, z0: torch.Tensor, goal: torch.Tensor, states: torch.Tensor,
                     actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        """Refine actions [B, T, A] against the shooting objective through `wm.rollout`."""
        cfg = self.config
        if cfg.sync == "gd":
            synced, _ = gd_descend(wm, self.objective, z0, goal, actions, low, high,
                                   steps=cfg.sync_steps, lr=cfg.sync_lr)
            return synced
        # CEM sync: explore more where the virtual states disagree with the model's rollout.
        with torch.no_grad():
            rolled = model_rollout(wm, z0, actions)  # z_1..z_T
            virtual = torch.cat([states, goal.unsqueeze(1)], dim=1)  # s_1..s_T
            gap = (virtual - rolled).pow(2).flatten(2).mean(-1).sqrt()  # [B, T]
        std = (gap + cfg.sync_std_floor).unsqueeze(-1).expand_as(actions)
        synced, _ = cem_search(wm, self.objective, z0, goal, actions, std, low, high, samples=cfg.sync_samples,
                               elites=cfg.sync_elites, iterations=cfg.sync_steps, generator=generator)
        return synced
