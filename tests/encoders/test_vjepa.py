import math
from dataclasses import asdict

import lightning
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from encoders import EncoderConfig, VJEPAModule
from encoders.masking import sample_multiblock_masks
from encoders.vjepa import clip_contrastive_loss, patch_pixels, sigreg_statistic, state_targets

TINY = dict(dim=32, depth=1, heads=2, pred_dim=16, pred_depth=1, pred_heads=2, warmup_steps=1, diag_frames=32)
FRAMESKIP, ACTION_DIM, CLIP = 2, 2, 3


class RandomClips(Dataset):
    """Dict samples shaped like the data module's: frames, stacked actions, states."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {
            "frames": torch.randint(0, 256, (CLIP, 3, 32, 32), dtype=torch.uint8, generator=g),
            "actions": torch.randn(CLIP - 1, FRAMESKIP * ACTION_DIM, generator=g),
            "states": torch.rand(CLIP, 2, generator=g),
        }


def _module(state_dim: int = 0, **overrides):
    cfg = asdict(EncoderConfig(**{**TINY, **overrides}))
    return VJEPAModule(cfg, img_size=32, frameskip=FRAMESKIP, action_dim=ACTION_DIM,
                       action_mean=[0.0, 0.1], action_std=[1.0, 2.0], max_steps=3, state_dim=state_dim)


def _trainer(tmp_path, **kw):
    settings = dict(
        max_steps=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2,
        num_sanity_val_steps=0, default_root_dir=tmp_path,
    )
    return lightning.Trainer(**{**settings, **kw})


def _plain(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def test_shapes_of_losses_and_id_head():
    module = _module()
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    out = module._step(batch, torch.Generator().manual_seed(0))
    assert out["latents"].shape == (4, CLIP, 32)
    assert out["target_tokens"].shape == (4, CLIP * 16, 32)
    assert module.id_head(out["latents"][:, 0]).shape == (4, FRAMESKIP * ACTION_DIM)
    assert module.embed(batch["frames"]).shape == (4, CLIP, 32)
    assert module.action_mean.tolist() == pytest.approx([0.0, 0.1, 0.0, 0.1])  # tiled per step
    for name in ("loss", "jepa_loss", "id_loss", "vicreg_var", "vicreg_cov"):
        assert out[name].dim() == 0 and torch.isfinite(out[name])


def test_fit_smoke_ema_and_checkpoint(tmp_path):
    module = _module()
    before = [p.clone() for p in module.target_encoder.parameters()]
    loader = DataLoader(RandomClips(), batch_size=4)
    trainer = _trainer(tmp_path, val_check_interval=3)
    trainer.fit(module, loader, loader)

    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    for name in ("val/loss", "val/target_std", "val/target_eff_rank", "val/latent_std",
                 "val/latent_eff_rank", "val/probe_r2", "val/dist_spearman", "train/ema_momentum"):
        assert name in metrics, name
    after = list(module.target_encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before)), "EMA did not move the target"
    assert all(p.grad is None and not p.requires_grad for p in after)

    path = tmp_path / "vjepa.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    assert _plain(ckpt["hyper_parameters"])
    loaded = VJEPAModule.load_from_checkpoint(path)
    frames = RandomClips()[0]["frames"][None]
    module.eval(), loaded.eval()
    assert torch.allclose(module.embed(frames), loaded.embed(frames))


def test_bf16_mixed_and_aux_off(tmp_path):
    module = _module(inverse_dynamics=0.0, vicreg_var=0.0, vicreg_cov=0.0)
    trainer = _trainer(tmp_path, precision="bf16-mixed", limit_val_batches=1, val_check_interval=2)
    loader = DataLoader(RandomClips(), batch_size=8)
    trainer.fit(module, loader, loader)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/dist_spearman"])
    # with the term off the id head still trains, as a probe on detached latents
    assert "train/id_loss" in metrics


def test_unknown_config_key_and_bad_stats():
    with pytest.raises(KeyError, match="valid keys"):
        VJEPAModule({"dimm": 3}, 32, FRAMESKIP, ACTION_DIM, [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="action_mean"):
        VJEPAModule(asdict(EncoderConfig(**TINY)), 32, FRAMESKIP, ACTION_DIM, [0.0] * 3, [1.0, 1.0])


def test_pooled_decode_targets_each_frame_alone_and_trains_the_encoder():
    assert _module().decoder is None  # off by default: no extra parameters
    module = _module(pooled_decode=1.0)
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    latents = module.embed(batch["frames"])
    decode = module._decode_loss(batch["frames"], latents)
    # The target is each frame's own token map: every frame encoded alone, layer-normalised.
    with torch.no_grad():
        pred = module.decoder(latents.flatten(0, 1), (1, 4, 4))
        alone = module.target_encoder(batch["frames"].flatten(0, 1)[:, None])
    assert pred.shape == alone.shape == (4 * CLIP, 16, 32)
    expected = (pred - torch.nn.functional.layer_norm(alone, (32,))).abs().mean()
    assert decode.item() == pytest.approx(expected.item(), rel=1e-5)
    out = module._step(batch, torch.Generator().manual_seed(0))
    assert out["decode_loss"].item() == pytest.approx(decode.item(), rel=1e-5)
    out["backward"].backward()
    assert module.context_encoder.patch_embed.weight.grad.abs().sum() > 0  # it shapes the encoder
    assert all(p.grad is None for p in module.target_encoder.parameters())  # the EMA target stays fixed


def test_pooled_decode_of_pixels_regresses_each_patch_centred_over_the_batch():
    module = _module(pooled_decode=1.0, decode_target="pixels", decode_centered=True, patch_size=8)
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    latents = module.embed(batch["frames"])
    with torch.no_grad():
        pred = module.decoder(latents.flatten(0, 1), (1, 4, 4))
    assert pred.shape == (4 * CLIP, 16, 3 * 8 * 8)
    # Token (h, w) = 1 * 4 + 2 holds the RGB of rows 8..15, columns 16..23, in [-1, 1].
    x = batch["frames"].flatten(0, 1).float() / 127.5 - 1
    patches = torch.stack([x[:, :, 8 * h:8 * h + 8, 8 * w:8 * w + 8].flatten(1) for h in range(4) for w in range(4)], 1)
    centred = patches - patches.mean(0)
    expected = (pred - centred / centred.std()).abs().mean()
    assert module._decode_loss(batch["frames"], latents).item() == pytest.approx(expected.item(), rel=1e-4)
    module.cfg.decode_loss = "mse"
    squared = (pred - centred / centred.std()).pow(2).mean()
    assert module._decode_loss(batch["frames"], latents).item() == pytest.approx(squared.item(), rel=1e-4)
    with pytest.raises(ValueError, match="encoder.decode_target='rgb'; valid: tokens, pixels"):
        _module(pooled_decode=1.0, decode_target="rgb")
    with pytest.raises(ValueError, match="encoder.decode_loss='huber'; valid: l1, mse"):
        _module(pooled_decode=1.0, decode_loss="huber")


def test_patch_pixels_orders_tokens_as_the_encoder_and_holds_each_tubelet():
    frames = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    tokens = patch_pixels(frames, patch=8, tubelet=2)
    assert tokens.shape == (2, 2 * 2 * 2, 3 * 2 * 8 * 8)
    x = frames.float() / 127.5 - 1
    # Token (t', h, w) = (1, 0, 1): frames 2-3, rows 0-7, columns 8-15, channel first.
    expected = x[1, 2:4, :, 0:8, 8:16].permute(1, 0, 2, 3).flatten()
    assert torch.equal(tokens[1, 1 * 4 + 0 * 2 + 1], expected)


def test_masked_prediction_of_pixels_regresses_the_masked_patches_normalised_per_patch():
    module = _module(jepa_target="pixels", patch_size=8)
    assert module.predictor.proj.out_features == 3 * 8 * 8
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    frames = batch["frames"]
    torch.manual_seed(0)
    loss, tokens = module._jepa_loss(frames, torch.Generator().manual_seed(3))
    assert tokens.shape == (4, CLIP * 16, 32)  # the EMA target still feeds the collapse diagnostics
    # The same masks, drawn again, give the predictions; the target is each masked patch's RGB
    # minus its mean, over its standard deviation.
    grid = module.context_encoder.grid(CLIP)
    context_idx, target_idx = sample_multiblock_masks(4, grid, module.cfg.mask_blocks(), torch.Generator().manual_seed(3))
    with torch.no_grad():
        pred = module.predictor(module.context_encoder(frames, keep=context_idx), context_idx, target_idx, grid)
    patches = patch_pixels(frames, 8, 1)
    target = torch.gather(patches, 1, target_idx[..., None].expand(-1, -1, patches.shape[-1]))
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert loss.item() == pytest.approx((pred - target).pow(2).mean().item(), rel=1e-5)
    loss.backward()
    assert module.context_encoder.patch_embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="encoder.jepa_target='latents'; valid: tokens, pixels"):
        _module(jepa_target="latents")


def test_sigreg_is_small_for_a_standard_normal_and_large_for_collapsed_or_stretched_latents():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(2048, 16, generator=g)
    stat = lambda z: sigreg_statistic(z, 64, torch.Generator().manual_seed(1)).item()  # noqa: E731
    # Under H0 the expected statistic is the integral of (1 - exp(-t^2)) exp(-t^2 / 2) over
    # [-3, 3], about sqrt(2 pi) - sqrt(2 pi / 3) = 1.06, whatever N; off H0 it grows with N.
    assert stat(gaussian) == pytest.approx(1.06, abs=0.2)
    assert stat(0.1 * gaussian) > 50 * stat(gaussian)  # collapsed towards a point
    assert stat(gaussian * torch.tensor([5.0] + [1.0] * 15)) > 5 * stat(gaussian)  # one stretched axis
    assert stat(gaussian + 2.0) > 50 * stat(gaussian)  # off-centre
    # The trapezoid integral matches a dense quadrature of the same integrand.
    z = gaussian[:256] * 0.7
    a = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    p = z @ (a / a.norm(dim=0))
    t = torch.linspace(-3, 3, 6001)
    x = p[..., None] * t
    err = ((x.cos().mean(0) - torch.exp(-t**2 / 2)) ** 2 + x.sin().mean(0) ** 2) * torch.exp(-t**2 / 2)
    dense = 256 * torch.trapezoid(err, t, dim=-1).mean()
    assert sigreg_statistic(z, 64, torch.Generator().manual_seed(1), knots=201).item() == pytest.approx(dense.item(), rel=1e-3)


def test_lewm_objective_predicts_the_next_latent_with_gradient_into_both_frames():
    module = _module(jepa=0.0, inverse_dynamics=0.0, vicreg_var=0.0, vicreg_cov=0.0, forward_dynamics=1.0, sigreg=0.1)
    assert module.predictor is None and module.fd_head is not None  # no masked predictor to train
    assert _module().fd_head is None  # off by default: no extra parameters
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    out = module._step(batch, torch.Generator().manual_seed(0))
    latents = out["latents"]
    actions = (batch["actions"] - module.action_mean) / module.action_std
    expected = (module.fd_head(latents[:, :-1], actions) - latents[:, 1:]).pow(2).mean()
    assert out["fd_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["jepa_loss"].item() == 0.0 and out["target_tokens"] is None
    assert out["loss"].item() == pytest.approx(out["fd_loss"].item() + 0.1 * out["sigreg"].item(), rel=1e-5)
    # The target latent is not detached: the gradient reaches the encoder through z_{t+1} alone.
    z = module.embed(batch["frames"])
    (module.fd_head(z[:, :-1].detach(), actions) - z[:, 1:]).pow(2).mean().backward()
    assert module.context_encoder.patch_embed.weight.grad.abs().sum() > 0


def test_lewm_objective_fits_and_validates_without_the_target_encoder(tmp_path):
    module = _module(jepa=0.0, forward_dynamics=1.0, sigreg=0.1, vicreg_var=0.0, vicreg_cov=0.0)
    trainer = _trainer(tmp_path, limit_val_batches=1, val_check_interval=2)
    loader = DataLoader(RandomClips(), batch_size=8)
    trainer.fit(module, loader, loader)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["val/fd_loss"]) and torch.isfinite(metrics["val/probe_r2"])
    assert "val/latent_eff_rank" in metrics and "val/target_eff_rank" not in metrics


def test_clip_contrastive_loss_is_nt_xent_for_pairs_and_rewards_telling_clips_apart():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 2, 8, generator=g)
    # For 2-frame clips it is SimCLR's NT-Xent: cross-entropy of each frame against its partner,
    # over every other frame of the batch.
    flat = torch.nn.functional.normalize(z.flatten(0, 1), dim=-1)
    logits = (flat @ flat.T / 0.5).fill_diagonal_(float("-inf"))
    partner = torch.arange(10) ^ 1
    assert clip_contrastive_loss(z, 0.5).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, partner).item(), rel=1e-5)
    # Frames that match their clip and differ from other clips reach the floor, log(L - 1) (the
    # softmax mass splits over the L - 1 positives), far below random frames; frames that match
    # every clip score the chance level, log(B L - 1).
    clips = torch.eye(8)[:4, None].expand(4, 3, 8)
    assert clip_contrastive_loss(clips, 0.1).item() == pytest.approx(math.log(2), abs=1e-3)
    assert clip_contrastive_loss(torch.randn(4, 3, 8, generator=g), 0.1).item() > math.log(2) + 1.0
    same = torch.ones(4, 3, 8)
    assert clip_contrastive_loss(same, 0.1).item() == pytest.approx(math.log(11), rel=1e-5)
    with pytest.raises(ValueError, match="at least 2 clips of 2 frames"):
        clip_contrastive_loss(torch.randn(1, 3, 8), 0.1)


def test_contrastive_term_trains_the_encoder_through_its_head():
    assert _module().contrastive_head is None  # off by default: no extra parameters
    module = _module(contrastive=0.5, contrastive_temperature=0.2, contrastive_dim=8)
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    out = module._step(batch, torch.Generator().manual_seed(0))
    expected = clip_contrastive_loss(module.contrastive_head(out["latents"].flatten(0, 1)).unflatten(0, (4, CLIP)), 0.2)
    assert out["contrastive_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    without = out["loss"] - 0.5 * out["contrastive_loss"]
    reference = _module()
    reference.load_state_dict(module.state_dict(), strict=False)
    assert without.item() == pytest.approx(reference._step(batch, torch.Generator().manual_seed(0))["loss"].item(),
                                           rel=1e-5)
    out["contrastive_loss"].backward()
    assert module.context_encoder.patch_embed.weight.grad.abs().sum() > 0


def test_state_targets_turn_angle_dims_into_sine_and_cosine():
    states = torch.tensor([[1.0, 2.0, math.pi / 2, 3.0]])
    assert state_targets(states, [2])[0].tolist() == pytest.approx([1.0, 2.0, 3.0, 1.0, 0.0], abs=1e-6)
    assert state_targets(states, []).tolist() == states.tolist()
    with pytest.raises(ValueError, match=r"encoder.state_angles=\[4\]: dims \[4\] are outside the 4-d state"):
        state_targets(states, [4])
    # state_dims picks the dims (their order kept), angles among them as (sin, cos) at the end
    assert state_targets(states, [2], [3, 2]).tolist()[0] == pytest.approx([3.0, 1.0, 0.0], abs=1e-6)
    assert state_targets(states, [], [1]).tolist() == [[2.0]]
    with pytest.raises(ValueError, match=r"encoder.state_dims=\[0, 5\]: dims \[5\] are outside the 4-d state"):
        state_targets(states, [], [0, 5])
    with pytest.raises(ValueError, match=r"encoder.state_angles=\[2\]: dims \[2\] are not in encoder.state_dims=\[0\]"):
        state_targets(states, [2], [0])


def test_state_supervision_regresses_standardised_states_from_the_pooled_latent():
    assert _module().state_head is None  # off by default
    with pytest.raises(ValueError, match="needs states in the data set"):
        _module(state_supervision=1.0)
    module = _module(state_dim=2, state_supervision=2.0, state_angles=[1])
    assert module.state_head[-1].out_features == 3  # s0, sin s1, cos s1
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    out = module._step(batch, torch.Generator().manual_seed(0))
    target = state_targets(batch["states"], [1]).flatten(0, 1)
    target = (target - target.mean(0)) / target.std(0)
    expected = (module.state_head(out["latents"].flatten(0, 1)) - target).pow(2).mean()
    assert out["state_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    reference = _module()
    reference.load_state_dict(module.state_dict(), strict=False)
    without = reference._step(batch, torch.Generator().manual_seed(0))["loss"].item()
    assert out["loss"].item() == pytest.approx(without + 2.0 * out["state_loss"].item(), rel=1e-5)
    out["state_loss"].backward()
    assert module.context_encoder.patch_embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="the batch carries no states"):
        module._step({k: v for k, v in batch.items() if k != "states"}, torch.Generator().manual_seed(0))


def test_state_supervision_regresses_only_the_chosen_state_dims():
    module = _module(state_dim=2, state_supervision=1.0, state_dims=[1], state_angles=[1])
    assert module.state_head[-1].out_features == 2  # sin s1, cos s1; s0 left out
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    out = module._step(batch, torch.Generator().manual_seed(0))
    angle = batch["states"][..., 1].flatten(0, 1)
    target = torch.stack([angle.sin(), angle.cos()], dim=-1)
    target = (target - target.mean(0)) / target.std(0)
    expected = (module.state_head(out["latents"].flatten(0, 1)) - target).pow(2).mean()
    assert out["state_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"encoder.state_dims=\[0, 2\]: dims \[2\] are outside the 2-d state"):
        _module(state_dim=2, state_supervision=1.0, state_dims=[0, 2])


def test_contrastive_and_state_heads_score_validation_with_batch_statistics():
    module = _module(state_dim=2, contrastive=1.0, state_supervision=1.0)
    batch = next(iter(DataLoader(RandomClips(), batch_size=4)))
    train = module._step(batch, torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        val = module._step(batch, torch.Generator().manual_seed(0))
    for name in ("contrastive_loss", "state_loss"):
        assert val[name].item() == pytest.approx(train[name].item(), rel=1e-4), name
