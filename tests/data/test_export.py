"""jepa_plan.export: plain videos and the LeRobot v3.0 / v2.1 layouts, file by file.

Reading the exports back through the LeRobot source is tested in test_lerobot.py.
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jepa_plan.data.episodes import FORMAT, episode_name, write_episode, write_manifest
from jepa_plan.data.video import probe
from jepa_plan.export import export, main

EPISODES, STEPS, RES = 3, 6, 16
ENV = {"name": "two_rooms", "resolution": RES}
CAMERA = "observation.image"


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A tiny episode data set: 3 episodes x 6 frames at 16 px, actions [6, 2], states [6, 3]."""
    root = tmp_path_factory.mktemp("export") / "src"
    rng = np.random.default_rng(0)
    for e in range(EPISODES):
        write_episode(root / episode_name(e), rng.integers(0, 256, (STEPS, RES, RES, 3), dtype=np.uint8),
                      rng.normal(size=(STEPS, 2)), rng.normal(size=(STEPS, 3)))
    write_manifest(root, {"format": FORMAT, "env": ENV, "image_shape": [RES, RES, 3], "action_low": [-1, -1],
                          "action_high": [1, 1], "episodes": [{"name": episode_name(e)} for e in range(EPISODES)]})
    return root


@pytest.fixture(scope="module")
def v30(src, tmp_path_factory):
    out = tmp_path_factory.mktemp("v30") / "out"
    export(src, out, log=lambda line: None)
    return out


def test_mp4_format_writes_one_video_per_episode_and_nothing_else(src, tmp_path, capsys):
    main([str(src), str(tmp_path / "mp4"), "--format", "mp4"])
    files = sorted(p.name for p in (tmp_path / "mp4").rglob("*"))
    assert files == [f"{episode_name(e)}.mp4" for e in range(EPISODES)]
    info = probe(tmp_path / "mp4/ep_000001.mp4")
    assert (info.frames, info.width, info.fps, info.codec) == (STEPS, RES, 10, "h264")
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("exported 3 episodes, 18 frames") and "bytes in" in line


def test_v30_info_json(v30):
    info = json.loads((v30 / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] is None
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 18, 1)
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1000, 100, 500)
    assert info["fps"] == 10 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    camera = info["features"][CAMERA]
    assert camera["dtype"] == "video" and camera["shape"] == [RES, RES, 3]
    assert camera["names"] == ["height", "width", "channels"]
    assert camera["info"]["video.codec"] == "av1" and camera["info"]["video.pix_fmt"] == "yuv420p"
    assert info["features"]["action"]["shape"] == [2] and info["features"]["observation.state"]["shape"] == [3]
    assert info["features"]["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert info["features"][key]["dtype"] == "int64"
    assert info["jepa_plan"]["env"] == ENV and info["jepa_plan"]["action_low"] == [-1, -1]


def test_v30_parquet_files(v30):
    data = pq.read_table(v30 / "data/chunk-000/file-000.parquet")
    schema = data.schema
    assert schema.field("timestamp").type == pa.float32()
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(key).type == pa.int64()
    assert schema.field("action").type == pa.list_(pa.float32(), 2)
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert data.num_rows == 18 and data.column("index").to_pylist() == list(range(18))
    np.testing.assert_allclose(data.column("timestamp").to_numpy()[:STEPS], np.arange(STEPS) / 10, rtol=1e-6)
    episodes = pq.read_table(v30 / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [row["episode_index"] for row in episodes] == [0, 1, 2]
    assert [(row["dataset_from_index"], row["dataset_to_index"]) for row in episodes] == [(0, 6), (6, 12), (12, 18)]
    assert [row[f"videos/{CAMERA}/from_timestamp"] for row in episodes] == pytest.approx([0, 0.6, 1.2])
    assert [row[f"videos/{CAMERA}/to_timestamp"] for row in episodes] == pytest.approx([0.6, 1.2, 1.8])
    assert episodes[0]["tasks"] == ["two_rooms"] and episodes[0]["length"] == STEPS
    assert len(episodes[0][f"stats/{CAMERA}/mean"]) == 3  # per channel, [3, 1, 1]
    tasks = pq.read_table(v30 / "meta/tasks.parquet")
    assert tasks.to_pylist() == [{"task_index": 0, "task": "two_rooms"}]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    video = probe(v30 / f"videos/{CAMERA}/chunk-000/file-000.mp4")
    assert video.frames == 18 and video.codec == "av1"


def test_v30_stats_json(v30):
    stats = json.loads((v30 / "meta/stats.json").read_text())
    actions = pq.read_table(v30 / "data/chunk-000/file-000.parquet").column("action").to_pylist()
    np.testing.assert_allclose(stats["action"]["mean"], np.mean(actions, 0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["min"], np.min(actions, 0), rtol=1e-6)
    assert stats["action"]["count"] == [18] and stats[CAMERA]["count"] == [18]
    assert np.shape(stats[CAMERA]["mean"]) == (3, 1, 1) and 0 <= np.min(stats[CAMERA]["min"]) <= 1
    assert set(stats) >= {"action", "observation.state", CAMERA, "timestamp", "frame_index", "index"}


def test_v30_rolls_over_to_new_files_past_file_mb(src, tmp_path):
    export(src, tmp_path / "out", file_mb=0.0005, log=lambda line: None)  # 524 bytes: about an episode a file
    data = sorted(p.name for p in (tmp_path / "out/data/chunk-000").iterdir())
    videos = sorted(p.name for p in (tmp_path / f"out/videos/{CAMERA}/chunk-000").iterdir())
    assert data[:2] == ["file-000.parquet", "file-001.parquet"] and videos[:2] == ["file-000.mp4", "file-001.mp4"]
    episodes = pq.read_table(tmp_path / "out/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for row in episodes:  # each episode's rows lie in the file its row names
        table = pq.read_table(tmp_path / f"out/data/chunk-000/file-{row['data/file_index']:03d}.parquet")
        assert row["episode_index"] in table.column("episode_index").to_pylist()
    assert not list((tmp_path / "out").rglob(".episode.mp4"))  # the per-episode scratch video is gone


def test_v21_layout(src, tmp_path):
    export(src, tmp_path / "out", version="v2.1", codec="libx264", episodes=2, log=lambda line: None)
    out = tmp_path / "out"
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_episodes"] == 2 and info["total_videos"] == 2
    assert info["total_chunks"] == 1 and info["features"][CAMERA]["info"]["video.codec"] == "h264"
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["video_path"] == "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    assert pq.read_table(out / "data/chunk-000/episode_000001.parquet").column("episode_index").to_pylist() == [1] * 6
    assert probe(out / f"videos/chunk-000/{CAMERA}/episode_000001.mp4").frames == STEPS
    episodes = [json.loads(line) for line in (out / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes == [{"episode_index": e, "tasks": ["two_rooms"], "length": STEPS} for e in range(2)]
    assert json.loads((out / "meta/tasks.jsonl").read_text()) == {"task_index": 0, "task": "two_rooms"}
    stats = [json.loads(line) for line in (out / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert [s["episode_index"] for s in stats] == [0, 1] and stats[0]["stats"]["action"]["count"] == [STEPS]
    assert not (out / "meta/stats.json").exists() and not (out / "meta/episodes").exists()


@pytest.mark.parametrize("argv, says", [
    (["--format", "avi"], "invalid choice: 'avi'"),
    (["--format", "lerobot", "--episodes", "0"], "--episodes 0 must be at least 1"),
    (["--format", "lerobot", "--camera", "a/b"], "without '/'"),
    (["--format", "mp4", "--version", "v2.1"], "apply to --format lerobot only"),
    (["--format", "lerobot", "--version", "v2.1", "--file-mb", "1"], "--file-mb applies to v3.0"),
])
def test_bad_arguments_give_one_line(src, tmp_path, capsys, argv, says):
    with pytest.raises(SystemExit) as stop:
        main([str(src), str(tmp_path / "out")] + argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and says in err


def test_bad_source_or_target_give_one_line(src, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full/file").write_text("x")
    for argv, says in ([str(src), str(tmp_path / "full")], "exists and is not empty"), \
                      ([str(tmp_path), str(tmp_path / "o")], "no manifest.json"):
        with pytest.raises(SystemExit) as stop:
            main(argv + ["--format", "lerobot"])
        assert says in str(stop.value.code) and "\n" not in str(stop.value.code)


def test_fps_from_the_manifest_wins_and_a_conflict_is_refused(src, tmp_path):
    manifest = json.loads((src / "manifest.json").read_text())
    recorded = tmp_path / "src"
    for e in range(EPISODES):
        (recorded / episode_name(e)).mkdir(parents=True)
        for part in ("frames", "actions", "states"):
            (recorded / episode_name(e) / f"{part}.npy").symlink_to(src / episode_name(e) / f"{part}.npy")
    write_manifest(recorded, {**manifest, "fps": 5})
    export(recorded, tmp_path / "out", format="mp4", log=lambda line: None)
    assert probe(tmp_path / "out/ep_000000.mp4").fps == 5
    with pytest.raises(ValueError, match="--fps 20 disagrees with the 5 fps"):
        export(recorded, tmp_path / "out2", format="mp4", fps=20, log=lambda line: None)
