"""Video decoding (jepa_plan.data.video) and the video-folder source, on tiny files written here.

Each test video's frame k is grey(k) on average, so a decoded frame says which one it is.
"""

import pickle
import warnings

import numpy as np
import pytest

from jepa_plan.data.source import DatasetError
from jepa_plan.data.video import VideoError, VideoFrames, probe, read_frames, resize_frames, write_video
from jepa_plan.data.video_folder import VideoFolderSource


def grey(k):
    return 6 * k + 8


def indexed_frames(n, height, width):
    """uint8 [n, H, W, 3]: frame k at grey(k), with a little noise so that the data, not the
    header, makes up most of a file (a file cut in half then holds some of its frames)."""
    noise = np.random.default_rng(n).integers(-3, 4, (n, height, width, 3))
    return (np.array([grey(k) for k in range(n)])[:, None, None, None] + noise).astype(np.uint8)


def frame_index(frames):
    """[n] the k each decoded frame was written as (lossy coding moves its mean grey a little)."""
    means = np.asarray(frames, np.float64).reshape(len(frames), -1).mean(axis=1)
    index = np.round((means - 8) / 6).astype(int)
    assert np.all(np.abs(means - grey(index)) < 2.5), f"frames are not index greys: {means}"
    return index


# name: (extension, codec, frames, height, width, fps, gop, crf)
GOOD = {
    "h264": (".mp4", "libx264", 30, 48, 64, 10, 5, 0),  # lossless: the truncated file is cut mid-data
    "av1": (".mp4", "libsvtav1", 20, 32, 32, 10, None, None),
    "vp9": (".webm", "libvpx-vp9", 20, 32, 32, 10, None, None),
    "other": (".mkv", "libx264", 40, 32, 48, 20, 8, None),  # another size and frame rate
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """{name: path} of the good videos and of the bad ones (empty, corrupt, truncated, short, unknown codec)."""
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    for name, (ext, codec, n, height, width, fps, gop, crf) in GOOD.items():
        paths[name] = root / f"{name}{ext}"
        write_video(paths[name], indexed_frames(n, height, width), fps, codec=codec, gop=gop, crf=crf)
    paths["short"] = root / "short.mp4"
    write_video(paths["short"], indexed_frames(1, 32, 32), 10)
    paths["empty"] = root / "empty.mp4"
    paths["empty"].write_bytes(b"")
    paths["corrupt"] = root / "corrupt.mp4"
    paths["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    data = paths["h264"].read_bytes()
    paths["truncated"] = root / "truncated.mp4"
    paths["truncated"].write_bytes(data[: len(data) // 2])
    # An mp4 whose sample entry names a codec no decoder knows
    paths["unknown"] = root / "unknown.mp4"
    paths["unknown"].write_bytes(data.replace(b"avc1", b"zzz1"))
    return paths


def folder_of(tmp_path, videos, names):
    """A folder of copies of the named videos: every second one in a subfolder, the third with an
    upper-case extension."""
    for i, name in enumerate(names):
        target = tmp_path / ("sub" if i % 2 else "") / f"{name}{videos[name].suffix}"
        target = target.with_suffix(target.suffix.upper()) if i == 2 else target
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(videos[name].read_bytes())
    return tmp_path


# Probe


@pytest.mark.parametrize("name", list(GOOD))
def test_probe_reads_size_rate_and_length(videos, name):
    _, _, n, height, width, fps, _, _ = GOOD[name]
    info = probe(videos[name])
    assert (info.width, info.height, info.frames) == (width, height, n)
    assert info.fps == pytest.approx(fps)
    assert info.duration == pytest.approx(n / fps)
    assert info.codec == {"h264": "h264", "av1": "av1", "vp9": "vp9", "other": "h264"}[name]
    assert abs(info.start) < 0.5 / fps


@pytest.mark.parametrize("name, reason", [
    ("empty", "empty file"),
    ("corrupt", "not a readable video container"),
    ("truncated", "truncated"),
    ("unknown", "unknown codec"),
])
def test_probe_names_the_file_and_the_reason(videos, name, reason):
    with pytest.raises(VideoError, match=reason) as err:
        probe(videos[name])
    assert str(videos[name]) in str(err.value)


def test_probe_counts_what_a_truncated_file_still_holds(videos):
    with pytest.raises(VideoError) as err:
        probe(videos["truncated"])
    decodable = int(str(err.value).split("only about ")[1].split()[0])
    assert 0 < decodable < GOOD["h264"][2]
    assert probe(videos["truncated"], verify=False).frames == GOOD["h264"][2]  # the header alone looks fine


# Read


@pytest.mark.parametrize("name", list(GOOD))
def test_read_frames_in_the_order_asked(videos, name):
    info = probe(videos[name])
    wanted = [info.frames - 1, 0, 3, 3, info.frames // 2, 1, 0]
    frames = read_frames(videos[name], [info.start + k / info.fps for k in wanted])
    assert frames.shape == (len(wanted), info.height, info.width, 3) and frames.dtype == np.uint8
    assert frame_index(frames).tolist() == wanted


def test_read_frames_far_apart_seeks_and_matches_nearest(videos):
    # 0.14 s is nearest frame 1 (0.1 s), 0.16 s frame 2; from 0.16 to 2.5 s is a gap to seek across
    frames = read_frames(videos["h264"], [2.9, 0.16, 0.1, 0.14, 2.5], size=16)
    assert frames.shape == (5, 16, 16, 3)
    assert frame_index(frames).tolist() == [29, 2, 1, 1, 25]


def test_read_frames_refuses_times_with_no_frame(videos):
    path = videos["h264"]
    with pytest.raises(VideoError, match=r"t=3\.5000") as err:
        read_frames(path, [0.0, 3.5])
    assert str(path) in str(err.value)
    with pytest.raises(VideoError, match="tolerance"):
        read_frames(path, [0.05], tolerance=0.01)
    assert frame_index(read_frames(path, [0.05], tolerance=0.06)).tolist() in ([0], [1])


def test_resize_frames_shorter_side_then_centre_crop():
    frames = np.zeros((2, 40, 80, 3), np.uint8)
    frames[:, :, 16:64] = 200  # the centre 60% of the width: to 8:32 of 40 at half size, the crop is 10:30
    out = resize_frames(frames, 20)
    assert out.shape == (2, 20, 20, 3) and out.dtype == np.uint8
    assert np.all(out == 200)  # the crop kept only the centre
    assert resize_frames(out, 20) is out


def test_write_video_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="even width and height, got 33x32"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 32, 33, 3), np.uint8), 10)
    with pytest.raises(ValueError, match="libx264") as err:  # webm holds vp8/vp9/av1 only
        write_video(tmp_path / "x264.webm", np.zeros((2, 32, 32, 3), np.uint8), 10)
    assert "x264.webm" in str(err.value) and not (tmp_path / "x264.webm").exists()


def test_avi_frames_start_where_decoding_says(tmp_path):
    # AVI stores decode times: x264's B-frame delay puts frame 0 at 1 / fps, not at the header's 0
    path = tmp_path / "clip.avi"
    write_video(path, indexed_frames(10, 32, 32), 10)
    info = probe(path)
    assert info.start == pytest.approx(0.1) and info.frames == 10
    assert frame_index(read_frames(path, [info.start + k / info.fps for k in (9, 0, 4)])).tolist() == [9, 0, 4]


def test_video_frames_pickle_and_decode_only_what_is_asked(videos):
    frames = VideoFrames(videos["h264"], np.arange(30) / 10, size=24)
    frames = pickle.loads(pickle.dumps(frames))
    assert frames.shape == (30, 24, 24, 3) and len(frames) == 30
    assert frames[7].shape == (24, 24, 3)
    assert frame_index(frames[7][None]).tolist() == [7]
    assert frame_index(frames[4:7]).tolist() == [4, 5, 6]
    assert frame_index(frames[[9, 2, -1]]).tolist() == [9, 2, 29]
    assert frame_index(frames[np.array([3])]).tolist() == [3]
    assert frames[5:5].shape == (0, 24, 24, 3)
    with pytest.raises(IndexError):
        frames[30]


def test_kept_containers_read_the_same_frames_and_stay_bounded(videos, monkeypatch):
    from jepa_plan.data import video

    monkeypatch.setattr(video, "KEEP_OPEN", 2)
    video._kept.clear()
    for name in ("h264", "av1", "vp9", "other", "h264", "av1"):  # more files than are kept open
        info = probe(videos[name])
        wanted = [info.frames - 1, 2, 0]
        times = [info.start + k / info.fps for k in wanted]
        kept = read_frames(videos[name], times, keep_open=True)
        assert frame_index(kept).tolist() == wanted
        np.testing.assert_array_equal(kept, read_frames(videos[name], times))
    assert list(video._kept) == [str(videos["h264"]), str(videos["av1"])]  # the last two read
    pid, container = video._kept[str(videos["h264"])]
    video._kept[str(videos["h264"])] = (pid + 1, container)  # as if inherited through fork
    assert frame_index(read_frames(videos["h264"], [0.0], keep_open=True)).tolist() == [0]
    assert video._kept[str(videos["h264"])][1] is not container  # the inherited one was not used
    video._kept.clear()


def test_a_dataloader_worker_reads_after_the_parent_has_decoded(videos):
    """Forked workers inherit the parent's decoder and swscale state; they must not use or free it
    (a worker hung on its first frame when they did)."""
    from torch.utils.data import DataLoader

    from jepa_plan.data.datamodule import ClipDataset
    from jepa_plan.data.video_folder import VideoFolderSource

    source = VideoFolderSource(videos["h264"].parent, 16, extensions=(".mp4",), max_bad_fraction=1.0)
    source.episode("h264.mp4").frames[[0, 5]]  # the parent decodes first, and keeps the file open
    clips = ClipDataset(source, ["h264.mp4"], clip_len=2, frameskip=3)
    batch = next(iter(DataLoader(clips, batch_size=4, num_workers=1, timeout=60)))
    assert batch["frames"].shape == (4, 2, 3, 16, 16)
    assert frame_index(batch["frames"][:, 1].permute(0, 2, 3, 1).numpy()).tolist() == [3, 4, 5, 6]


def test_a_seek_that_lands_behind_the_wanted_time_decodes_through(tmp_path):
    """x264's default GOP: the mp4 index marks a sync sample mid-file, but the seek lands on the
    first frame; re-seeking for the same time looped forever on this very video (it did)."""
    import signal

    rng = np.random.default_rng(0)
    for _ in range(10):  # the tenth moving square of benchmarks/bench_loader.py's memory videos
        colour, x0 = rng.integers(60, 255, 3), int(rng.integers(0, 80))
    frames = np.zeros((40, 96, 96, 3), np.uint8)
    for t in range(40):
        x = (x0 + 2 * t) % 80
        frames[t, 30:46, x:x + 16] = colour
    write_video(tmp_path / "moving.mp4", frames, fps=10)

    def give_up(*_):
        raise TimeoutError("read_frames did not return")

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(20)
    try:
        got = read_frames(tmp_path / "moving.mp4", [2.5, 2.6], tolerance=0.101)
    finally:
        signal.alarm(0)
    left = [int(np.argmax(frame[38].max(-1) > 30)) for frame in got]  # the square's left edge
    assert left == [(x0 + 50) % 80, (x0 + 52) % 80]


# The video-folder source


def open_folder(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one per skipped file, by design
        return VideoFolderSource(*args, **kwargs)


def test_folder_skips_every_bad_file_with_its_reason(tmp_path, videos):
    names = ["h264", "av1", "vp9", "other", "empty", "corrupt", "truncated", "short", "unknown"]
    source = open_folder(folder_of(tmp_path, videos, names), image_size=16, max_bad_fraction=0.6)
    assert source.names == ["h264.mp4", "sub/av1.mp4", "sub/other.mkv", "vp9.WEBM"]
    assert source.lengths == {"vp9.WEBM": 20, "h264.mp4": 30, "sub/av1.mp4": 20, "sub/other.mkv": 40}
    reasons = dict(source.skipped)
    assert len(source.skipped) == 5
    for name, reason in [("empty.mp4", "empty file"), ("sub/corrupt.mp4", "not a readable video container"),
                         ("truncated.mp4", "truncated"), ("sub/short.mp4", "shorter than a clip: 1 frames, a clip needs 2"),
                         ("unknown.mp4", "unknown codec")]:
        assert reason in reasons[name]
    assert not source.has_actions and not source.has_states and source.env is None
    episode = source.episode("sub/other.mkv")
    assert episode.actions is None and episode.states is None
    assert episode.frames.shape == (40, 16, 16, 3)
    assert frame_index(episode.frames[[0, 39, 17]]).tolist() == [0, 39, 17]
    summary = source.summary()
    assert "4 videos used" in summary and "5 skipped" in summary
    assert "48x32 x1" in summary and "20 x1" in summary and "10 x3" in summary
    assert "sub/short.mp4: shorter than a clip" in summary


def test_folder_samples_each_video_on_the_target_fps_grid(tmp_path, videos):
    source = open_folder(folder_of(tmp_path, videos, ["h264", "other"]), image_size=16, fps=3)
    for name, source_fps in [("h264.mp4", 10), ("sub/other.mkv", 20)]:
        n = GOOD[name.split("/")[-1].split(".")[0]][2]
        assert source.lengths[name] == int(n / source_fps * 3)
        frames = source.episode(name).frames
        # grid time i / 3 s: the nearest source frame (never a tie at these rates)
        assert frame_index(frames[:]).tolist() == [round(i * source_fps / 3) for i in range(len(frames))]


def test_folder_of_only_bad_files_fails_before_anything_else(tmp_path, videos):
    with pytest.raises(DatasetError, match="every one of its 3"):
        open_folder(folder_of(tmp_path, videos, ["empty", "corrupt", "short"]), image_size=16)


def test_folder_without_videos_names_the_extensions(tmp_path):
    (tmp_path / "notes.txt").write_text("no videos here")
    with pytest.raises(DatasetError, match=r"no video files \(\.avi, \.mkv, \.mp4, \.webm\)"):
        VideoFolderSource(tmp_path, image_size=16)
    with pytest.raises(DatasetError, match="no such folder"):
        VideoFolderSource(tmp_path / "missing", image_size=16)
