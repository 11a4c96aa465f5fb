"""W&B `online` without credentials or network falls back to offline with one warning, in
planning and in training, and the run goes on."""

import json

import pytest

from helpers import tiny_overrides
from jepa_plan.config import PlanConfig, load_config
from jepa_plan.planning import run as plan
from jepa_plan.training import make_loggers
from jepa_plan.wandb_dirs import online_problem, usable_wandb_mode


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_online_needs_a_key_and_a_reachable_host(no_credentials, monkeypatch):
    assert "no W&B API key" in online_problem()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert "127.0.0.1 is unreachable" in online_problem(timeout=1.0)
    assert usable_wandb_mode("offline") == "offline" and usable_wandb_mode("disabled") == "disabled"


def test_planning_online_without_credentials_logs_offline(no_credentials, tmp_path, capsys):
    cfg = load_config([f"output_dir={tmp_path / 'plan'}", "logger.wandb.mode=online", "world_model=oracle",
                       "goals=same_room", "episodes=2", "horizon=3", "max_steps=6", "planners=[cem]",
                       "planner.cem.samples=16", "planner.cem.iterations=2", "planner.cem.elites=4", "videos=0",
                       "env.resolution=32"], preset="plan", schema=PlanConfig, groups=("env",))
    plan(cfg)
    err = capsys.readouterr().err
    assert err.count("W&B online logging is not possible") == 1 and "logging offline instead" in err
    assert json.loads((tmp_path / "plan" / "results.json").read_text())["planners"]["cem"]["episodes"] == 2
    assert list((tmp_path / "plan" / "wandb").glob("offline-run-*"))


def test_training_online_without_credentials_logs_offline(no_credentials, tmp_path, capsys):
    items = [item for item in tiny_overrides(tmp_path) if not item.startswith("logger.")]
    cfg = load_config([*items, "logger.wandb.mode=online"])
    loggers = make_loggers(cfg, tmp_path / "run", "encoder")
    wandb_logger = loggers[-1]
    assert type(wandb_logger).__name__ == "WandbLogger" and wandb_logger._offline
    assert "W&B online logging is not possible" in capsys.readouterr().err
    wandb_logger.experiment.finish()
