import pytest
import torch

from encoders import ENCODERS, MaskedPredictor, VideoViT, frames_to_input, sincos_pos_embed_3d


def _frames(b, t, size=32):
    return torch.randint(0, 256, (b, t, 3, size, size), dtype=torch.uint8)


def _tiny(**kw):
    return VideoViT(img_size=32, patch_size=8, dim=32, depth=1, heads=2, **kw)


def test_frames_to_input_range_and_layout():
    frames = _frames(2, 3)
    x = frames_to_input(frames)
    assert x.shape == (2, 3, 3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[:, :, 1], frames[:, 1].float() / 127.5 - 1)
    with pytest.raises(TypeError):
        frames_to_input(frames.float())


@pytest.mark.parametrize("tubelet", [1, 2])
def test_forward_shapes(tubelet):
    vit = _tiny(tubelet_size=tubelet)
    grid = vit.grid(4)
    assert grid == (4 // tubelet, 4, 4)
    n = grid[0] * grid[1] * grid[2]
    frames = _frames(2, 4)
    assert vit(frames).shape == (2, n, 32)
    keep = torch.stack([torch.arange(0, n - 1, 3), torch.arange(1, n, 3)])
    assert vit(frames, keep=keep).shape == (2, keep.shape[1], 32)


def test_keep_selects_tokens_before_blocks():
    # With no blocks, keep must equal gathering the full output's tokens.
    vit = _tiny()
    vit.blocks = torch.nn.ModuleList()
    frames = _frames(2, 2)
    keep = torch.tensor([[0, 5, 17], [3, 4, 31]])
    full = vit(frames)
    assert torch.allclose(vit(frames, keep=keep), torch.gather(full, 1, keep[..., None].expand(-1, -1, 32)))


@pytest.mark.parametrize("tubelet", [1, 2])
def test_embed_frames_encodes_each_frame_alone(tubelet):
    vit = _tiny(tubelet_size=tubelet).eval()
    frames = _frames(2, 3)
    z = vit.embed_frames(frames)
    assert z.shape == (2, 3, 32)
    alone = vit.embed_frames(frames[:, 1:2])
    assert torch.allclose(z[:, 1:2], alone, atol=1e-5)


def test_clear_errors():
    vit = _tiny(tubelet_size=2)
    with pytest.raises(ValueError, match="tubelet"):
        vit.grid(3)
    with pytest.raises(ValueError, match="32x32"):
        vit(_frames(1, 2, size=16))
    with pytest.raises(ValueError, match="divisible"):
        VideoViT(dim=30, heads=4)


def test_pos_embed_distinct_positions():
    pos = sincos_pos_embed_3d((2, 4, 4), 32)
    assert pos.shape == (32, 32)
    assert torch.cdist(pos, pos).add(torch.eye(32)).min() > 0  # no two positions collide


def test_predictor_shapes():
    pred = MaskedPredictor(dim=32, pred_dim=16, depth=1, heads=2)
    ctx_idx = torch.tensor([[0, 2, 4], [1, 3, 5]])
    tgt_idx = torch.tensor([[1, 3, 5, 7], [0, 2, 4, 6]])
    out = pred(torch.randn(2, 3, 32), ctx_idx, tgt_idx, (2, 2, 2))
    assert out.shape == (2, 4, 32)


def test_registry():
    assert ENCODERS["vit"][0] is VideoViT


def test_projector_maps_the_pooled_token_mean_and_spreads_it_over_the_batch():
    torch.manual_seed(0)
    vit = _tiny(proj_hidden=64)
    assert _tiny().projector is None  # off by default
    # Frames that differ little (a white scene with one moving dot): the pooled token mean barely
    # varies, and the projector's BatchNorm takes that scale out.
    frames = torch.full((16, 1, 3, 32, 32), 255, dtype=torch.uint8)
    for i in range(16):
        frames[i, 0, :, i:i + 2, i:i + 2] = 0
    pooled = vit.forward(frames).mean(dim=1)
    assert pooled.std(dim=0).mean() < 0.05
    z = vit.embed_frames(frames)[:, 0]
    assert torch.allclose(z, vit.projector(pooled), atol=1e-6)
    # Once the batch variance clears BatchNorm's eps, the pooled spread's scale drops out.
    centre = pooled.mean(dim=0)
    stretched = [vit.projector(centre + k * (pooled - centre)) for k in (100, 1000)]
    assert torch.allclose(*stretched, atol=1e-3 * stretched[0].abs().max().item())
    assert stretched[0].std(dim=0).mean() > 2 * z.std(dim=0).mean()  # below eps, the spread shrinks
    # In eval mode the BatchNorm uses its running statistics: each frame's latent stands alone.
    vit.eval()
    assert torch.allclose(vit.embed_frames(frames[:4]), vit.embed_frames(frames)[:4], atol=1e-5)
