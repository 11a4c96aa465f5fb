"""Run a planner on a set of start/goal pairs: model-predictive control or open loop.

All N episodes advance together: one batched `planner.plan` per replan, one vectorised env
step per env step. Host syncs happen between replans (to step the env), never inside a
planner's iterations.

A world model with history k > 1 predicts from its last k frames, so each replan also hands
the planner the k - 1 observed latents before the current one, at model-step boundaries
(every `frameskip` env steps), and the model actions executed between them (`past_z`,
`past_a`; fewer early in an episode, none at its first plan). All episodes share one clock,
so the context is one batched tensor per replan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from jepa_plan.envs.base import Env
from jepa_plan.evaluation.goals import GoalSet
from planners import PlanResult, model_history

NONFINITE = "world model returned NaN or inf"


class BoundsError(ValueError):
    """A plan-time bound (episodes, horizon, max_steps, replan_every) is not positive."""


def check_bounds(**bounds: int) -> None:
    """Refuse any bound below 1, naming it: `check_bounds(horizon=0)` raises BoundsError."""
    bad = [f"{key}={value}" for key, value in bounds.items() if value is None or value < 1]
    if bad:
        raise BoundsError(f"{', '.join(bad)}: must be at least 1")


@dataclass
class EpisodeLog:
    """What happened in N episodes under one planner.

    success bool [N]; success_step int [N] (env steps to success, -1 if never);
    seconds_to_success float [N] (planning wall seconds spent up to the replan whose actions
    reached the goal, NaN if never); final_distance float [N] (true state distance at the end);
    model_cost float [N] (the planner's objective of its last plan: the model-side figure);
    failure str [N] ("" when the episode ran normally); frames uint8 [N, T+1, H, W, 3]
    (executed frames); replan_seconds list[float] (one batched call each); transitions
    int (summed over replans); cost_traces list of [iters] mean-over-episodes traces;
    diagnostics: one `plan_diagnostics` record per replan, empty for planners that return none.
    """

    success: np.ndarray
    success_step: np.ndarray
    seconds_to_success: np.ndarray
    final_distance: np.ndarray
    model_cost: np.ndarray
    failure: np.ndarray
    frames: np.ndarray
    replan_seconds: list[float] = field(default_factory=list)
    transitions: int = 0
    cost_traces: list[np.ndarray] = field(default_factory=list)
    diagnostics: list[dict[str, np.ndarray]] = field(default_factory=list)


def plan_diagnostics(result: PlanResult, keep: np.ndarray) -> dict[str, np.ndarray] | None:
    """One plan's `diagnostics` and cost trace averaged over the episodes in `keep` (bool [B]), as numpy.

    The episode axis is axis 1 of a tensor with two or more dims (`defect [iters, B]`,
    `shooting_cost [P, B]`, `rollout_gap [P, B, T - 1]` -> [iters], [P], [P, T - 1]); 1-D
    tensors (`probe_iteration [P]`) have none and are kept. The trace goes in as
    `cost_trace [iters]`. None when the planner returned no diagnostics or `keep` is empty.
    Called after `planner.plan` returns, so the transfers add no sync inside the planner.
    """
    if not result.diagnostics or not keep.any():
        return None
    index = torch.from_numpy(np.flatnonzero(keep))

    def episode_mean(x: torch.Tensor) -> np.ndarray:
        if x.dim() < 2:
            return x.cpu().numpy()
        return x.float().index_select(1, index.to(x.device)).nanmean(1).cpu().numpy()

    return {"cost_trace": episode_mean(result.cost_trace),
            **{key: episode_mean(value) for key, value in result.diagnostics.items()}}


def last(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last n entries along dim 1 of x [N, m, ...] (all m when m <= n, none when n = 0)."""
    return x[:, max(x.shape[1] - n, 0):]


def encode_frames(wm, frames: list[np.ndarray], device: str | torch.device) -> torch.Tensor:
    """Observations [N, H, W, 3] each (m of them) -> latents [N, m, *S], each frame encoded alone."""
    clip = torch.from_numpy(np.stack(frames, axis=1)).to(device)  # [N, m, H, W, 3]
    n, m = clip.shape[:2]
    z = wm.encode(clip.flatten(0, 1).permute(0, 3, 1, 2)[:, None])[:, 0]  # [N * m, *S]
    return z.unflatten(0, (n, m))


def run_episodes(wm, planner, env: Env, goals: GoalSet, *, horizon: int, mode: str = "mpc", replan_every: int = 1,
                 max_steps: int = 60, device: str | torch.device = "cpu", seed: int = 0) -> EpisodeLog:
    """Plan and act in all episodes of `goals` at once, in any env of the batched protocol.

    mode "mpc": plan `horizon` model steps, execute the first `replan_every`, replan, until
    success or `max_steps` env steps. mode "open_loop": plan once, execute the whole plan
    (horizon * frameskip env steps). Episodes stop at success; an episode whose plan is not
    finite is marked failed with the reason, and the others go on. With a history-k model each
    plan gets the context of the last k - 1 model steps (module docstring).
    """
    if mode not in ("mpc", "open_loop"):
        raise ValueError(f"mode={mode!r}; valid: mpc, open_loop")
    check_bounds(episodes=len(goals), horizon=horizon, max_steps=max_steps, replan_every=replan_every)
    n, skip, history = len(goals), wm.frameskip, model_history(wm)
    generator = torch.Generator(device=device).manual_seed(seed)
    goal_z = wm.encode(torch.from_numpy(goals.goal_frames).permute(0, 3, 1, 2)[:, None].to(device))[:, 0]
    budget = horizon * skip if mode == "open_loop" else max_steps
    execute = horizon if mode == "open_loop" else min(replan_every, horizon)

    frames = [env.reset(goals.start_states, goals.goal_states)]  # frames[-1] is always the current observation
    done = env.success()  # NaN goals compare False
    success_step = np.where(done, 0, -1)
    seconds_to_success = np.where(done, 0.0, np.nan)
    failure = np.full(n, "", dtype=object)
    model_cost = np.full(n, np.nan)
    replan_seconds, cost_traces, diagnostics, transitions = [], [], [], 0
    planning_seconds, warm, t = 0.0, None, 0
    # History k > 1: latents at the last m <= k model-step boundaries [N, m, *S] (the current one
    # last), the m - 1 model actions executed between them [N, m - 1, A], the env step of the last plan.
    seen_z, done_a, planned_at = None, torch.zeros(n, 0, wm.action_dim, device=device), 0
    while t < budget and not (done | (failure != "")).all():
        # Plan for every episode (finished ones ride along; batching beats masking here).
        z0 = wm.encode(torch.from_numpy(frames[-1]).permute(0, 3, 1, 2)[:, None].to(device))[:, 0]
        context = {}
        if history > 1:  # the frames passed at model-step boundaries since the last plan, then z0
            between = [frames[i] for i in range(planned_at + skip, t, skip)][-(history - 1):]
            new = torch.cat([encode_frames(wm, between, device), z0[:, None]], 1) if between else z0[:, None]
            seen_z = last(new if seen_z is None else torch.cat([seen_z, new], 1), history)
            context = {"past_z": seen_z[:, :-1], "past_a": done_a}
        planned_at = t
        result = planner.plan(wm, z0, goal_z, horizon, init=warm, generator=generator, **context)
        planning_seconds += result.seconds
        replan_seconds.append(result.seconds)
        transitions += result.transitions
        cost_traces.append(result.cost_trace.float().mean(dim=1).cpu().numpy())
        actions = result.actions
        finite = (torch.isfinite(actions).flatten(1).all(dim=1) & torch.isfinite(result.cost)).cpu().numpy()
        finite &= np.isfinite(z0.flatten(1).cpu().numpy()).all(axis=1)
        running = (failure == "") & ~done
        record = plan_diagnostics(result, running & finite)  # the episodes this plan is for
        if record is not None:
            diagnostics.append(record)
        failure[running & ~finite] = NONFINITE
        model_cost[:] = np.where(finite, result.cost.float().cpu().numpy(), model_cost)

        # Execute: model actions -> frameskip env actions each (the env clips them to its box).
        chunk = wm.env_actions(torch.nan_to_num(actions[:, :execute])).reshape(n, -1, env.action_dim)
        chunk = chunk.float().cpu().numpy()
        for j in range(min(chunk.shape[1], budget - t)):
            active = ~done & (failure == "")
            if not active.any():
                break
            frames.append(env.step(chunk[:, j], active))
            t += 1
            reached = active & env.success()
            done |= reached
            success_step[reached] = t
            seconds_to_success[reached] = planning_seconds
        if history > 1:  # the model actions just executed join the context (whole model steps only)
            executed = torch.nan_to_num(actions[:, :(t - planned_at) // skip]).to(done_a.dtype)
            done_a = last(torch.cat([done_a, executed], 1), history - 1)
        # Warm start: the rest of the plan, shifted, its tail repeated (GRASP / CEM under MPC).
        warm = torch.cat([actions[:, execute:], actions[:, -1:].expand(-1, min(execute, horizon), -1)], dim=1)
        warm = torch.nan_to_num(warm)[:, :horizon]
        if mode == "open_loop":
            break

    return EpisodeLog(success=done, success_step=success_step, seconds_to_success=seconds_to_success,
                      final_distance=env.distance(), model_cost=model_cost, failure=failure,
                      frames=np.stack(frames, axis=1), replan_seconds=replan_seconds, transitions=transitions,
                      cost_traces=cost_traces, diagnostics=diagnostics)
