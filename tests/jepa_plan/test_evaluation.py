"""Goal sources, the batched MPC loop on the oracle, and the report writers."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from jepa_plan.envs.two_rooms.oracle import TwoRoomsOracle
from jepa_plan.envs.two_rooms import TwoRoomsConfig, TwoRoomsEnv, geometry, render_states, room_of
from jepa_plan.evaluation.goals import GoalError, load_goal_image, make_goals
from jepa_plan.evaluation.mpc import NONFINITE, run_episodes
from jepa_plan.evaluation.report import (DIAGNOSTIC_COLUMNS, diagnostics_summary, format_table, mcnemar_exact,
                                         plot_costs, rise_between_probes, summarize, wilson_interval,
                                         write_episodes_csv, write_gifs)
from planners import PlanResult, build_planner
from world_models.world_model import rollout_steps

CFG = TwoRoomsConfig(resolution=32)
ENV = TwoRoomsEnv(CFG)


def test_goal_sources_put_goals_where_they_say():
    rng = np.random.default_rng(0)
    same = make_goals("same_room", ENV, 40, rng)
    door = make_goals("door", ENV, 40, rng)
    assert (room_of(same.start_states) == room_of(same.goal_states)).all()
    assert (room_of(door.start_states) != room_of(door.goal_states)).all()
    assert (np.abs(door.goal_states[:, 0]) >= geometry(CFG).wall_x).all()  # in a room, not in the door
    assert np.linalg.norm(same.start_states - same.goal_states, axis=1).min() >= 2 * CFG.success_radius
    assert same.goal_frames.shape == (40, 32, 32, 3) and same.goal_frames.dtype == np.uint8
    np.testing.assert_array_equal(same.goal_frames[3], render_states(same.goal_states[3:4], CFG)[0])
    with pytest.raises(GoalError, match="unknown goal source 'maze' for env 'two_rooms'; valid: dataset, random, image, door, same_room"):
        make_goals("maze", ENV, 1, rng)


def test_goal_image_is_resized_converted_or_rejected(tmp_path):
    frame = render_states(np.array([[0.5, -0.5]], np.float32), TwoRoomsConfig(resolution=64))[0]
    Image.fromarray(frame).convert("RGBA").save(tmp_path / "big.png")
    image = load_goal_image(str(tmp_path / "big.png"), 32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    goals = make_goals("image", ENV, 3, np.random.default_rng(0), image=str(tmp_path / "big.png"))
    np.testing.assert_allclose(goals.goal_states[0], [0.5, -0.5], atol=0.08)  # read off the resized image

    Image.new("RGB", (40, 20)).save(tmp_path / "wide.png")
    with pytest.raises(GoalError, match=r"wide.png: 40x20 is not square"):
        load_goal_image(str(tmp_path / "wide.png"), 32)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(GoalError, match="junk.png: not a readable image"):
        load_goal_image(str(tmp_path / "junk.png"), 32)
    with pytest.raises(GoalError, match="missing.png: file not found"):
        load_goal_image(str(tmp_path / "missing.png"), 32)


def test_mpc_on_the_oracle_reaches_same_room_goals():
    goals = make_goals("same_room", ENV, 6, np.random.default_rng(1))
    oracle = TwoRoomsOracle(CFG, frameskip=2)
    planner = build_planner("cem", samples=64, iterations=5, elites=8)
    log = run_episodes(oracle, planner, ENV, goals, horizon=5, max_steps=40)
    assert log.success.all()
    assert (log.success_step > 0).all() and (log.final_distance < CFG.success_radius).all()
    assert log.frames.shape[:2] == (6, log.success_step.max() + 1)
    assert len(log.replan_seconds) >= 1 and log.transitions > 0
    summary = summarize(log)
    assert summary["success_rate"] == 1.0 and summary["episodes"] == 6


class NaNForSomeEpisodes(torch.nn.Module):
    """The oracle, except that episodes whose state x > 0 predict NaN."""

    def __init__(self):
        super().__init__()
        self.inner = TwoRoomsOracle(CFG, frameskip=1)
        self.frameskip, self.action_low, self.action_high = 1, self.inner.action_low, self.inner.action_high
        self.action_dim = self.inner.action_dim

    def encode(self, frames):
        return self.inner.encode(frames)

    def step(self, z, a):
        nxt = self.inner.step(z, a)
        return torch.where(z[..., :1] > 0, torch.full_like(nxt, float("nan")), nxt)

    def rollout(self, z0, actions):
        return rollout_steps(self.step, z0, actions)

    def env_actions(self, a):
        return self.inner.env_actions(a)


def test_nonfinite_world_model_fails_those_episodes_and_the_run_goes_on():
    goals = make_goals("same_room", ENV, 8, np.random.default_rng(2))
    right = goals.start_states[:, 0] > 0
    assert right.any() and (~right).any()
    log = run_episodes(NaNForSomeEpisodes(), build_planner("cem", samples=32, iterations=4, elites=4),
                       ENV, goals, horizon=4, max_steps=30)
    assert (log.failure[right] == NONFINITE).all() and not log.success[right].any()
    assert (log.failure[~right] == "").all() and log.success[~right].all()
    assert summarize(log)["failures"] == {NONFINITE: int(right.sum())}


class HistoryOracle(torch.nn.Module):
    """The oracle read as a history-k model (it ignores the context), recording the context
    length of every rollout it is asked for."""

    def __init__(self, history: int, frameskip: int = 2):
        super().__init__()
        self.inner, self.history, self.contexts = TwoRoomsOracle(CFG, frameskip=frameskip), history, []
        self.frameskip, self.action_low, self.action_high = frameskip, self.inner.action_low, self.inner.action_high
        self.action_dim = self.inner.action_dim

    def encode(self, frames):
        return self.inner.encode(frames)

    def env_actions(self, a):
        return self.inner.env_actions(a)

    def step(self, z, a, past_z=None, past_a=None):
        return self.inner.step(z, a)

    def rollout(self, z0, actions, past_z=None, past_a=None):
        self.contexts.append(0 if past_z is None else past_z.shape[1])
        return self.inner.rollout(z0, actions)

    def step_sequence(self, z, a):
        return self.inner.step(z, a)


class ScriptedPlanner:
    """Plans distinct small actions whose signs alternate (the agents barely move, no episode
    ends), and records what each replan was handed."""

    def __init__(self):
        self.calls = []

    def plan(self, wm, z0, goal, horizon, init=None, generator=None, past_z=None, past_a=None):
        n, i = z0.shape[0], len(self.calls)
        step = torch.arange(horizon, dtype=torch.float32)
        value = (0.1 + 0.01 * (i * horizon + step)) * (-1) ** step  # [H]
        scale = torch.linspace(1, 2, n)[:, None, None] * torch.linspace(0.5, 1.0, wm.action_dim)  # [N, 1, A]
        actions = scale * value[None, :, None]  # [N, H, A]
        self.calls.append({"z0": z0, "past_z": past_z, "past_a": past_a, "actions": actions})
        return PlanResult(actions=actions, cost=torch.zeros(n), cost_trace=torch.zeros(1, n), transitions=1,
                          seconds=1e-3)


@pytest.mark.parametrize("history,replan_every", [(2, 1), (3, 1), (3, 2), (4, 3)])
def test_mpc_hands_a_history_model_the_observed_latents_and_executed_actions(history, replan_every):
    goals = make_goals("same_room", ENV, 3, np.random.default_rng(4))
    wm, planner = HistoryOracle(history, frameskip=2), ScriptedPlanner()
    log = run_episodes(wm, planner, ENV, goals, horizon=3, replan_every=replan_every, max_steps=24)
    assert not log.success.any() and log.frames.shape[1] == 25
    skip = wm.frameskip

    def latents(steps):  # the latents of the frames at these env steps [N, len, 2]
        frames = torch.from_numpy(log.frames[:, steps]).permute(0, 1, 4, 2, 3)
        return wm.encode(frames)

    assert len(planner.calls) == 24 // (skip * replan_every)
    for i, call in enumerate(planner.calls):
        t = i * replan_every * skip  # env steps before this replan
        executed = torch.cat([c["actions"][:, :replan_every] for c in planner.calls[:i]], 1) if i else None
        c = min(history - 1, i * replan_every)  # frames of context: model steps so far, at most k - 1
        assert torch.equal(call["z0"], latents([t])[:, 0])
        assert call["past_z"].shape == (3, c, 2) and call["past_a"].shape == (3, c, wm.action_dim)
        if c:
            assert torch.equal(call["past_a"], executed[:, -c:])  # the model actions executed, oldest first
            assert torch.equal(call["past_z"], latents([t - j * skip for j in range(c, 0, -1)]))


def test_mpc_with_a_history_model_and_a_real_planner():
    goals = make_goals("same_room", ENV, 4, np.random.default_rng(1))
    wm = HistoryOracle(3, frameskip=2)
    log = run_episodes(wm, build_planner("cem", samples=64, iterations=5, elites=8), ENV, goals, horizon=5,
                       max_steps=40)
    assert log.success.all()
    per_plan = 5 + 1  # CEM's iterations and the final cost
    assert wm.contexts[:per_plan] == [0] * per_plan  # the first plan has no context (none is passed on)
    assert wm.contexts[per_plan:2 * per_plan] == [1] * per_plan and set(wm.contexts[2 * per_plan:]) == {2}


def test_mcnemar_exact_matches_the_binomial_tail():
    # 12 goals only B solved, 2 only A: 2 * P(X <= 2), X ~ Binomial(14, 1/2) = 2 * 106 / 16384.
    assert mcnemar_exact(2, 12) == pytest.approx(2 * 106 / 2**14)
    assert mcnemar_exact(12, 2) == mcnemar_exact(2, 12)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)


def test_wilson_interval_and_reports(tmp_path):
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.9 < lo < 0.95
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    goals = make_goals("same_room", ENV, 3, np.random.default_rng(3))
    log = run_episodes(TwoRoomsOracle(CFG, frameskip=2), build_planner("cem", samples=32, iterations=3, elites=4),
                       ENV, goals, horizon=4, max_steps=30)
    table = format_table({"cem": summarize(log)}, "title")
    assert "cem" in table and "95% CI" in table
    path = write_episodes_csv(tmp_path, {"cem": log}, goals)
    assert len(path.read_text().splitlines()) == 4
    gifs = write_gifs(tmp_path, "cem", log, goals.goal_frames, limit=2)
    assert len(gifs) == 2 and Image.open(gifs[0]).n_frames >= 2
    json.dumps(summarize(log))  # plain types only


def grasp_record(trace, probes, shooting, synced, gap=0.1, steps=3):
    """A hand-made `plan_diagnostics` record (episode means of one plan)."""
    trace = np.asarray(trace, float)
    return {"cost_trace": trace, "defect": trace / 2, "probe_iteration": np.asarray(probes),
            "shooting_cost": np.asarray(shooting, float), "synced_cost": np.asarray(synced, float),
            "rollout_gap": np.full((len(probes), steps), gap)}


def test_sync_share_splits_the_shooting_cost_drop_between_syncs_and_lifted_phases():
    # start 10 -> lifted phase -> 6 -> sync -> 4 -> lifted phase -> 3: the sync did 2 of the 7
    record = grasp_record(np.ones(20), [0, 10, 20], shooting=[10, 6, 3], synced=[10, 4, 3])
    summary = diagnostics_summary([record])
    assert summary["sync_share"] == pytest.approx(2 / 7)
    assert summary["shooting_cost_start"] == 10 and summary["shooting_cost_end"] == 3
    assert summary["rollout_gap_final"] == pytest.approx(0.1)

    # A replan with no drop at all is pooled in; on its own it has no share to give.
    flat = grasp_record(np.ones(20), [0, 10, 20], shooting=[5, 5, 5], synced=[5, 5, 5])
    assert diagnostics_summary([record, flat])["sync_share"] == pytest.approx(2 / 7)
    assert diagnostics_summary([flat])["sync_share"] is None
    # A sync at the last probe counts too: 10 -> 6 -> 4 -> 3 -> 1 has syncs 2 + 2 of 9.
    ends_synced = grasp_record(np.ones(20), [0, 10, 20], shooting=[10, 6, 3], synced=[10, 4, 1])
    assert diagnostics_summary([ends_synced])["sync_share"] == pytest.approx(4 / 9)


def test_lifted_loss_rise_between_syncs_is_the_median_ratio_over_intervals():
    trace = np.ones(30)
    trace[[0, 9]] = 2, 4  # 0..9: x2
    trace[[10, 19]] = 1, 0.5  # 10..19: x0.5
    trace[[20, 29]] = 1, 3  # 20..29: x3
    assert rise_between_probes(trace, np.array([0, 10, 20, 30])) == [2, 0.5, 3]
    # [0, 29): trace[28] / trace[0]; [29, 30) has one iteration, nothing to compare
    assert rise_between_probes(trace, np.array([0, 29, 30])) == [1 / 2]
    summary = diagnostics_summary([grasp_record(trace, [0, 10, 20, 30], [4, 3, 2, 1], [4, 2, 1, 1])])
    assert summary["lifted_loss_rise_between_syncs"] == 2
    assert summary["lifted_loss_first"] == 2 and summary["lifted_loss_last"] == 3
    assert diagnostics_summary([]) == dict.fromkeys(DIAGNOSTIC_COLUMNS)


def test_grasp_under_mpc_reports_where_its_plan_quality_came_from(tmp_path):
    goals = make_goals("same_room", ENV, 3, np.random.default_rng(4))
    oracle = TwoRoomsOracle(CFG, frameskip=2)
    logs = {"grasp": run_episodes(oracle, build_planner("grasp", iterations=20, sync_every=10), ENV,
                                  goals, horizon=4, max_steps=12),
            "cem": run_episodes(oracle, build_planner("cem", samples=32, iterations=3, elites=4), ENV,
                                goals, horizon=4, max_steps=12)}
    grasp = logs["grasp"]
    assert len(grasp.diagnostics) == len(grasp.replan_seconds) and logs["cem"].diagnostics == []
    first = grasp.diagnostics[0]
    np.testing.assert_array_equal(first["probe_iteration"], [0, 10, 20])
    assert first["cost_trace"].shape == first["defect"].shape == (20,)
    assert first["shooting_cost"].shape == first["synced_cost"].shape == (3,)
    assert first["rollout_gap"].shape == (3, 3)  # [P, T - 1]

    summaries = {name: summarize(log) for name, log in logs.items()}
    for key in DIAGNOSTIC_COLUMNS:
        assert isinstance(summaries["grasp"][key], float), key
        assert summaries["cem"][key] is None, key
    assert summaries["grasp"]["shooting_cost_end"] < summaries["grasp"]["shooting_cost_start"]
    json.dumps(summaries)
    table = format_table(summaries)
    assert "grasp: lifted loss" in table and "of the drop" in table and "cem:" not in table

    path = plot_costs(tmp_path, logs)
    assert path.name == "cost_vs_iteration.png" and Image.open(path).size == (1200, 800)  # 2x2 panels
    assert Image.open(plot_costs(tmp_path, {"cem": logs["cem"]})).size == (600, 400)  # the one panel
