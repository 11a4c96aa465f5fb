"""The benchmark scripts: budgets -> planners, the frontier and matched-seconds tables, and tiny
oracle runs of both scripts (seconds each; the real runs are in their docstrings)."""

import csv
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from jepa_plan.config import ConfigError, load_config
from jepa_plan.evaluation.report import wilson_interval

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


bench = load_script("bench_planners")
iteration = load_script("bench_grasp_iteration")


def budgets_of(*argv):
    cfg = load_config(list(argv), preset="plan", schema=bench.BenchConfig, groups=("env",))
    return bench.expand_budgets(cfg, bench.resolve_budgets(cfg, list(argv)))


def row(family, planner, seconds, wins, n=50):
    low, high = wilson_interval(wins, n)
    return {"family": family, "planner": planner, "seconds_per_replan": seconds, "success_rate": wins / n,
            "ci_low": low, "ci_high": high}


def test_budgets_expand_into_named_planners_of_their_family():
    budgets = budgets_of()  # the defaults: every family keeps the field's reference point
    labels = {b.label: b for b in budgets}
    assert labels["cem 300x30 top30"].family == "cem" and labels["mppi 512x6 top64"].family == "mppi"
    assert labels["grasp_authors_cem 750 it"].planner.config.sync == "cem"  # the plan.yaml variant's settings
    assert labels["grasp_authors_cem 750 it"].planner.config.sync_every == 50
    assert labels["grasp"].planner.config.iterations == 200  # the authors' code defaults

    budgets = budgets_of("budgets={cem: [{samples: 16, iterations: 2, elites: 4}, {iterations: 3}], gd: [{}]}")
    assert [(b.family, b.label) for b in budgets] == [("cem", "cem 16x2 top4"), ("cem", "cem 128x3 top16"),
                                                      ("gd", "gd")]  # cem's other settings from plan.yaml
    assert [b.label for b in budgets_of("planners=[grasp,cem]")] == ["grasp", "cem"]  # one budget each, as before
    only_cem = [b for b in budgets_of("budgets.cem=[{iterations: 3}]") if b.family == "cem"]
    assert [b.label for b in only_cem] == ["cem 128x3 top16"] and len(budgets_of("budgets.cem=[{iterations: 3}]")) > 1


@pytest.mark.parametrize("budgets, message", [
    ("{cme: [{}]}", r"budgets.cme\[0\]: unknown planner 'cme'; registered planners: cem, gd, grasp.*variants"),
    ("{cem: [{sampels: 3}]}", r"unknown config keys \['sampels'\]; valid keys: .*'samples'"),
    ("{cem: {samples: 3}}", "budgets.cem must be a list of override mappings"),
])
def test_unknown_family_or_key_names_the_valid_ones(budgets, message):
    with pytest.raises(ConfigError, match=message):
        budgets_of(f"budgets={budgets}")
    with pytest.raises(ConfigError, match="unknown config key 'modez'"):
        budgets_of("modez=[mpc]")


def test_pareto_front_keeps_points_no_cheaper_point_beats():
    points = [row("cem", "b", 2.0, 20), row("cem", "a", 1.0, 25), row("cem", "c", 3.0, 35), row("cem", "d", 3.0, 30)]
    assert [p["planner"] for p in bench.pareto_front(points)] == ["a", "c"]  # (1 s, 50%), (3 s, 70%)
    assert bench.pareto_front([]) == []


def test_matched_seconds_picks_each_familys_best_point_within_the_reference_seconds():
    rows = [row("cem", "cem small", 1.0, 25), row("cem", "cem big", 4.0, 30),
            row("grasp", "grasp 50", 0.5, 30), row("grasp", "grasp 100", 0.9, 40), row("grasp", "grasp 400", 2.0, 45),
            row("gd", "gd 300", 3.0, 10)]
    matches = {(m["reference"]["planner"], m["family"]): m for m in bench.matched_seconds(rows, "cem")}
    small = matches[("cem small", "grasp")]
    assert small["best"]["planner"] == "grasp 100"  # 80% within 1 s beats 60% at 0.5 s
    assert small["verdict"] == "better" and small["difference"][1] > 0  # 80% vs 50% of 50: CI excludes 0
    assert matches[("cem small", "gd")]["best"] is None and matches[("cem small", "gd")]["verdict"] == "-"
    assert matches[("cem big", "grasp")]["best"]["planner"] == "grasp 400"
    assert matches[("cem big", "gd")]["verdict"] == "worse"  # 20% vs 60%
    assert len(matches) == 4
    table = bench.markdown([{**r, "device": "cpu", "mode": "mpc", "horizon": 20, "planning_seconds_per_episode": 1.0,
                             "transitions_per_replan": 100, "median_seconds_to_success": None,
                             "final_distance": 0.1, "sync_share": None, "lifted_loss_rise_between_syncs": None,
                             "rollout_gap_final": None} for r in rows], "cem", "header")
    assert "| cem small | 1.000 | 50% [37%, 63%] | grasp | grasp 100 | 0.900 | 80% [67%, 89%] |" in table


def test_tiny_oracle_frontier_run_writes_csv_markdown_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    rows = bench.main(["world_model=oracle", "goals=door", "horizons=[4]", "modes=[open_loop,mpc]", "episodes=2",
                       "threads=1", "env.resolution=32", "devices=[cpu]", f"output_dir={out}",
                       "logger.wandb.mode=disabled",
                       "budgets={cem: [{samples: 8, iterations: 2, elites: 2}, {samples: 16, iterations: 2, elites: 4}], "
                       "grasp: [{iterations: 4, sync_every: 2, sync_steps: 1}]}"])
    assert len(rows) == 2 * 3  # two modes x three budgets
    with (out / "bench.csv").open() as f:
        written = list(csv.DictReader(f))
    assert [(r["mode"], r["planner"]) for r in written] == [(r["mode"], r["planner"]) for r in rows]
    assert set(bench.COLUMNS) <= set(written[0])
    grasp = next(r for r in rows if r["family"] == "grasp")
    assert grasp["sync_share"] is not None or grasp["rollout_gap_final"] is not None  # GRASP's diagnostics
    open_loop = next(r for r in rows if r["mode"] == "open_loop")
    assert open_loop["planning_seconds_per_episode"] == pytest.approx(open_loop["seconds_per_replan"])
    md = (out / "bench.md").read_text()
    for section in ("## (a) Every budget", "## (b) Pareto frontier", "## (c) Matched seconds", "### cpu, mpc, H=4"):
        assert section in md
    for name in ("frontier_seconds_open_loop.png", "frontier_seconds_mpc.png", "frontier_transitions_mpc.png",
                 "config.yaml"):
        assert (out / name).exists(), name
    assert "cem 16x2 top4" in capsys.readouterr().out


def test_merge_keeps_later_rows_and_drops_redefined_families(tmp_path):
    bench = load_script("bench_planners")
    runs = []
    for i, budgets in enumerate(["{cem: [{samples: 8, iterations: 2, elites: 2}], grasp: [{iterations: 2, sync_every: 1}]}",
                                 "{grasp: [{iterations: 4, sync_every: 2}]}"]):
        runs.append(tmp_path / f"run{i}")
        bench.main(["world_model=oracle", "goals=door", "horizons=[3]", "episodes=2", "threads=1", "env.resolution=32",
                    "devices=[cpu]", f"output_dir={runs[-1]}", "logger.wandb.mode=disabled", f"budgets={budgets}"])
    merge = load_script("merge_bench")
    merge.main([f"out={tmp_path / 'merged'}", f"runs=[{runs[0]},{runs[1]}]", "drop_family_from_first=[grasp]"])
    with (tmp_path / "merged" / "bench.csv").open() as f:
        planners = [r["planner"] for r in csv.DictReader(f)]
    assert planners == ["cem 8x2 top2", "grasp 4 it sync_every=2"]
    assert "grasp 4 it" in (tmp_path / "merged" / "bench.md").read_text()
    assert (tmp_path / "merged" / "frontier_seconds_open_loop.png").exists()
    with pytest.raises(SystemExit, match="unknown keys"):
        merge.main([f"out={tmp_path}", "runs=[]", "bogus=1"])


def test_iteration_benchmark_prints_the_ratio_on_a_tiny_oracle_problem(tmp_path, capsys):
    report = iteration.main(["world_model=oracle", "batch=3", "horizon=4", "warmup=1", "blocks=1", "repeats=2",
                             "compile=false", "devices=[cpu]", f"output_dir={tmp_path}"])
    printed = capsys.readouterr().out
    assert "GRASP iteration / predictor forward+backward =" in printed
    for what in ("| predictor forward+backward |", "| GRASP iteration (lifted_step) |", "|   Adam step |",
                 "| Adam fused=True |", "|   rest: Python and autograd overhead |"):
        assert what in report
    assert (tmp_path / "iteration.md").read_text().strip() == report.strip()
    with pytest.raises(SystemExit, match="unknown config key 'batches'.*valid keys here: .*batch"):
        iteration.main(["batches=3"])
    with pytest.raises(SystemExit, match="unknown config keys \\['noise'\\]"):
        iteration.main(["planner.noise=0.1"])


def _episodes_csv(path: Path, successes: list[int], goal_shift: float = 0.0) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["planner", "episode", "success", "start_0", "goal_0"])
        for i, s in enumerate(successes):
            w.writerow(["cem", i, s, 10.0 * i, 10.0 * i + 5 + goal_shift])
    return path


def test_compare_runs_pairs_goals_and_refuses_runs_on_other_goals(tmp_path, capsys):
    compare = load_script("compare_runs")
    a = _episodes_csv(tmp_path / "a.csv", [1, 0, 0, 0, 1, 0])
    b = _episodes_csv(tmp_path / "b.csv", [1, 1, 1, 1, 0, 0])
    compare.main([f"a={a}", f"b={b}"])
    row = capsys.readouterr().out.splitlines()[-1]
    # A solved goals 0 and 4, B goals 0-3: one goal A alone, three B alone; p = 2 * 5 / 16.
    assert row == "| cem | 6 | 2 (33%) | 4 (67%) | 1 | 3 | 0.62 |"
    other = _episodes_csv(tmp_path / "c.csv", [1, 1, 1, 1, 0, 0], goal_shift=1.0)
    with pytest.raises(SystemExit, match="cem episode 0: start or goal differs"):
        compare.main([f"a={a}", f"b={other}"])
    with pytest.raises(SystemExit, match="no such episodes.csv"):
        compare.main([f"a={a}", f"b={tmp_path / 'missing.csv'}"])


def test_pusht_success_by_goal_splits_goals_by_the_blocks_turn_and_move(tmp_path, capsys):
    by_goal = load_script("pusht_success_by_goal")
    # The turn wraps: 3.1 to -3.1 rad is a turn of about 0.08, not 6.2.
    turn, move = by_goal.block_change(np.array([0, 0, 0, 0, 3.1, 0, 0]), np.array([0, 0, 3, 4, -3.1, 0, 0]))
    assert turn == pytest.approx(2 * math.pi - 6.2) and move == pytest.approx(5.0)
    path = tmp_path / "episodes.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["planner", "episode", "success", *(f"start_{i}" for i in range(7)),
                    *(f"goal_{i}" for i in range(7))])
        w.writerow(["cem", 0, 1, *[0] * 7, 0, 0, 5, 0, 0.1, 0, 0])  # small turn, small move: solved
        w.writerow(["cem", 1, 0, *[0] * 7, 0, 0, 50, 0, 1.0, 0, 0])  # large turn, large move: failed
        w.writerow(["cem", 2, 1, *[0] * 7, 0, 0, 30, 0, 0.2, 0, 0])  # small turn, large move: solved
    by_goal.main([f"runs=[{path}]"])
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == f"| {path} | cem | 2/3 | 2/2 | 0/1 | 1/1 | 1/2 | 0.15 / 1.00 | 17.50 / 50.00 |"
    with pytest.raises(SystemExit, match="no Push-T episodes"):
        by_goal.main([f"runs=[{_episodes_csv(tmp_path / 'other.csv', [1])}]"])


def test_attentive_probe_reads_a_feature_the_token_mean_loses():
    """The target sits in one token, flagged by a marker dim, at a random place among noise tokens:
    the mean of the tokens averages it away, the attentive probe finds the flagged token."""
    import torch

    from encoders.diagnostics import RidgeProbe

    probe = load_script("probe_block_pose")
    g = torch.Generator().manual_seed(0)
    n, tokens, dim = 3000, 16, 8
    x = torch.randn(n, tokens, dim, generator=g)
    x[..., 0] = 0.0
    where = torch.randint(0, tokens, (n,), generator=g)
    x[torch.arange(n), where, 0] = 4.0  # the flag
    y = torch.stack([x[torch.arange(n), where, 1], x[torch.arange(n), where, 2]], 1)
    fit, test = slice(0, 2500), slice(2500, None)
    attentive = probe.attentive_r2(x[fit], y[fit], x[test], y[test], steps=600, seed=0)
    mean = RidgeProbe().fit(x[fit].mean(1), y[fit]).r2_per_dim(x[test].mean(1), y[test])
    assert min(attentive) > 0.8
    assert max(mean) < 0.2


def test_state_latent_features_pass_the_episode_loop_as_frames_and_come_back_unchanged():
    import torch

    oracle = load_script("pusht_state_latent")
    states = np.array([[10.0, 20.0, 300.0, 400.0, np.pi / 2, 1.0, 2.0],
                       [50.0, 60.0, 100.0, 200.0, np.pi, -1.0, 0.0]], np.float32)
    pose = oracle.state_features(states, oracle.FEATURES["pose"])
    np.testing.assert_allclose(pose, [[10, 20, 300, 400, 1, 0], [50, 60, 100, 200, 0, -1]], atol=1e-6)
    assert oracle.state_features(states, oracle.FEATURES["position"]).shape == (2, 4)

    class Identity:
        def standardize(self, z):
            return z

    # As jepa_plan.evaluation.mpc hands a batch of frames to encode: [N, H, W, C] -> [N, 1, C, H, W].
    frames = torch.from_numpy(oracle.packed(pose)).permute(0, 3, 1, 2)[:, None]
    assert torch.equal(oracle.StateWorldModel(Identity()).encode(frames)[:, 0], torch.from_numpy(pose))


def test_point_attachment_counts_points_fixed_on_the_block_and_the_spread_of_their_offsets():
    """Two synthetic points ride on the block 6 px apart (at 64 px), one follows the agent: the
    summary finds the two and their 6 px, the table puts the third on the agent."""
    probe = load_script("probe_block_pose")
    rng = np.random.default_rng(0)
    n, side = 2000, 64
    states = np.c_[rng.uniform(50, 450, (n, 4)), rng.uniform(-np.pi, np.pi, n), np.zeros((n, 2))]
    rot = np.stack([np.stack([np.cos(states[:, 4]), -np.sin(states[:, 4])], 1),
                    np.stack([np.sin(states[:, 4]), np.cos(states[:, 4])], 1)], 1)  # [N, 2, 2]
    block = states[:, 2:4] / 256 - 1
    on_block = [block + rot @ (np.array([dx, 0.0]) / (side / 2)) for dx in (3.0, -3.0)]
    latents = np.concatenate([*on_block, states[:, 0:2] / 256 - 1], 1)
    rows, summary = probe.point_attachment(latents, states, side)
    assert summary.startswith("2 of 3 points rigid on the block") and "6.0 px at 64 px" in summary
    assert rows[0].endswith("| 1.00 | 3.0 |") and rows[1].endswith("| 1.00 | 3.0 |")
    assert rows[2].split("|")[3].strip() == "1.00"  # point 2's R^2 on the agent
