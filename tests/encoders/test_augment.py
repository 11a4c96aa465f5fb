import pytest
import torch

from encoders.augment import CodecNoise, codec_noise

OFF = CodecNoise(noise=0.0, blur=0.0, chroma=0.0, shift=0.0)


def _frames(n=6, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 2, 3, size, size), dtype=torch.uint8, generator=g)


def test_all_bounds_zero_is_the_identity():
    frames = _frames()
    assert torch.equal(codec_noise(frames, OFF), frames)


def test_shape_and_dtype_kept_and_change_is_small():
    torch.manual_seed(0)
    frames = _frames()
    out = codec_noise(frames, CodecNoise(chroma=0.0, blur=0.0))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    diff = (out.int() - frames.int()).abs().float()
    # noise std <= 3 and shift <= 2 levels: a few levels on average, and some change happens
    assert 0.2 < diff.mean() < 4.0


def test_flat_frames_survive_chroma_subsampling_and_blur():
    # 4:2:0 averages chroma over 2x2 blocks and a blur averages neighbours: both leave a
    # uniform colour where it is, up to rounding.
    frames = torch.empty(4, 1, 3, 8, 8, dtype=torch.uint8)
    frames[:, :, 0], frames[:, :, 1], frames[:, :, 2] = 200, 30, 90
    out = codec_noise(frames, CodecNoise(noise=0.0, shift=0.0, blur=1.0, chroma=1.0))
    assert (out.int() - frames.int()).abs().max() <= 1


def test_chroma_subsampling_bleeds_colour_but_keeps_luma():
    # A one-pixel red dot on grey: 4:2:0 spreads its colour to the neighbours (as AV1's
    # yuv420p does to a small agent), while luma (brightness) stays at the dot.
    frames = torch.full((1, 1, 3, 8, 8), 128, dtype=torch.uint8)
    frames[..., 0, 3, 3], frames[..., 1, 3, 3], frames[..., 2, 3, 3] = 255, 0, 0
    out = codec_noise(frames, CodecNoise(noise=0.0, shift=0.0, blur=0.0, chroma=1.0)).float()
    luma = lambda x: 0.299 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :]  # noqa: E731
    assert (luma(out) - luma(frames.float())).abs().max() < 2.0
    assert (out[..., 0, 3, 2] - out[..., 1, 3, 2]).item() > 10  # the neighbour turned reddish
    assert (out[..., 0, 3, 3] - out[..., 1, 3, 3]).item() < 255 - 10  # the dot lost saturation


@pytest.mark.parametrize("bad", [dict(noise=-1.0), dict(chroma=1.5), dict(blur=2.0)])
def test_bad_bounds_are_named(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        CodecNoise(**bad)


def test_codec_noise_refuses_float_frames():
    with pytest.raises(ValueError, match="uint8"):
        codec_noise(torch.zeros(1, 3, 8, 8), CodecNoise())


def test_invariance_term_trains_the_encoder_through_the_noised_frames_once_switched_on():
    from dataclasses import asdict

    from encoders import EncoderConfig, VJEPAModule

    cfg = dict(dim=32, depth=1, heads=2, pred_dim=16, pred_depth=1, pred_heads=2, warmup_steps=1,
               inverse_dynamics=0.0, vicreg_var=0.0, vicreg_cov=0.0, invariance_frames=4)
    batch = {"frames": _frames(n=4, size=32), "actions": torch.randn(4, 1, 4)}
    grads = {}
    for weight, start in ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5)):
        torch.manual_seed(0)
        module = VJEPAModule(asdict(EncoderConfig(**cfg, invariance=weight, invariance_start=start)), img_size=32,
                             frameskip=2, action_dim=2, action_mean=[0.0, 0.0], action_std=[1.0, 1.0], max_steps=10)
        out = module._step(batch, torch.Generator().manual_seed(0))  # global_step 0
        module.zero_grad()
        (out["loss"] - out["jepa_loss"]).backward()  # only the shaping terms
        grad = module.context_encoder.patch_embed.weight.grad
        grads[(weight, start)] = 0.0 if grad is None else grad.abs().max().item()
        if weight:
            assert out["invariance"].item() > 0  # measured (and logged) even before it is switched on
    assert grads[(0.0, 0.0)] == 0.0
    assert grads[(1.0, 0.0)] > 0
    assert grads[(1.0, 0.5)] == 0.0  # step 0 of 10 is before invariance_start
