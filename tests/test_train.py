"""End-to-end: tiny two-stage training on CPU, checkpoint round trip, resume, corrupt data, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_overrides
from jepa_plan.config import ConfigError, load_config
from jepa_plan.training import run
from world_models import WorldModel

REPO = Path(__file__).resolve().parents[1]


def test_two_stage_train_writes_a_loadable_world_model(tmp_path):
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("logger.")] + ["logger.wandb.mode=offline"]
    result = run(load_config(overrides))
    out = tmp_path / "run"
    for name in ("config.yaml", "encoder.pt", "world_model.pt", "latents.pt", "diagnostics.json",
                 "encoder/csv/version_0/metrics.csv", "world_model/csv/version_0/metrics.csv",
                 "encoder/checkpoints/last.ckpt", "world_model/checkpoints/last.ckpt"):
        assert (out / name).exists(), name
    assert list((out / "wandb").glob("offline-run-*")), "offline W&B run folder missing"
    assert "encoder.depth" not in (out / "config.yaml").read_text() and "depth: 1" in (out / "config.yaml").read_text()

    diag = json.loads((out / "diagnostics.json").read_text())
    assert set(result["planning_readiness"]) == set(diag["planning_readiness"])
    assert {"rollout_err_k3", "repeat_err_k3", "probe_r2", "dist_spearman", "probe_err_k1"} <= set(diag["planning_readiness"])
    assert {"val/target_std", "val/target_eff_rank"} <= set(diag["encoder"])
    assert diag["probe_features"] == ["s0", "s1"]  # two_rooms: the probe reads the state as it is

    wm = WorldModel.from_checkpoint(out / "world_model.pt")
    frames = torch.from_numpy(np.load(tmp_path / "data" / "ep_000000" / "frames.npy")[:3]).permute(0, 3, 1, 2)
    z = wm.encode(frames[None])
    k = wm.latent_shape[0]  # the latent basis keeps the directions codec-like noise barely moves
    assert 1 <= k <= 32 and wm.latent_proj.shape == (32, k)
    assert z.shape == (1, 3, k) and torch.isfinite(z).all()
    assert wm.rollout(z[:, 0], torch.zeros(1, 4, wm.action_dim)).shape == (1, 4, k)
    assert wm.action_dim == 2 * 2 and wm.frameskip == 2

    with pytest.raises(ConfigError, match="already holds a run.*resume=true"):
        run(load_config(overrides))


def test_keypoint_encoder_trains_through_both_stages_and_loads(tmp_path):
    """encoder.name=keypoints: the same two stages; the world model's encoder is the keypoint net."""
    overrides = tiny_overrides(tmp_path) + [
        "encoder.name=keypoints", "encoder.dim=8", "encoder.kp_width=8", "encoder.jepa=0", "encoder.keypoint_decode=1",
        "encoder.vicreg_var=0", "encoder.vicreg_cov=0", "world_model.nuisance_ratio=0"]
    run(load_config(overrides))
    out = tmp_path / "run"
    metrics = (out / "encoder/csv/version_0/metrics.csv").read_text()
    assert "val/keypoint_loss" in metrics.splitlines()[0].split(",")
    wm = WorldModel.from_checkpoint(out / "world_model.pt")
    assert type(wm.encoder).__name__ == "KeypointEncoder" and wm.latent_shape == (8,)
    frames = torch.from_numpy(np.load(tmp_path / "data" / "ep_000000" / "frames.npy")[:3]).permute(0, 3, 1, 2)
    z = wm.encode(frames[None])
    assert z.shape == (1, 3, 8) and torch.isfinite(z).all()


def test_resume_continues_step_count_and_state(tmp_path, capsys):
    overrides = tiny_overrides(tmp_path, steps=4) + ["stage=encoder"]
    run(load_config(overrides))
    out = tmp_path / "run"
    first = torch.load(out / "encoder/checkpoints/last.ckpt", weights_only=False)
    assert first["global_step"] == 4
    (out / "encoder.pt").unlink()  # as if the process had been killed before the stage finished

    run(load_config([o for o in overrides if not o.startswith("trainer.max_steps")]
                    + ["trainer.max_steps=6", "resume=true"]))
    assert "resuming encoder from" in capsys.readouterr().out
    second = torch.load(out / "encoder/checkpoints/last.ckpt", weights_only=False)
    assert second["global_step"] == 6
    # optimizer moments and the EMA target were restored, then trained on
    assert second["optimizer_states"][0]["state"]
    key = next(k for k in second["state_dict"] if k.startswith("target_encoder."))
    assert not torch.equal(first["state_dict"][key], second["state_dict"][key])


def test_max_minutes_ends_a_stage_early_and_still_writes_it(tmp_path, capsys):
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("trainer.max_steps")]
    run(load_config(overrides + ["stage=encoder", "trainer.max_steps=500", "trainer.max_minutes=0.0001"]))
    assert "stage encoder: stopped by trainer.max_minutes at step" in capsys.readouterr().out
    out = tmp_path / "run"
    assert (out / "encoder.pt").is_file()
    assert 1 <= torch.load(out / "encoder/checkpoints/last.ckpt", weights_only=False)["global_step"] < 500


def test_encoder_seed_search_keeps_the_lowest_validation_metric(tmp_path):
    run(load_config(tiny_overrides(tmp_path) + ["stage=all", "encoder_seeds=[0,1]"]))
    out = tmp_path / "run"
    record = json.loads((out / "encoder_seeds.json").read_text())
    losses = {row["seed"]: row["val/loss"] for row in record["runs"]}
    assert record["select"] == "val/loss" and sorted(losses) == [0, 1]
    assert losses[record["chosen"]] == min(losses.values())
    chosen = torch.load(out / "encoder_seeds" / f"seed_{record['chosen']}" / "encoder.pt", weights_only=True)
    other = torch.load(out / "encoder_seeds" / f"seed_{1 - record['chosen']}" / "encoder.pt", weights_only=True)
    kept = torch.load(out / "encoder.pt", weights_only=True)
    for name, value in kept["state_dict"].items():
        assert torch.equal(value, chosen["state_dict"][name])
    assert any(not torch.equal(v, other["state_dict"][k]) for k, v in kept["state_dict"].items())
    assert (out / "world_model.pt").is_file()  # the world model trained on the kept encoder


def test_encoder_seed_search_names_a_metric_the_encoder_does_not_log(tmp_path):
    with pytest.raises(ConfigError, match=r"encoder_select='val/nothing' is not one of .*val/loss"):
        run(load_config(tiny_overrides(tmp_path) + ["stage=encoder", "encoder_seeds=[3]", "encoder_select=val/nothing"]))


def test_corrupt_episode_is_skipped_and_training_goes_on(tmp_path):
    overrides = tiny_overrides(tmp_path, steps=2) + ["stage=encoder", "data.max_bad_fraction=0.1"]
    cfg = load_config(overrides)
    from jepa_plan.training import ensure_dataset
    root = ensure_dataset(cfg)
    (root / "ep_000003" / "frames.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(UserWarning, match="ep_000003"):
        run(cfg)
    assert (tmp_path / "run" / "encoder.pt").exists()


def test_ddp_two_processes_on_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    overrides = [o for o in tiny_overrides(tmp_path, steps=2) if not o.startswith("trainer.devices")]
    cmd = [sys.executable, str(REPO / "train.py"), *overrides, "trainer.devices=2", "trainer.strategy=ddp"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world_model.pt" in proc.stdout
    ckpt = torch.load(tmp_path / "run" / "world_model" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    assert WorldModel.from_checkpoint(tmp_path / "run" / "world_model.pt").action_dim == 4


def test_data_from_another_env_or_resolution_is_refused_by_name(tmp_path):
    from jepa_plan.collect import collect_episodes
    from jepa_plan.envs.two_rooms import TwoRoomsConfig
    from jepa_plan.training import ensure_dataset

    collect_episodes(TwoRoomsConfig(resolution=16), tmp_path / "data", episodes=2, steps=4, seed=0)
    with pytest.raises(ConfigError, match=r"data: recorded from env 'two_rooms' at 16 px, but this run uses "
                                          r"env 'two_rooms' at 32 px; pass env=two_rooms env.resolution=16"):
        ensure_dataset(load_config(tiny_overrides(tmp_path)))
    assert ensure_dataset(load_config([*tiny_overrides(tmp_path), "env.resolution=16"])) == tmp_path / "data"
