import pytest
import torch

from encoders import VideoViT
from encoders.augment import CodecNoise
from test_world_model import tiny_world_model
from world_models import WorldModel
from world_models.latents import latent_basis, perturbation_shifts


def _signal_and_nuisance(n=4000, seed=0):
    """Dims 0-1 carry a wide signal that noise barely moves; dims 2-3 a narrow one that the
    noise moves as much as it varies (a small encoder's background tokens)."""
    g = torch.Generator().manual_seed(seed)
    latents = torch.cat([torch.randn(n, 2, generator=g) * 3.0, torch.randn(n, 2, generator=g) * 0.01], dim=1) + 5.0
    shifts = torch.cat([torch.randn(n, 2, generator=g) * 0.03, torch.randn(n, 2, generator=g) * 0.01], dim=1)
    return latents, shifts


def test_ratio_zero_is_per_dimension_standardisation():
    latents, shifts = _signal_and_nuisance()
    mean, proj, _ = latent_basis(latents, shifts, 0.0)
    assert torch.allclose((latents - mean) @ proj, (latents - latents.mean(0)) / latents.std(0), atol=1e-4)


def test_basis_keeps_the_directions_noise_does_not_move():
    latents, shifts = _signal_and_nuisance()
    mean, proj, ratios = latent_basis(latents, shifts, nuisance_ratio=10.0)
    assert proj.shape == (4, 2)  # the two signal dims; the others are as wide as their noise
    assert (ratios >= 10).all()
    z = (latents - mean) @ proj
    assert torch.allclose(torch.cov(z.T), torch.eye(2), atol=0.05)  # unit variance, decorrelated
    # The kept directions lie in the span of dims 0-1, and noise moves them by <= 1/10 of their variance.
    narrow = (latents[:, 2:] - mean[2:]) @ proj[2:]
    assert narrow.var(0).max() < 0.1  # the narrow dims contribute little of the unit variance
    assert (shifts @ proj).pow(2).mean(0).max() < 0.1
    # Per-dimension standardisation, by contrast, lets the noise move dims 2-3 by their whole spread.
    _, flat, _ = latent_basis(latents, shifts, 0.0)
    assert (shifts @ flat).pow(2).mean(0).max() > 0.5


def test_a_systematic_shift_counts_as_nuisance():
    latents, _ = _signal_and_nuisance()
    shifts = torch.randn(500, 4, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.0, 1e-3, 0.01, 0.01])
    shifts[:, 0] = 3.0  # every perturbation moves dim 0 the same way by a signal's width
    _, proj, _ = latent_basis(latents, shifts, nuisance_ratio=10.0)
    assert proj.shape[1] == 1 and proj[0].abs().item() < 1e-3 * proj[1].abs().item()


def test_no_direction_left_is_a_clear_error():
    latents, _ = _signal_and_nuisance()
    with pytest.raises(ValueError, match="world_model.nuisance_ratio"):
        latent_basis(latents, torch.randn(500, 4) * 10, nuisance_ratio=10.0)


def _state_in_a_minor_axis(n=4000, seed=0):
    """Three dims that all follow x; y moves dim 1 by a tenth of that, n moves dim 2 by a thousandth
    (a keypoint latent: every point of a block follows its position, its angle moves them a little)."""
    g = torch.Generator().manual_seed(seed)
    x, y, noise = (torch.randn(n, generator=g) for _ in range(3))
    return torch.stack([x, x + 0.1 * y, x + 1e-3 * noise], dim=1), y


def test_whitening_lifts_a_state_held_in_a_minor_axis():
    latents, y = _state_in_a_minor_axis()
    mean, flat, _ = latent_basis(latents, None, 0.0)
    _, white, _ = latent_basis(latents, None, 0.0, whiten_floor=1e-4)
    variance = torch.cov(((latents - mean) @ white).T).diagonal()
    assert variance[:2].sub(1).abs().max() < 0.05  # x's axis and y's axis both at about unit variance
    assert variance[2] < 0.05  # the axis below the floor stays small instead of being blown up
    # How far the latent moves when y alone changes by one, against x alone: a seventeenth as far
    # standardised, about as far once whitened.
    y_step, x_step = torch.tensor([[0.0, 0.1, 0.0]]), torch.ones(1, 3)
    assert (y_step @ flat).norm() / (x_step @ flat).norm() < 0.1
    assert (y_step @ white).norm() / (x_step @ white).norm() > 0.8


def test_whitening_composes_with_the_nuisance_span():
    latents, shifts = _signal_and_nuisance()
    mean, proj, ratios = latent_basis(latents, shifts, nuisance_ratio=10.0, whiten_floor=1e-3)
    assert proj.shape == (4, 2) and (ratios >= 10).all()
    assert torch.allclose(torch.cov(((latents - mean) @ proj).T), torch.eye(2), atol=0.05)


def test_negative_whiten_floor_is_a_clear_error():
    from world_models.config import WorldModelConfig
    with pytest.raises(ValueError, match="world_model.whiten_floor"):
        WorldModelConfig(whiten_floor=-1.0)


class _Frames:
    def __init__(self, frames):
        self.frames = frames


def test_perturbation_shifts_are_seeded_and_spread_over_episodes():
    encoder = VideoViT(img_size=16, patch_size=8, dim=16, depth=1, heads=2, mlp_ratio=2.0)
    g = torch.Generator().manual_seed(0)
    episodes = [_Frames(torch.randint(0, 256, (9, 16, 16, 3), dtype=torch.uint8, generator=g).numpy()) for _ in range(3)]
    a = perturbation_shifts(encoder, episodes, frames=6, noise=CodecNoise(), seed=1)
    b = perturbation_shifts(encoder, episodes, frames=6, noise=CodecNoise(), seed=1)
    assert a.shape == (6, 16) and torch.equal(a, b)
    assert a.abs().max() > 0
    zero = CodecNoise(noise=0.0, blur=0.0, chroma=0.0, shift=0.0)
    assert perturbation_shifts(encoder, episodes, frames=6, noise=zero).abs().max() == 0


def test_checkpoint_with_a_projection_and_an_old_one_with_per_dim_std(tmp_path):
    wm = tiny_world_model()
    wm.latent_proj = torch.randn(16, 5)  # a basis of 5 directions
    wm.predictor = type(wm.predictor)(5, wm.action_dim, hidden=16, layers=2, action_embed=8)
    wm.meta = {**wm.meta, "predictor": {**wm.meta["predictor"]}}
    path = tmp_path / "wm.pt"
    wm.save(path)
    loaded = WorldModel.from_checkpoint(path)
    frames = torch.randint(0, 255, (2, 3, 3, 16, 16), dtype=torch.uint8)
    assert loaded.latent_shape == (5,)
    assert torch.allclose(loaded.encode(frames), wm.encode(frames))

    # A checkpoint written before the latent basis stores latent_std: it loads as diag(1 / std).
    old = tiny_world_model()
    std = 1 / torch.diagonal(old.latent_proj)
    old.save(path)
    state = torch.load(path, weights_only=True)
    state["buffers"].pop("latent_proj")
    state["buffers"]["latent_std"] = std
    torch.save(state, path)
    reloaded = WorldModel.from_checkpoint(path)
    expected = (old.encoder.embed_frames(frames) - old.latent_mean) / std
    assert torch.allclose(reloaded.encode(frames), expected, atol=1e-5)
