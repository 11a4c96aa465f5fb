from types import SimpleNamespace

import numpy as np
import pytest
import torch

from world_models.latents import encode_episodes


class MeanColour(torch.nn.Module):
    """A stand-in encoder: each frame's latent is its mean RGB and the frame's first pixel."""

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [B, T, 3, H, W]
        x = frames.float()
        return torch.cat([x.mean(dim=(-2, -1)), x[..., 0, 0]], dim=-1)  # [B, T, 6]


def _episode(seed: int, length: int, states: bool):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(frames=rng.integers(0, 256, (length, 4, 4, 3), dtype=np.uint8),
                           actions=rng.normal(size=(length, 2)),
                           states=rng.normal(size=(length, 3)).astype(np.float32) if states else None)


def test_encode_episodes_stacks_every_frame_in_order_across_buffer_growth():
    # 1,500 frames in chunks of 64: the row buffers start at 1,024 and must grow once.
    episodes = [_episode(i, length, True) for i, length in enumerate([700, 33, 767])]
    out = encode_episodes(MeanColour(), iter(episodes), batch_frames=64)
    frames = torch.from_numpy(np.concatenate([e.frames for e in episodes])).permute(0, 3, 1, 2)[:, None]
    assert torch.allclose(out["latents"], MeanColour().embed_frames(frames)[:, 0])
    assert torch.equal(out["actions"], torch.from_numpy(np.concatenate([e.actions for e in episodes])).float())
    assert torch.equal(out["states"], torch.from_numpy(np.concatenate([e.states for e in episodes])))
    assert out["lengths"].tolist() == [700, 33, 767]
    assert out["latents"].untyped_storage().nbytes() == 1500 * 6 * 4  # trimmed, not the doubled buffer


def test_encode_episodes_without_states_or_episodes():
    out = encode_episodes(MeanColour(), [_episode(0, 5, False)])
    assert out["states"].shape == (5, 0) and out["latents"].shape == (5, 6)
    with pytest.raises(ValueError, match="no episodes to encode"):
        encode_episodes(MeanColour(), [])
