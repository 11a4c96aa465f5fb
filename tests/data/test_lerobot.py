"""The LeRobot source (jepa_plan.data.lerobot) on data sets exported here by jepa_plan.export.

A tiny episode data set (4 episodes x 12 frames at 32 px) is exported as v3.0 (AV1, one file),
v3.0 split over several files (H.264, so B-frames are remuxed too) and v2.1 (AV1). Frame t of
episode e is flat (red, green) = (RED(e), GREEN(t)), so a decoded frame says which row it was.
"""

import json
import pickle
import re
import shutil
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jepa_plan.data.episodes import FORMAT, episode_name, write_episode, write_manifest
from jepa_plan.data.datamodule import action_stats
from jepa_plan.data.lerobot import LeRobotSource
from jepa_plan.data.source import DatasetError
from jepa_plan.data.video import write_video
from jepa_plan.export import export

EPISODES, STEPS, RES = 4, 12, 32
ENV = {"name": "two_rooms", "resolution": RES}
CAMERA = "observation.image"


def red(e):
    return 40 + 50 * e


def green(t):
    return 8 + 16 * t


def source_arrays(e):
    """frames uint8 [T, R, R, 3], actions [T, 2], states [T, 3] of source episode e."""
    t = np.arange(STEPS)
    frames = np.zeros((STEPS, RES, RES, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = red(e), green(t)[:, None, None], 100
    actions = np.stack([e + t / 100, -t * 0.25], 1).astype(np.float32)
    states = np.stack([t * 0.5, np.full(STEPS, e), np.ones(STEPS)], 1).astype(np.float32)
    return frames, actions, states


def make_episodes(root):
    for e in range(EPISODES):
        write_episode(root / episode_name(e), *source_arrays(e))
    write_manifest(root, {"format": FORMAT, "env": ENV, "action_dim": 2, "state_dim": 3,
                          "image_shape": [RES, RES, 3], "action_low": [-1.0, -5.0], "action_high": [5.0, 1.0],
                          "episodes": [{"name": episode_name(e), "length": STEPS} for e in range(EPISODES)]})


def decoded_rows(frames):
    """[n] (episode, row) each decoded frame was written as; lossy coding moves colours a little."""
    means = np.asarray(frames, np.float64).mean(axis=(1, 2))
    e, t = np.round((means[:, 0] - 40) / 50).astype(int), np.round((means[:, 1] - 8) / 16).astype(int)
    assert np.all(np.abs(means[:, 0] - red(e)) < 6) and np.all(np.abs(means[:, 1] - green(t)) < 6), means
    return e, t


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    make_episodes(root / "src")
    log = []  # export's summary lines, kept out of the test output
    export(root / "src", root / "v30", log=log.append)
    export(root / "src", root / "v30_files", codec="libx264", file_mb=0.001, log=log.append)
    export(root / "src", root / "v21", version="v2.1", log=log.append)
    return root


def copy_of(exported, layout, tmp_path):
    shutil.copytree(exported / layout, tmp_path / layout)
    return tmp_path / layout


def edit_info(root, change):
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def quiet(root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LeRobotSource(root, **kwargs)


# ----------------------------------------------------------------------------- reading back


@pytest.mark.parametrize("layout", ["v30", "v30_files", "v21"])
def test_episodes_read_back_aligned(exported, layout):
    source = LeRobotSource(exported / layout, 32)
    assert source.names == [f"episode_{e:06d}" for e in range(EPISODES)]
    assert source.lengths == dict.fromkeys(source.names, STEPS) and source.skipped == []
    assert source.version == ("v2.1" if layout == "v21" else "v3.0") and source.fps == 10
    for e, name in enumerate(source.names):
        episode = source.episode(name)
        _, actions, states = source_arrays(e)
        assert episode.frames.shape == (STEPS, 32, 32, 3) and len(episode) == STEPS
        # The frame served at row t is the frame that was row t of the same source episode
        rows_e, rows_t = decoded_rows(episode.frames[:])
        np.testing.assert_array_equal(rows_e, e)
        np.testing.assert_array_equal(rows_t, np.arange(STEPS))
        np.testing.assert_array_equal(episode.actions, actions)
        np.testing.assert_array_equal(episode.states, states)
        assert episode.actions.dtype == np.float32 and episode.states.dtype == np.float32


def test_multifile_v30_spreads_episodes_over_files(exported):
    table = pq.read_table(exported / "v30_files/meta/episodes/chunk-000/file-000.parquet")
    assert len(set(table.column("data/file_index").to_pylist())) > 1
    assert len(set(table.column(f"videos/{CAMERA}/file_index").to_pylist())) > 1
    single = pq.read_table(exported / "v30/meta/episodes/chunk-000/file-000.parquet")
    np.testing.assert_allclose(single.column(f"videos/{CAMERA}/from_timestamp").to_numpy(), [0, 1.2, 2.4, 3.6])


def test_random_access_resize_and_pickle(exported):
    source = LeRobotSource(exported / "v30", 16)
    frames = source.episode("episode_000002").frames
    assert frames.shape == (STEPS, 16, 16, 3)
    e, t = decoded_rows(frames[np.array([7, 2, 11])])
    assert e.tolist() == [2, 2, 2] and t.tolist() == [7, 2, 11]
    assert decoded_rows(frames[3][None])[1].tolist() == [3]
    assert decoded_rows(frames[4:6])[1].tolist() == [4, 5]
    clone = pickle.loads(pickle.dumps(source))  # what a DataLoader worker gets
    assert decoded_rows(pickle.loads(pickle.dumps(frames))[[0]])[1].tolist() == [0]
    np.testing.assert_array_equal(clone.episode("episode_000001").actions, source_arrays(1)[1])


def test_metadata_summary_and_action_stats(exported):
    source = LeRobotSource(exported / "v30_files", 32)
    assert source.env == ENV and source.has_actions and source.has_states
    assert source.action_low == [-1.0, -5.0] and source.action_high == [5.0, 1.0]  # the env box, recorded by export
    assert source.camera == CAMERA and source.action_dim == 2 and source.state_dim == 3
    summary = source.summary()
    assert "4 of 4 episodes used, 48 frames at 10 fps" in summary and CAMERA in summary and "action dim 2" in summary
    names = source.names[1:3]
    mean, std = action_stats(source, names)  # the DataModule's, streamed episode by episode
    actions = np.concatenate([source_arrays(e)[1] for e in (1, 2)]).astype(np.float64)
    np.testing.assert_allclose(mean, actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, actions.std(0), rtol=1e-5)
    assert mean.dtype == np.float32


@pytest.mark.parametrize("layout", ["v30", "v21"])
def test_action_box_from_the_stats_without_our_record(exported, tmp_path, layout):
    root = copy_of(exported, layout, tmp_path)
    edit_info(root, lambda info: info.pop("jepa_plan"))
    source = LeRobotSource(root, 32)
    actions = np.concatenate([source_arrays(e)[1] for e in range(EPISODES)])
    np.testing.assert_allclose(source.action_low, actions.min(0), rtol=1e-6)  # v2.1: merged from episodes_stats
    np.testing.assert_allclose(source.action_high, actions.max(0), rtol=1e-6)
    assert source.env is None


# ----------------------------------------------------------------------------- keys and versions


def test_camera_key_must_exist_and_be_unambiguous(exported, tmp_path):
    with pytest.raises(DatasetError, match=r"no video key 'observation.images.top'.*one of: observation.image"):
        LeRobotSource(exported / "v30", 32, camera="observation.images.top")
    root = copy_of(exported, "v30", tmp_path)
    edit_info(root, lambda info: info["features"].update({"observation.images.wrist": info["features"][CAMERA]}))
    with pytest.raises(DatasetError, match="several cameras.*observation.image, observation.images.wrist"):
        LeRobotSource(root, 32)
    assert LeRobotSource(root, 32, camera=CAMERA).camera == CAMERA


def test_state_key_default_is_optional_explicit_is_required(exported, tmp_path):
    with pytest.raises(DatasetError, match=r"no feature 'observation.joints'.*action, observation.state"):
        LeRobotSource(exported / "v30", 32, state_key="observation.joints")
    with pytest.raises(DatasetError, match=r"no feature 'act'.*action_key"):
        LeRobotSource(exported / "v30", 32, action_key="act")
    root = copy_of(exported, "v30", tmp_path)
    edit_info(root, lambda info: info["features"].pop("observation.state"))
    with pytest.warns(UserWarning, match="no 'observation.state' feature, so episodes have no states"):
        source = LeRobotSource(root, 32)
    assert not source.has_states and source.episode("episode_000000").states is None
    assert "note:" in source.summary()
    off = LeRobotSource(exported / "v30", 32, state_key=None, action_key=None)
    assert off.notes == [] and off.episode("episode_000000").actions is None and not off.has_actions


def test_unknown_version_and_missing_info(exported, tmp_path):
    root = copy_of(exported, "v21", tmp_path)
    edit_info(root, lambda info: info.update(codebase_version="v2.0"))
    with pytest.raises(DatasetError, match=r"codebase_version 'v2.0' is not supported.*v3.0, v2.1"):
        LeRobotSource(root, 32)
    with pytest.raises(DatasetError, match="meta/info.json: missing"):
        LeRobotSource(tmp_path / "nowhere", 32)


# ----------------------------------------------------------------------------- bad files


def nan_action(root):
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = np.stack(table.column("action").to_pylist()).astype(np.float32)
    actions[STEPS + 3, 1] = np.nan  # episode 1, row 3, column 1
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), 2)
    pq.write_table(table.set_column(table.column_names.index("action"), "action", column), path)


def short_span(root):
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    name = f"videos/{CAMERA}/to_timestamp"
    stops = table.column(name).to_numpy().copy()
    stops[2] -= 0.5  # episode 2's video span now covers 7 frames of its 12 rows
    pq.write_table(table.set_column(table.column_names.index(name), name, pa.array(stops)), path)


def short_video(root):
    write_video(root / f"videos/chunk-000/{CAMERA}/episode_000002.mp4", source_arrays(2)[0][:8], 10, codec="libsvtav1")


def corrupt_video(root):
    (root / f"videos/chunk-000/{CAMERA}/episode_000000.mp4").write_bytes(np.random.default_rng(0).bytes(3000))


DAMAGE = {  # name: (layout, damage, the episodes left out, what the reason says)
    "nan_action": ("v30", nan_action, ["episode_000001"], r"non-finite action nan at row 3 .*column 1"),
    "span_disagrees": ("v30", short_span, ["episode_000002"], "12 rows .* span 7 frames"),
    "video_disagrees": ("v21", short_video, ["episode_000002"], "12 rows, but .*episode_000002.mp4 holds 8 frames"),
    "missing_video": ("v21", lambda r: (r / f"videos/chunk-000/{CAMERA}/episode_000003.mp4").unlink(),
                      ["episode_000003"], "missing video file"),
    "corrupt_video": ("v21", corrupt_video, ["episode_000000"], "corrupt video"),
    "missing_parquet": ("v30_files", lambda r: (r / "data/chunk-000/file-001.parquet").unlink(),
                        None, "file-001.parquet: missing parquet file"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_bad_episodes_are_skipped_named_and_counted(exported, tmp_path, kind):
    layout, damage, left_out, reason = DAMAGE[kind]
    root = copy_of(exported, layout, tmp_path)
    damage(root)
    with pytest.warns(UserWarning, match="skipping episode_"):
        source = LeRobotSource(root, 32, max_bad_fraction=0.5)
    skipped = [name for name, _ in source.skipped]
    if left_out is None:  # every episode of the missing file
        table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
        left_out = [f"episode_{e:06d}" for e, f in zip(table.column("episode_index").to_pylist(),
                                                         table.column("data/file_index").to_pylist()) if f == 1]
    assert skipped == left_out and len(source.skipped) < EPISODES
    assert all(re.search(reason, text) for _, text in source.skipped), source.skipped
    assert source.names == sorted(set(f"episode_{e:06d}" for e in range(EPISODES)) - set(left_out))
    assert "skipped" in source.summary() and left_out[0] in source.summary()
    for name in source.names:  # what is left is served, aligned
        assert decoded_rows(source.episode(name).frames[[0, STEPS - 1]])[1].tolist() == [0, STEPS - 1]


def test_too_many_bad_or_all_bad_stops_before_training(exported, tmp_path):
    root = copy_of(exported, "v21", tmp_path)
    corrupt_video(root)
    with pytest.raises(DatasetError, match=r"(?s)1 of 4 .* are bad .*max_bad_fraction=0.05.*episode_000000"):
        quiet(root)
    for video in (root / "videos").rglob("*.mp4"):
        video.unlink()
    with pytest.raises(DatasetError, match="every one of its 4 episodes or files is bad"):
        quiet(root, max_bad_fraction=0.5)
