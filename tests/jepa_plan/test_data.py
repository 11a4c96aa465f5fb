"""Collection, the episode format's validation, EpisodeStore, ClipDataset and the DataModule."""

import json
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch

from jepa_plan.collect import collect_episodes
from jepa_plan.data.datamodule import ClipDataset, ClipDataModule
from jepa_plan.data.episodes import (
    DatasetError,
    EpisodeError,
    EpisodeStore,
    load_episode,
    read_manifest,
    write_episode,
)
from jepa_plan.envs.two_rooms import TwoRoomsConfig

EPISODES, STEPS, RES = 40, 12, 16


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small clean dataset, shared read-only; tests that damage it work on a copy."""
    root = tmp_path_factory.mktemp("episodes")
    collect_episodes(TwoRoomsConfig(resolution=RES), root, episodes=EPISODES, steps=STEPS, seed=0)
    return root


@pytest.fixture
def copy(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    return root


def quiet_store(root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EpisodeStore(root, **kwargs)


# ----------------------------------------------------------------------------- collection


def test_collect_writes_manifest_and_files(tmp_path, capsys):
    manifest = collect_episodes(TwoRoomsConfig(resolution=32), tmp_path, episodes=40, steps=30, seed=1)
    assert "door_crossing_fraction" in capsys.readouterr().out
    assert read_manifest(tmp_path) == json.loads(json.dumps(manifest))
    assert manifest["image_shape"] == [32, 32, 3] and manifest["env"]["resolution"] == 32
    assert len(manifest["episodes"]) == 40 and manifest["stats"]["frames"] == 1200
    episode = load_episode(tmp_path / "ep_000039")
    assert episode.frames.shape == (30, 32, 32, 3) and episode.frames.dtype == np.uint8
    assert episode.actions.shape == (30, 2) and episode.states.shape == (30, 2)
    assert isinstance(episode.frames, np.memmap)
    with pytest.raises(FileExistsError, match="manifest.json"):
        collect_episodes(TwoRoomsConfig(resolution=32), tmp_path, episodes=2, steps=5, seed=1)


def test_collect_crosses_the_door_often(tmp_path):
    manifest = collect_episodes(TwoRoomsConfig(resolution=8), tmp_path, episodes=200, steps=50, seed=0)
    stats = manifest["stats"]
    assert stats["door_crossing_fraction"] > 0.3
    assert 0.3 < stats["left_room_fraction"] < 0.7
    assert stats["blocked_step_fraction"] > 0  # collisions are in the data


def test_collect_is_deterministic(tmp_path):
    a = collect_episodes(TwoRoomsConfig(resolution=8), tmp_path / "a", episodes=5, steps=6, seed=3)
    b = collect_episodes(TwoRoomsConfig(resolution=8), tmp_path / "b", episodes=5, steps=6, seed=3)
    assert a["stats"]["door_crossing_fraction"] == b["stats"]["door_crossing_fraction"]
    np.testing.assert_array_equal(
        np.load(tmp_path / "a/ep_000004/actions.npy"), np.load(tmp_path / "b/ep_000004/actions.npy")
    )


# ----------------------------------------------------------------------------- episode errors


def test_missing_frames_file(copy):
    (copy / "ep_000003/frames.npy").unlink()
    with pytest.raises(EpisodeError, match=r"ep_000003/frames\.npy: missing file"):
        load_episode(copy / "ep_000003")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_npy(copy, damage):
    path = copy / "ep_000005/frames.npy"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not numpy" * 40, "empty": b""}[damage])
    with pytest.raises(EpisodeError, match=r"ep_000005/frames\.npy: corrupt or truncated"):
        load_episode(copy / "ep_000005")


def test_wrong_dtype(copy):
    np.save(copy / "ep_000001/actions.npy", np.zeros((STEPS, 2), np.float64))
    with pytest.raises(EpisodeError, match=r"ep_000001/actions\.npy: expected float32"):
        load_episode(copy / "ep_000001")


def test_count_mismatch(copy):
    actions = np.load(copy / "ep_000007/actions.npy")
    np.save(copy / "ep_000007/actions.npy", actions[:-1])
    with pytest.raises(EpisodeError, match=rf"ep_000007: frames has {STEPS} entries but actions has {STEPS - 1}"):
        load_episode(copy / "ep_000007")


def test_nan_actions(copy):
    actions = np.load(copy / "ep_000002/actions.npy")
    actions[4, 1] = np.nan
    np.save(copy / "ep_000002/actions.npy", actions)
    with pytest.raises(EpisodeError, match=r"ep_000002/actions\.npy: non-finite value .* at step 4"):
        load_episode(copy / "ep_000002")


def test_write_episode_rejects_unequal_counts(tmp_path):
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(EpisodeError, match="ep_x"):
        write_episode(tmp_path / "ep_x", frames, np.zeros((2, 2), np.float32), np.zeros((3, 2), np.float32))


def test_missing_manifest_says_how_to_create_data(tmp_path):
    with pytest.raises(DatasetError, match=r"manifest\.json.*python -m jepa_plan\.collect") as err:
        EpisodeStore(tmp_path)
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------- store


def test_store_opens_good_dataset(dataset):
    store = EpisodeStore(dataset)
    assert len(store) == EPISODES and store.skipped == []
    assert store.names[0] == "ep_000000" and store.lengths["ep_000000"] == STEPS
    assert store.episode("ep_000000").frames.shape == (STEPS, RES, RES, 3)
    # Pickling (DataLoader workers under spawn) must not carry the mapped arrays along.
    store.episode("ep_000001")
    clone = pickle.loads(pickle.dumps(store))
    frame_bytes = EPISODES * STEPS * RES * RES * 3
    assert len(pickle.dumps(store)) < frame_bytes / 4 and clone._cache == {}
    np.testing.assert_array_equal(clone.episode("ep_000001").actions, store.episode("ep_000001").actions)


def test_store_skips_one_bad_episode_with_a_warning(copy):
    (copy / "ep_000007/actions.npy").unlink()
    with pytest.warns(UserWarning, match=r"ep_000007.*missing file"):
        store = EpisodeStore(copy)
    assert len(store) == EPISODES - 1 and "ep_000007" not in store.names
    assert [name for name, _ in store.skipped] == ["ep_000007"]


def test_store_with_too_many_bad_episodes_raises(copy):
    for name in ("ep_000001", "ep_000002", "ep_000003"):
        (copy / name / "frames.npy").write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"(?s)3 of 40 episodes or files are bad.*ep_000001.*ep_000003"):
        quiet_store(copy)
    assert len(quiet_store(copy, max_bad_fraction=0.1)) == EPISODES - 3


def test_store_every_episode_bad_is_one_error_before_training(copy):
    for path in copy.glob("ep_*/frames.npy"):
        path.write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"every one of its 40 episodes or files is bad"):
        quiet_store(copy, max_bad_fraction=1.0)


def test_states_are_optional(copy):
    for path in copy.glob("ep_*/states.npy"):
        path.unlink()
    store = EpisodeStore(copy)
    assert len(store) == EPISODES and not store.has_states and store.has_actions
    assert store.episode("ep_000000").states is None
    item = ClipDataset(store, store.names, clip_len=2, frameskip=2)[0]
    assert set(item) == {"frames", "actions"}
    dm = ClipDataModule(str(copy), batch_size=4)
    dm.setup()
    assert dm.state_dim == 0 and dm.action_dim == 2


# ----------------------------------------------------------------------------- clips


def test_clip_shapes_and_frameskip_action_stacking(dataset):
    store = EpisodeStore(dataset)
    clips = ClipDataset(store, store.names[:3], clip_len=3, frameskip=2)
    assert len(clips) == 3 * (STEPS - 4)
    item = clips[STEPS - 4 + 5]  # second episode, start 5
    assert clips.locate(STEPS - 4 + 5) == ("ep_000001", 5)
    assert item["frames"].shape == (3, 3, RES, RES) and item["frames"].dtype == torch.uint8
    assert item["actions"].shape == (2, 4) and item["actions"].dtype == torch.float32
    assert item["states"].shape == (3, 2)

    raw = store.episode("ep_000001")
    np.testing.assert_array_equal(item["frames"].numpy(), raw.frames[[5, 7, 9]].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(item["states"].numpy(), raw.states[[5, 7, 9]])
    np.testing.assert_array_equal(item["actions"][0].numpy(), raw.actions[5:7].reshape(-1))
    np.testing.assert_array_equal(item["actions"][1].numpy(), raw.actions[7:9].reshape(-1))


def test_short_episodes_are_excluded_and_no_clip_errors(dataset):
    store = EpisodeStore(dataset)
    with pytest.raises(ValueError, match=r"clip_len=7 with frameskip=2 needs 13 frames"):
        ClipDataset(store, store.names, clip_len=7, frameskip=2)
    with pytest.raises(ValueError, match="clip_len=1"):
        ClipDataset(store, store.names, clip_len=1)


def test_short_episode_warning(tmp_path):
    collect_episodes(TwoRoomsConfig(resolution=8), tmp_path, episodes=3, steps=6, seed=0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    short = np.zeros((2, 2), np.float32)
    write_episode(tmp_path / "ep_short", np.zeros((2, 8, 8, 3), np.uint8), short, short)
    manifest["episodes"].append({"name": "ep_short", "length": 2})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    store = EpisodeStore(tmp_path)
    with pytest.warns(UserWarning, match=r"excluding 1 episodes.*ep_short"):
        clips = ClipDataset(store, store.names, clip_len=3, frameskip=1)
    assert "ep_short" not in clips.names and len(clips) == 3 * 4


class FailingStore:
    """An episode store whose named episodes raise when read, as a video with a bad block would."""

    def __init__(self, store, bad):
        self.store, self.bad = store, set(bad)
        self.root, self.names, self.lengths = store.root, store.names, store.lengths
        self.has_states = store.has_states

    def episode(self, name):
        if name in self.bad:
            raise EpisodeError(f"{name}/frames: decode failed")
        return self.store.episode(name)


def test_a_file_failing_mid_run_is_left_out_not_fatal(dataset):
    store = EpisodeStore(dataset)
    clips = ClipDataset(FailingStore(store, ["ep_000000", "ep_000001"]), store.names[:4], clip_len=2, frameskip=1)
    with pytest.warns(UserWarning) as record:
        item = clips[3]  # in ep_000000: served from the next readable episode, ep_000002
    assert [str(w.message) for w in record] == [f"leaving {n} out of this run: {n}/frames: decode failed"
                                                for n in ("ep_000000", "ep_000001")]
    np.testing.assert_array_equal(item["frames"][0].numpy(), store.episode("ep_000002").frames[0].transpose(2, 0, 1))
    assert set(clips.failed) == {"ep_000000", "ep_000001"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each failing episode warns once
        clips[4]
    everything = ClipDataset(FailingStore(store, store.names), store.names, clip_len=2, frameskip=1)
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="8 episodes in a row failed"):
        everything[0]


# ----------------------------------------------------------------------------- datamodule


def test_datamodule_splits_by_episode(dataset):
    dm = ClipDataModule(str(dataset), clip_len=2, frameskip=2, batch_size=8, val_fraction=0.2, seed=0)
    dm.setup("fit")
    assert len(dm.val_names) == 8 and len(dm.train_names) == 32
    assert not set(dm.train_names) & set(dm.val_names)
    assert sorted(dm.train_names + dm.val_names) == dm.store.names
    assert (dm.action_dim, dm.state_dim, dm.image_size, dm.skipped) == (2, 2, RES, [])

    again = ClipDataModule(str(dataset), val_fraction=0.2, seed=0)
    again.setup()
    assert again.val_names == dm.val_names
    other = ClipDataModule(str(dataset), val_fraction=0.2, seed=1)
    other.setup()
    assert other.val_names != dm.val_names

    train_actions = np.concatenate([dm.store.episode(n).actions for n in dm.train_names])
    np.testing.assert_allclose(dm.action_mean, train_actions.mean(0), atol=1e-6)
    assert dm.action_std.dtype == np.float32 and (dm.action_std > 0).all()

    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (8, 2, 3, RES, RES)
    assert batch["actions"].shape == (8, 1, 4)
    assert len(dm.train_dataloader()) == len(dm.train_set) // 8  # drop_last
    assert len(dm.val_dataloader().dataset) == 8 * (STEPS - 2)


def test_train_episodes_cuts_the_train_split_and_keeps_the_val_split(dataset):
    full = ClipDataModule(str(dataset), val_fraction=0.2, seed=0)
    full.setup()
    small = ClipDataModule(str(dataset), val_fraction=0.2, seed=0, train_episodes=5)
    small.setup()
    assert small.val_names == full.val_names  # the same held-out episodes, so the same dataset goals
    assert len(small.train_names) == 5 and set(small.train_names) < set(full.train_names)
    assert small.train_names != sorted(full.train_names)[:5]  # a seeded random subset, not the first five
    train_actions = np.concatenate([small.store.episode(n).actions for n in small.train_names])
    np.testing.assert_allclose(small.action_mean, train_actions.mean(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"data.train_episodes=33, but its train split holds 32 episodes"):
        ClipDataModule(str(dataset), val_fraction=0.2, train_episodes=33).setup()
    with pytest.raises(ValueError, match=r"train_episodes=0 must be at least 1"):
        ClipDataModule(str(dataset), train_episodes=0)


def test_datamodule_with_a_worker(dataset):
    dm = ClipDataModule(str(dataset), batch_size=4, num_workers=1)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch["frames"].shape == (4, 2, 3, RES, RES)


def test_datamodule_rejects_bad_args():
    with pytest.raises(ValueError, match="frameskip=0"):
        ClipDataModule("unused", frameskip=0)
    with pytest.raises(RuntimeError, match="setup"):
        ClipDataModule("unused").action_dim
