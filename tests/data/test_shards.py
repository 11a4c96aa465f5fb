"""The pre-decoded frame cache: the same frames as the decoder, built once, keyed by what they depend on."""

import pickle

import numpy as np
import pytest

from jepa_plan.data import open_source
from jepa_plan.data.datamodule import ClipDataModule
from jepa_plan.data.shards import ShardCache
from jepa_plan.data.video import write_video
from jepa_plan.data.video_folder import VideoFolderSource


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for i, frames in enumerate((12, 20, 9)):
        video = rng.integers(0, 255, (frames, 24, 32, 3), dtype=np.uint8)
        write_video(root / f"clip_{i}.mp4", video, fps=10, crf=0)
    return root


def test_cache_serves_the_decoded_frames_and_builds_once(folder, tmp_path):
    source = VideoFolderSource(folder, 16)
    logs = []
    cache = ShardCache(source, tmp_path / "cache", log=logs.append)
    assert cache.names == source.names and cache.lengths == source.lengths and cache.image_size == 16
    for name in source.names:
        cached, decoded = cache.episode(name).frames, source.episode(name).frames
        assert isinstance(cached, np.memmap) and cached.shape == decoded.shape
        np.testing.assert_array_equal(np.asarray(cached[[0, 3, len(cached) - 1]]), decoded[[0, 3, len(decoded) - 1]])
    assert any("building the frame cache" in line for line in logs)

    again = []
    reopened = ShardCache(VideoFolderSource(folder, 16), tmp_path / "cache", log=again.append)
    assert again == [] and reopened.dir == cache.dir  # nothing rebuilt
    other = ShardCache(VideoFolderSource(folder, 8), tmp_path / "cache", log=lambda *_: None)
    assert other.dir != cache.dir and other.episode(source.names[0]).frames.shape[1:] == (8, 8, 3)

    clone = pickle.loads(pickle.dumps(reopened))  # DataLoader workers map their own shards
    assert clone._maps == {}
    np.testing.assert_array_equal(clone.episode(source.names[1]).frames[5], cache.episode(source.names[1]).frames[5])


def test_cache_splits_into_shards_and_trains_through_the_datamodule(folder, tmp_path, monkeypatch):
    monkeypatch.setattr("jepa_plan.data.shards.SHARD_BYTES", 16 * 16 * 3 * 25)  # 25 frames a shard
    source = open_source({"name": "video_folder", "path": str(folder), "cache": str(tmp_path / "c"),
                          "clip_len": 2, "frameskip": 2}, 16)
    # 12, 20 and 9 frames: an episode never straddles two shards, so each gets its own here
    assert isinstance(source, ShardCache) and len(list(source.dir.glob("shard_*.npy"))) == 3
    dm = ClipDataModule(source, clip_len=2, frameskip=2, batch_size=4, val_fraction=0.34)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (4, 2, 3, 16, 16) and "actions" not in batch and dm.action_dim == 0
