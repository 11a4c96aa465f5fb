from dataclasses import asdict

import pytest
import torch

from encoders import ENCODERS, EncoderConfig, KeypointEncoder, VJEPAModule, build_encoder
from encoders.keypoints import (KeypointDecoder, foreground_weighted_mse, gaussian_maps, keypoint_separation,
                                spatial_softmax)

KP = dict(name="keypoints", dim=8, kp_width=8, jepa=0.0, pooled_decode=0.0, keypoint_decode=1.0, vicreg_var=0.0,
          vicreg_cov=0.0, warmup_steps=1, diag_frames=32, lr=3e-3)


def test_spatial_softmax_reads_the_hot_pixel_centre():
    logits = torch.full((1, 2, 8, 8), -1e4)
    logits[0, 0, 1, 6] = 0.0  # row 1, column 6
    logits[0, 1, 7, 0] = 0.0
    points = spatial_softmax(logits)
    # Pixel centres of an 8-pixel axis in [-1, 1]: -0.875, -0.625, ..., 0.875.
    assert torch.allclose(points[0], torch.tensor([[0.625, -0.625], [-0.875, 0.875]]))


def test_spatial_softmax_spread_is_the_heatmaps_variance():
    logits = torch.full((1, 2, 8, 8), -1e4)
    logits[0, 0, 2, 3] = logits[0, 0, 2, 5] = 0.0  # two pixels 0.5 apart: each 0.25 from their mean
    logits[0, 1, 4, 4] = 0.0  # one pixel: no spread
    points, spread = spatial_softmax(logits, with_spread=True)
    assert torch.allclose(points, spatial_softmax(logits))
    assert torch.allclose(spread, torch.tensor([[0.0625, 0.0]]), atol=1e-6)


def test_gaussian_maps_peak_at_their_points():
    points = torch.tensor([[[0.625, -0.625], [-0.875, 0.875]]])
    maps = gaussian_maps(points, 8, 0.1)
    assert maps.shape == (1, 2, 8, 8)
    assert maps[0, 0].argmax().item() == 1 * 8 + 6 and maps[0, 1].argmax().item() == 7 * 8 + 0
    assert torch.allclose(maps.amax(dim=(2, 3)), torch.ones(1, 2))  # unit peak on a pixel centre


def test_encoder_embeds_each_frame_as_its_points():
    enc = KeypointEncoder(keypoints=3, width=8, img_size=16)
    frames = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    z = enc.embed_frames(frames)
    assert z.shape == (2, 4, 6) and enc.dim == 6
    assert z.abs().max() <= 1
    points, spread = enc.embed_frames(frames, with_spread=True)
    assert torch.equal(points, z) and spread.shape == (2, 4, 3) and (spread >= 0).all()
    # Each frame alone: the clip's other frames do not change a frame's points.
    assert torch.allclose(enc.embed_frames(frames[:, 1:2])[:, 0], z[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match="16x16"):
        enc.embed_frames(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8))


def test_build_encoder_and_config_errors_name_the_key():
    assert ENCODERS["keypoints"][0] is KeypointEncoder
    enc = build_encoder(EncoderConfig(**KP), 16)
    assert isinstance(enc, KeypointEncoder) and enc.keypoints == 4
    with pytest.raises(ValueError, match="encoder.jepa=0"):
        EncoderConfig(**{**KP, "jepa": 1.0})
    with pytest.raises(ValueError, match="encoder.keypoint_decode"):
        EncoderConfig(keypoint_decode=1.0)
    with pytest.raises(ValueError, match="encoder.kp_separation"):
        EncoderConfig(kp_separation=1.0)
    with pytest.raises(ValueError, match="encoder.kp_concentration"):
        EncoderConfig(kp_concentration=1.0)
    with pytest.raises(ValueError, match="encoder.dim=7"):
        build_encoder(EncoderConfig(**{**KP, "dim": 7}), 16)


def test_separation_is_one_for_coincident_points_and_pushes_close_ones_apart():
    together = torch.zeros(1, 3, 2)
    assert keypoint_separation(together.flatten(1), 0.1).item() == pytest.approx(1.0)
    far = torch.tensor([[[-0.9, -0.9], [0.9, 0.9], [0.9, -0.9]]])
    assert keypoint_separation(far.flatten(1), 0.1).item() < 1e-30
    assert keypoint_separation(torch.zeros(2, 2), 0.1).item() == 0.0  # one point has no pair
    close = torch.tensor([[0.0, 0.0, 0.05, 0.0]], requires_grad=True)  # (x0, y0, x1, y1)
    keypoint_separation(close, 0.1).backward()
    # Descending the term moves the first point left and the second right: apart.
    assert close.grad[0, 0] > 0 and close.grad[0, 2] < 0


def test_foreground_weight_counts_only_non_background_pixels():
    frames = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    frames[0, :, 0, 0] = 0  # one dark pixel
    pred = torch.zeros(1, 3, 4, 4)  # error 1 on the 15 white pixels, 1 on the dark one
    assert foreground_weighted_mse(pred, frames, 1.0).item() == pytest.approx(1.0)
    assert foreground_weighted_mse(pred, frames, 5.0).item() == pytest.approx((15 + 5) / 16)


def test_keypoint_objective_learns_to_draw_a_moving_square():
    """Frames of one dark square at random places: the reconstruction loss falls well below what
    a point-blind decoder (the mean frame) gets, and a point follows the square."""
    torch.manual_seed(0)
    n, side = 64, 16
    where = torch.randint(2, side - 6, (n, 2))
    frames = torch.full((n, 1, 3, side, side), 255, dtype=torch.uint8)
    for i, (r, c) in enumerate(where.tolist()):
        frames[i, 0, :, r:r + 4, c:c + 4] = 0
    cfg = asdict(EncoderConfig(**{**KP, "kp_sigma": 0.15}))
    module = VJEPAModule(cfg, img_size=side, frameskip=1, action_dim=0, action_mean=[], action_std=[], max_steps=300)
    assert isinstance(module.kp_decoder, KeypointDecoder)
    opt = torch.optim.Adam(module.parameters(), 3e-3)
    batch = {"frames": torch.cat([frames, frames], 1)}  # 2-frame clips
    for _ in range(300):
        out = module._step(batch, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["backward"].backward()
        opt.step()
    target = frames[:, 0].float() / 127.5 - 1
    blind = foreground_weighted_mse(target.mean(0, keepdim=True).expand_as(target), frames[:, 0], KP.get("kp_fg_weight", 5.0))
    assert out["keypoint_loss"].item() < 0.5 * blind.item()
    points = out["latents"][:, 0].detach().view(n, -1, 2)
    centre = (where.float() + 2) / side * 2 - 1  # (row, col) of the square's centre in [-1, 1]
    follows = [max(abs(torch.corrcoef(torch.stack([points[:, k, 0], centre[:, 1]]))[0, 1].item()),
                   abs(torch.corrcoef(torch.stack([points[:, k, 1], centre[:, 0]]))[0, 1].item()))
               for k in range(points.shape[1])]
    assert max(follows) > 0.8


def test_separation_and_concentration_terms_add_their_weights_to_the_loss():
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (3, 2, 3, 16, 16), dtype=torch.uint8)
    outs = {}
    for weight in (0.0, 0.5):
        cfg = asdict(EncoderConfig(**{**KP, "kp_separation": weight, "kp_concentration": weight}))
        torch.manual_seed(1)
        module = VJEPAModule(cfg, img_size=16, frameskip=1, action_dim=0, action_mean=[], action_std=[], max_steps=10)
        outs[weight] = module._step({"frames": frames}, torch.Generator().manual_seed(0))
    on, off = outs[0.5], outs[0.0]
    assert 0 < on["kp_separation"].item() <= 1 and on["kp_spread"].item() > 0
    assert off["kp_separation"].item() == 0 and off["kp_spread"].item() == 0
    expected = off["loss"] + 0.5 * (on["kp_separation"] + on["kp_spread"])
    assert torch.allclose(on["loss"], expected, atol=1e-5)


def test_local_decoder_paints_a_pixel_only_from_the_blobs_near_it():
    """Moving a point across the top-left corner changes the far bottom-right corner's pixels
    under the global decoder and leaves them alone under the local one."""
    torch.manual_seed(0)
    a, b = torch.tensor([[-0.8, -0.8]]), torch.tensor([[-0.5, -0.9]])
    change = {}
    for reach in ("global", "local"):
        dec = KeypointDecoder(32, keypoints=1, width=8, sigma=0.05, reach=reach)
        with torch.no_grad():
            change[reach] = (dec(a) - dec(b))[..., 24:, 24:].abs().max().item()
    assert change["global"] > 0  # small at initialisation, but the far pixels do depend on the point
    assert change["local"] == 0  # the blob's tail there underflows to 0 and 1x1 convolutions do not carry it
    with pytest.raises(ValueError, match="reach='wide'"):
        KeypointDecoder(32, reach="wide")
    with pytest.raises(ValueError, match="encoder.kp_decoder_reach"):
        EncoderConfig(**{**KP, "kp_decoder_reach": "wide"})
