import pytest
import torch

from encoders import VideoViT
from world_models import PREDICTORS, CheckpointError, WorldModel
from world_models.latents import LatentSplit, stack_actions, windows
from world_models.module import WorldModelModule
from planners import WorldModel as WorldModelProtocol


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictor_shapes_and_identity_init(name):
    pred = PREDICTORS[name][0](latent_dim=8, action_dim=4, hidden=16, layers=2, action_embed=8)
    z, a = torch.randn(3, 5, 8), torch.randn(3, 5, 4)
    out = pred(z, a)
    assert out.shape == (3, 5, 8)
    assert torch.allclose(out, z)  # starts as repeat-last
    with pytest.raises(ValueError, match="leading dims"):
        pred(z, a[:, :2])


def test_stack_actions_and_windows():
    actions = torch.arange(2 * 10, dtype=torch.float32).view(10, 2)  # two episodes of 6 and 4 frames
    lengths = torch.tensor([6, 4])
    stacked = stack_actions(actions, lengths, frameskip=2)
    assert stacked.shape == (10, 4)
    assert torch.equal(stacked[0], actions[0:2].flatten())
    assert torch.equal(stacked[6], actions[6:8].flatten())  # second episode starts fresh
    assert torch.isnan(stacked[5]).all() and torch.isnan(stacked[9]).all()  # would cross an episode end
    idx = windows(lengths, frameskip=2, steps=2)
    assert idx.tolist() == [[0, 2, 4], [1, 3, 5]]  # the 4-frame episode is too short for 2 steps of 2
    with pytest.raises(ValueError, match="no episode"):
        windows(lengths, frameskip=3, steps=2)
    split = LatentSplit(z=torch.randn(10, 3), a=stacked, states=torch.randn(10, 2), index=idx)
    batch = split.batch(torch.tensor([1]))
    assert batch["z"].shape == (1, 3, 3) and batch["a"].shape == (1, 2, 4)
    assert not torch.isnan(batch["a"]).any()


def tiny_world_model(frameskip=2, predictor=None, pred_cfg=None):
    """A 16 px world model; by default with an MLP predictor, else `predictor` built from `pred_cfg`."""
    enc_cfg = {"patch_size": 8, "tubelet_size": 1, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
    encoder = VideoViT(img_size=16, patch_size=8, dim=16, depth=1, heads=2, mlp_ratio=2.0)
    if predictor is None:
        pred_cfg = {"name": "mlp", "hidden": 16, "layers": 2, "action_embed": 8}
        predictor = PREDICTORS["mlp"][0](16, 2 * frameskip, hidden=16, layers=2, action_embed=8)
        torch.nn.init.normal_(predictor.mlp[-1].weight)  # not the identity, so the round trip is meaningful
    meta = {"encoder": enc_cfg, "img_size": 16, "predictor": pred_cfg, "env": {"name": "two_rooms"},
            "env_action_low": [-1.0, -1.0], "env_action_high": [1.0, 1.0], "config": {}}
    return WorldModel(encoder, predictor, latent_mean=torch.randn(16), latent_proj=torch.diag(1 / (torch.rand(16) + 0.5)),
                      action_mean=torch.zeros(2 * frameskip), action_std=torch.full((2 * frameskip,), 0.5),
                      env_action_low=torch.tensor([-1.0, -1.0]), env_action_high=torch.tensor([1.0, 1.0]),
                      frameskip=frameskip, meta=meta)


def test_world_model_interface_shapes():
    wm = tiny_world_model()
    assert isinstance(wm, WorldModelProtocol)
    frames = torch.randint(0, 255, (2, 3, 3, 16, 16), dtype=torch.uint8)
    z = wm.encode(frames)
    assert z.shape == (2, 3, 16)
    a = torch.randn(2, 5, wm.action_dim)
    assert wm.step(z, torch.randn(2, 3, wm.action_dim)).shape == (2, 3, 16)
    roll = wm.rollout(z[:, 0], a)
    assert roll.shape == (2, 5, 16)
    assert torch.allclose(roll[:, 1], wm.step(wm.step(z[:, 0], a[:, 0]), a[:, 1]))
    # bounds: env box [-1, 1] / std 0.5 -> [-2, 2] in model space; env_actions inverts normalize_actions
    assert torch.allclose(wm.action_high, torch.full((4,), 2.0))
    env = wm.env_actions(a)
    assert env.shape == (2, 5, 2, 2)
    assert torch.allclose(wm.normalize_actions(env), a, atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        wm.encode(frames.float())


def test_checkpoint_round_trip(tmp_path):
    wm = tiny_world_model()
    path = tmp_path / "wm.pt"
    wm.save(path)
    loaded = WorldModel.from_checkpoint(path)
    frames = torch.randint(0, 255, (2, 1, 3, 16, 16), dtype=torch.uint8)
    a = torch.randn(2, 4, wm.action_dim)
    assert torch.allclose(wm.encode(frames), loaded.encode(frames))
    assert torch.allclose(wm.rollout(wm.encode(frames)[:, 0], a), loaded.rollout(loaded.encode(frames)[:, 0], a))
    assert loaded.frameskip == 2 and loaded.meta["env"]["name"] == "two_rooms"
    torch.load(path, weights_only=True)  # plain tensors and types only: loading runs no code

    # Loaded onto another device whole, the action box (kept in the JSON meta) included; "meta"
    # stands in for CUDA here: any device but the CPU fails the same way when one buffer stays behind.
    moved = WorldModel.from_checkpoint(path, map_location="meta")
    assert {b.device.type for b in moved.buffers()} == {"meta"} and moved.action_low.device.type == "meta"


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: world-model checkpoint not found"):
        WorldModel.from_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable"):
        WorldModel.from_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="other.pt: expected format"):
        WorldModel.from_checkpoint(other)


def test_world_model_module_loss_and_readiness():
    torch.manual_seed(0)
    n, d, a_dim = 60, 6, 4
    lengths = torch.tensor([30, 30])
    split = LatentSplit(z=torch.randn(n, d), a=torch.randn(n, a_dim), states=torch.randn(n, 2),
                        index=windows(lengths, frameskip=1, steps=3))
    cfg = {"name": "mlp", "hidden": 16, "layers": 2, "action_embed": 8, "rollout_steps": 2, "rollout_weight": 1.0,
           "ridge_alpha": 1.0}
    module = WorldModelModule(cfg, latent_dim=d, action_dim=a_dim)
    out = module.losses(split.batch(torch.arange(8)))
    assert set(out) == {"loss", "teacher_loss", "rollout_loss"}
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    module.diagnostics_data = {"train": split, "val": split}
    diag = module.readiness()
    for k in (1, 2, 3):
        # identity init: the model *is* repeat-last, so the two errors coincide
        assert diag[f"rollout_err_k{k}"] == pytest.approx(diag[f"repeat_err_k{k}"])
    assert -1.0 <= diag["dist_spearman"] <= 1.0


def test_readiness_reports_probe_error_per_state_group():
    from world_models.diagnostics import planning_readiness, readiness_table

    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 5, 6, generator=g)  # windows [M, K+1, D]
    states = z[..., :3] * torch.tensor([1.0, 2.0, 10.0])  # linear in the latent: the probe reads it
    a = torch.randn(64, 4, 2, generator=g)
    perfect = lambda z0, actions, *_: z[:, 1:]  # noqa: E731
    d = planning_readiness(perfect, z.flatten(0, 1), states.flatten(0, 1), {"z": z, "a": a, "states": states},
                           z.flatten(0, 1), states.flatten(0, 1), ridge_alpha=1e-6, groups={"pos": [0, 1], "far": [2]})
    for k in range(1, 5):
        assert d[f"probe_err_k{k}_pos"] < 1e-3 < d[f"probe_repeat_err_k{k}_pos"]
        expected = (states[:, k, 2] - states[:, 0, 2]).abs().mean().item()  # one column: |repeat - true|
        assert abs(d[f"probe_repeat_err_k{k}_far"] - expected) < 1e-3 * expected
    assert "probe err of far by k, model / repeat-last: k1 " in readiness_table(d)
