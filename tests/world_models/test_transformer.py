"""The frame-causal transformer predictor (history k), its WorldModel calls and its training."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from planners import build_planner
from world_models import CheckpointError, WorldModel
from world_models.latents import LatentSplit, window_steps, windows
from world_models.module import WorldModelModule
from world_models.transformer import TransformerPredictor
from test_world_model import tiny_world_model
from world_models.world_model import build_predictor

D, A = 6, 4  # latent and model action dims of the tiny models


def random_predictor(history: int, layers: int = 2, latent_dim: int = D, action_dim: int = A) -> TransformerPredictor:
    """Weights drawn at random: the zero-initialised identity map would hide every dependency."""
    torch.manual_seed(0)
    pred = TransformerPredictor(latent_dim, action_dim, hidden=16, layers=layers, action_embed=8, heads=2,
                                history=history)
    for p in pred.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return pred.requires_grad_(False)


def transformer_world_model(history: int, frameskip: int = 2) -> WorldModel:
    pred_cfg = {"name": "transformer", "hidden": 16, "layers": 2, "action_embed": 8, "heads": 2, "history": history}
    return tiny_world_model(frameskip, random_predictor(history, latent_dim=16, action_dim=2 * frameskip), pred_cfg)


# -- the predictor -------------------------------------------------------------------------------

@pytest.mark.parametrize("history", [1, 2, 3, 8])
def test_predictions_see_exactly_their_k_frame_window(history):
    pred = random_predictor(history)
    z, a = torch.randn(3, 7, D), torch.randn(3, 7, A)
    out = pred(z, a)
    for j in range(7):
        z2, a2 = z.clone(), a.clone()
        z2[:, j] += 3.0
        a2[:, j] -= 2.0
        out2 = pred(z2, a2)
        assert torch.equal(out[:, :j], out2[:, :j])  # causal: a later frame never reaches an earlier prediction
        assert torch.equal(out[:, j + history:], out2[:, j + history:])  # nor one k or more frames later
        assert (out[:, j:j + history] - out2[:, j:j + history]).abs().amax() > 1e-3  # inside the window it does


@pytest.mark.parametrize("history", [1, 3])
def test_teacher_forcing_equals_k_frame_windows(history):
    pred = random_predictor(history)
    z, a = torch.randn(2, 6, D), torch.randn(2, 6, A)
    out = pred(z, a)
    for t in range(6):
        lo = max(0, t - history + 1)
        assert torch.allclose(pred(z[:, lo:t + 1], a[:, lo:t + 1])[:, -1], out[:, t], atol=1e-5)
    assert torch.allclose(pred.step(z, a), pred(z.unsqueeze(-2), a.unsqueeze(-2)).squeeze(-2))
    assert pred(z.unsqueeze(0), a.unsqueeze(0)).shape == (1, 2, 6, D)  # any leading dims before [T, D]


def test_config_builds_and_refusals():
    cfg = {"name": "transformer", "hidden": 16, "layers": 1, "action_embed": 8, "heads": 4, "history": 3}
    pred = build_predictor(cfg, D, A)
    assert isinstance(pred, TransformerPredictor) and pred.history == 3 and len(pred.blocks) == 1
    # a checkpoint written before `heads`/`history` existed builds the Markov predictor it held
    old = build_predictor({"name": "mlp", "hidden": 16, "layers": 2, "action_embed": 8}, D, A)
    assert old.history == 1
    with pytest.raises(ValueError, match="mlp predictor is Markov"):
        build_predictor({"name": "mlp", "history": 2}, D, A)
    with pytest.raises(ValueError, match="registered: mlp, transformer"):
        build_predictor({"name": "gru"}, D, A)
    with pytest.raises(ValueError, match="multiple of heads"):
        build_predictor({**cfg, "hidden": 10}, D, A)


# -- WorldModel: step, step_sequence, rollout with a context ---------------------------------------

@pytest.mark.parametrize("history", [1, 3])
def test_rollout_shapes_and_sliding_context(history):
    wm = transformer_world_model(history)
    assert wm.history == history
    b, h, dim = 3, 5, 16
    z0, actions = torch.randn(b, dim), torch.randn(b, h, wm.action_dim)
    past_z, past_a = torch.randn(b, 4, dim), torch.randn(b, 4, wm.action_dim)  # more than k - 1: the last k - 1 count
    roll = wm.rollout(z0, actions, past_z, past_a)
    assert roll.shape == (b, h, dim)
    assert wm.rollout(z0, actions).shape == (b, h, dim)  # no context: starts from one frame
    keep = history - 1
    trimmed = (past_z[:, 4 - keep:], past_a[:, 4 - keep:]) if keep else (None, None)
    assert torch.equal(roll, wm.rollout(z0, actions, *trimmed))

    # the rollout is step by step on its own predictions, the window sliding
    seq_z = torch.cat([past_z, z0[:, None]], 1)
    seq_a = torch.cat([past_a, actions], 1)
    for t in range(h):
        nxt = wm.step(seq_z[:, -1], seq_a[:, seq_z.shape[1] - 1], seq_z[:, :-1], seq_a[:, :seq_z.shape[1] - 1])
        assert torch.allclose(nxt, roll[:, t], atol=1e-5)
        seq_z = torch.cat([seq_z, nxt[:, None]], 1)

    # step_sequence: every transition of a given trajectory at once, each with its own window (GRASP's lifted step)
    traj = torch.cat([past_z[:, -keep:] if keep else past_z[:, :0], z0[:, None], roll[:, :-1]], 1)
    acts = torch.cat([past_a[:, -keep:] if keep else past_a[:, :0], actions], 1)
    assert torch.allclose(wm.step_sequence(traj, acts)[:, keep:], roll, atol=1e-5)

    # Markov calls as the planners make them: any leading dims
    assert wm.step(torch.randn(b, h, dim), actions).shape == (b, h, dim)
    with pytest.raises(ValueError, match="go together"):
        wm.step(z0, actions[:, 0], past_a=past_a)


def test_history_1_rollout_is_repeated_step():
    wm = transformer_world_model(1)
    z0, actions = torch.randn(2, 16), torch.randn(2, 3, wm.action_dim)
    roll = wm.rollout(z0, actions)
    assert torch.equal(roll[:, 1], wm.step(wm.step(z0, actions[:, 0]), actions[:, 1]))


@pytest.mark.parametrize("name", ["grasp", "cem"])
def test_planners_run_unchanged_on_a_history_1_transformer(name):
    wm = transformer_world_model(1)
    settings = {"grasp": {"iterations": 4, "sync_every": 2, "sync_steps": 2},
                "cem": {"samples": 16, "elites": 4, "iterations": 2}}[name]
    result = build_planner(name, **settings).plan(wm, torch.randn(2, 16), torch.randn(2, 16), 3,
                                                  generator=torch.Generator().manual_seed(0))
    assert result.actions.shape == (2, 3, wm.action_dim) and torch.isfinite(result.cost).all()


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    wm = transformer_world_model(3)
    wm.save(tmp_path / "wm.pt")
    loaded = WorldModel.from_checkpoint(tmp_path / "wm.pt")
    assert loaded.history == 3 and isinstance(loaded.predictor, TransformerPredictor)
    z0, actions = torch.randn(2, 16), torch.randn(2, 4, wm.action_dim)
    past = (torch.randn(2, 2, 16), torch.randn(2, 2, wm.action_dim))
    assert torch.equal(wm.rollout(z0, actions, *past), loaded.rollout(z0, actions, *past))
    traj, acts = torch.randn(2, 6, 16), torch.randn(2, 6, wm.action_dim)
    assert torch.equal(wm.step_sequence(traj, acts), loaded.step_sequence(traj, acts))

    state = torch.load(tmp_path / "wm.pt", weights_only=True)
    state["meta"] = state["meta"].replace('"transformer"', '"gru"')
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: unknown predictor 'gru'"):
        WorldModel.from_checkpoint(tmp_path / "other.pt")


# -- training ----------------------------------------------------------------------------------------

def test_windows_hold_the_context_and_the_mlp_windows_stay():
    assert window_steps({"rollout_steps": 4, "diag_horizon": 5}) == 5  # an MLP config from before `history`
    assert window_steps({"rollout_steps": 4, "diag_horizon": 5, "history": 1}) == 5
    assert window_steps({"rollout_steps": 4, "diag_horizon": 2, "history": 3}) == 6


def test_mlp_losses_are_the_markov_recipe():
    torch.manual_seed(0)
    cfg = {"name": "mlp", "hidden": 16, "layers": 2, "action_embed": 8, "rollout_steps": 2, "rollout_weight": 0.5}
    module = WorldModelModule(cfg, latent_dim=D, action_dim=A)
    torch.nn.init.normal_(module.predictor.mlp[-1].weight)
    z, a = torch.randn(5, 4, D), torch.randn(5, 3, A)
    out = module.losses({"z": z, "a": a})
    # the loop the module ran before history existed
    pred, rolled = z[:, 0], []
    for t in range(2):
        pred = module.predictor(pred, a[:, t])
        rolled.append(pred)
    teacher = F.l1_loss(module.predictor(z[:, :-1], a), z[:, 1:])
    rollout = F.l1_loss(torch.stack(rolled, 1), z[:, 1:3])
    assert torch.equal(out["teacher_loss"], teacher) and torch.equal(out["rollout_loss"], rollout)
    assert torch.equal(out["loss"], teacher + 0.5 * rollout)


def tiny_cfg(history: int, **extra) -> dict:
    return {"name": "transformer", "hidden": 32, "layers": 1, "action_embed": 16, "heads": 2, "history": history,
            "rollout_steps": 2, "rollout_weight": 1.0, "ridge_alpha": 1.0, "lr": 1e-2, "weight_decay": 0.0,
            "warmup_steps": 1, "max_steps": 4, "batch_size": 8, **extra}


def test_module_trains_a_few_steps_with_history_3_and_reports_readiness():
    torch.manual_seed(0)
    n, lengths = 80, torch.tensor([40, 40])
    split = LatentSplit(z=torch.randn(n, D), a=torch.randn(n, A), states=torch.randn(n, 2),
                        index=windows(lengths, frameskip=1, steps=window_steps({"rollout_steps": 2, "diag_horizon": 3,
                                                                                "history": 3})))
    assert split.index.shape[1] == 6  # 2 context frames + z_0 + 3 steps
    module = WorldModelModule(tiny_cfg(3), latent_dim=D, action_dim=A)
    module.diagnostics_data = {"train": split, "val": split}

    def loader(shuffle):
        return DataLoader(range(len(split)), batch_size=8, shuffle=shuffle, drop_last=shuffle,
                          collate_fn=lambda rows: split.batch(torch.tensor(rows)))

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=4, max_epochs=-1, val_check_interval=4,
                        check_val_every_n_epoch=None, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader(True), loader(False))
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    # a history-3 model is scored from 3 context frames: window 6 -> 3 rollout steps
    assert {"val/rollout_err_k3", "val/repeat_err_k3", "val/probe_r2"} <= set(metrics)
    assert "val/rollout_err_k4" not in metrics


def synthetic_batch(n: int, velocity: bool, generator: torch.Generator, steps: int = 4) -> dict:
    """z_{t+1} = z_t + a_t B (+ z_t - z_{t-1} with `velocity`): [n, steps + 1, D], [n, steps, A]."""
    mix = torch.linspace(-1, 1, A * D).view(A, D) * 0.5
    a = torch.randn(n, steps, A, generator=generator)
    z = [torch.randn(n, D, generator=generator)]
    prev = z[0] - 0.5 * torch.randn(n, D, generator=generator)  # the hidden velocity
    for t in range(steps):
        nxt = z[-1] + a[:, t] @ mix + ((z[-1] - prev) if velocity else 0)
        prev = z[-1]
        z.append(nxt)
    return {"z": torch.stack(z, 1), "a": a}


def fit(history: int, velocity: bool, steps: int = 200) -> tuple[dict, dict, float]:
    """Adam on `module.losses`, fresh synthetic windows each step -> (losses before, after, held-out
    L1 of the teacher-forced predictions that have two or more frames of context)."""
    torch.manual_seed(0)
    module = WorldModelModule(tiny_cfg(history), latent_dim=D, action_dim=A)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    train, test = torch.Generator().manual_seed(1), synthetic_batch(256, velocity, torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = module.losses(test)
    for _ in range(steps):
        loss = module.losses(synthetic_batch(64, velocity, train))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = module.losses(test)
        err = (module.predictor(test["z"][:, :-1], test["a"])[:, 1:] - test["z"][:, 2:]).abs().mean().item()
    return before, after, err


def test_loss_falls_on_learnable_action_dynamics():
    before, after, err = fit(history=1, velocity=False)
    assert after["loss"] < 0.1 * before["loss"]
    assert err < 0.1  # the step is ~0.6 per dim


def test_history_2_fits_dynamics_that_need_the_previous_frame():
    # z_{t+1} = 2 z_t - z_{t-1} + a_t B: from z_t alone the velocity is unknowable (best L1 ~0.5)
    _, _, err_markov = fit(history=1, velocity=True)
    _, _, err_history = fit(history=2, velocity=True)
    assert err_markov > 0.3
    assert err_history < 0.4 * err_markov
