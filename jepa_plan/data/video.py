"""Video files through PyAV: probe them, read frames at given times, resize, write.

    probe(path)                              VideoInfo: size, fps, frame count, codec, first time
    read_frames(path, times [n])             uint8 [n, H, W, 3] RGB, the frames nearest those times
    resize_frames(frames [n, H, W, 3], s)    uint8 [n, s, s, 3]: shorter side to s, centre crop
    write_video(path, frames [T, H, W, 3], fps)
    VideoFrames(path, times [T], size)       the lazy `Frames` of one file (source.py)

Times are presentation times in seconds on the file's own clock: frame k of a file is at
`info.start + k / info.fps`. A seek lands on the keyframe at or before a time; frames are then
decoded forward and matched by timestamp, never by counting, because B-frames reorder and a
file's first timestamp is often not 0. Every container is closed before a call returns (PyAV
leaks memory otherwise), and no open container outlives a call, so `VideoFrames` pickles into
DataLoader workers.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
from av.video.reformatter import VideoReformatter
import numpy as np
import torch
from torchvision.transforms import v2

from jepa_plan.data.source import EpisodeError

MAX_GAP_S = 2.0  # wanted times further apart than this: seek again rather than decode through
FASTSTART = (".mp4", ".mov", ".m4v")  # index written first, so a file cut short still opens
ENCODER_DEFAULTS = {"libsvtav1": {"crf": 30, "gop": 2}}  # LeRobot's settings for its default codec


class VideoError(EpisodeError):
    """A video cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # the stream's average frame rate
    frames: int  # as the header records it, else counted packet by packet
    duration: float  # frames / fps, seconds
    codec: str  # e.g. h264, av1, vp9
    start: float  # presentation time of the first frame, seconds; frame k is at start + k / fps


# Probe


def probe(path: str | Path, verify: bool = True) -> VideoInfo:
    """Size, rate and length of the first video stream of a file, or VideoError saying why not.

    With `verify`, the first and the last frame are decoded too (a seek to the end and one group
    of pictures, not the whole file), so a file cut short of what its header promises is caught
    here rather than in the middle of training; `start` is then the first decoded frame's time,
    which is right where the header's is not (AVI records decode times: x264's frame 0 is at
    1 / fps there). Without it, `start` is the header's.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_count = 1
        fps = float(_rate(stream, path))
        frames = stream.frames
        if frames <= 0:  # the header does not count them (webm, mkv): count, and hold to its duration
            frames = _count_packets(container, stream, path)
            if verify:
                _check_duration(container, stream, path, frames, fps)
        if frames <= 0:
            raise VideoError(f"{path}: the video stream holds no frames")
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoError(f"{path}: the video stream records no frame size ({width}x{height})")
        start = _first_frame_time(container, stream, path) if verify else _start(stream)
        info = VideoInfo(str(path), width, height, fps, int(frames), frames / fps,
                         stream.codec_context.codec.canonical_name, start)
        if verify:
            _check_end(container, stream, info)
    return info


def _first_frame_time(container, stream, path) -> float:
    stopped: list[str] = []
    first = next(_frames_from(container, stream, _start(stream), stopped), None)
    if first is None:
        raise VideoError(f"{path}: no frame can be decoded{_because(stopped)}")
    return first[0]


def _check_end(container, stream, info: VideoInfo) -> None:
    """Decode the last frame the header promises, or say how many frames the file holds."""
    stopped: list[str] = []
    last = info.start + (info.frames - 1) / info.fps
    end = None
    for end, _ in _frames_from(container, stream, last, stopped):
        pass
    if end is None:  # the seek went past the data: find where the readable packets end
        end = _last_packet_time(container, stream)
    # A file one frame short passes: variable-rate files often end a little before
    # start + (frames - 1) / average rate.
    if end is None or end < last - 1.01 / info.fps:
        decodable = 0 if end is None else round((end - info.start) * info.fps) + 1
        raise VideoError(f"{info.path}: truncated: the header promises {info.frames} frames "
                         f"({info.duration:.2f} s) but only about {decodable} are in the file{_because(stopped)}")


def _check_duration(container, stream, path, frames: int, fps: float) -> None:
    """Frames counted against the duration the header records. That may be the whole
    container's (audio included), so only a shortfall of more than 5% counts as truncation."""
    if stream.duration is not None:
        promised = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        promised = container.duration / 1e6  # av.time_base is microseconds
    else:
        return
    if frames / fps < promised - max(1.01 / fps, 0.05 * promised):
        raise VideoError(f"{path}: truncated: the header promises {promised:.2f} s but only {frames} frames "
                         f"({frames / fps:.2f} s) are in the file")


def _count_packets(container, stream, path) -> int:
    """Frames of a stream whose header does not count them (webm, mkv): its packets, not decoded."""
    try:
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: cannot count the frames, the file breaks off ({_why(err)})") from None


def _last_packet_time(container, stream) -> Optional[float]:
    """Presentation time of the last intact packet, read from the start without decoding."""
    end = None
    try:
        container.seek(stream.start_time or 0, stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.size > 0 and packet.pts is not None and not packet.is_corrupt:
                end = max(end or -math.inf, float(packet.pts * packet.time_base))
    except av.error.FFmpegError:
        pass  # the file ends in broken data: what was read so far is the answer
    return end


# Read


def read_frames(path: str | Path, times, size: Optional[int] = None, tolerance: Optional[float] = None,
                threads: int = 1, keep_open: bool = False) -> np.ndarray:
    """uint8 [n, H, W, 3] RGB: for each time (seconds, the file's clock), the decoded frame
    nearest to it, in the order given (times may repeat or be unsorted); [n, size, size, 3]
    when `size` is given (see `resize_frames`).

    A time with no frame within `tolerance` (default: half a frame period) raises VideoError
    naming the file and the time. The file is sought once per run of times that lie within
    MAX_GAP_S of each other, and decoding stops after the last time wanted. `keep_open` keeps
    the container open for the next read of the same file in this process (see `_reading`).
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.isfinite(times).all():
        raise ValueError(f"{path}: frame times must be finite, got {times[~np.isfinite(times)][:3]}")
    wanted = np.unique(times)  # sorted
    with (_reading(path) if keep_open else _open(path)) as container:
        stream = _video_stream(container, path)
        if not stream.codec_context.is_open:  # a kept container's decoder is set up already
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        if tolerance is None:
            tolerance = 0.5 / float(_rate(stream, path))
        if not len(times):
            height, width = (size, size) if size else (stream.codec_context.height, stream.codec_context.width)
            return np.zeros((0, height, width, 3), np.uint8)
        convert = _Converter(size)
        found: list[Optional[np.ndarray]] = [None] * len(wanted)
        i, seek_gaps = 0, True
        while i < len(wanted):
            j = _read_run(container, stream, path, wanted, i, tolerance, found, convert, seek_gaps)
            # A seek that found nothing landed behind where it was asked (an index that names as
            # keyframes frames the decoder cannot start from): decode through the next gap.
            seek_gaps, i = j > i, j
    return np.stack([found[j] for j in np.searchsorted(wanted, times)])


def _read_run(container, stream, path, wanted: np.ndarray, i: int, tolerance: float,
              found: list, convert, seek_gaps: bool = True) -> int:
    """Fill found[i:] from frames decoded forward of the keyframe before wanted[i]; return the
    index where a seek is due (a gap of more than MAX_GAP_S) or len(wanted) when all are found."""
    stopped: list[str] = []
    previous = None  # (time, frame): the last frame decoded before this one
    for time, frame in _frames_from(container, stream, wanted[i] - tolerance, stopped):
        # Each wanted time at or before this frame is nearest to it or to the previous frame
        while i < len(wanted) and time >= wanted[i]:
            best = previous if previous and wanted[i] - previous[0] <= time - wanted[i] else (time, frame)
            _check_near(path, wanted[i], best[0], tolerance)
            found[i] = convert(best[1])
            i += 1
        if i == len(wanted):
            return i
        if (seek_gaps and wanted[i] - tolerance - time > MAX_GAP_S
                and not _keyframe_behind(stream, wanted[i] - tolerance, time)):
            return i
        previous = (time, frame)
    # The data ended: the last frame may still be the nearest to what is left
    while i < len(wanted) and previous and abs(wanted[i] - previous[0]) <= tolerance:
        found[i] = convert(previous[1])
        i += 1
    if i < len(wanted):
        last = f"; the last frame decoded is at {previous[0]:.4f} s" if previous else ""
        raise VideoError(f"{path}: no frame at t={wanted[i]:.4f} s (tolerance {tolerance:.4f} s): "
                         f"the video ends or breaks off before it{last}{_because(stopped)}")
    return i


def _check_near(path, wanted: float, time: float, tolerance: float) -> None:
    if abs(time - wanted) > tolerance:
        raise VideoError(f"{path}: no frame at t={wanted:.4f} s: the nearest is at {time:.4f} s, "
                         f"more than the tolerance {tolerance:.4f} s away")


def _keyframe_behind(stream, time: float, position: float) -> bool:
    """Whether the keyframe a seek to `time` would land on is at or before `position`, so that
    seeking would decode again what was decoded already. Unknown (no index): False."""
    entries = stream.index_entries
    if not len(entries):
        return False
    k = entries.search_timestamp(_to_pts(time, stream), backward=True)
    return k >= 0 and float(entries[k].timestamp * stream.time_base) <= position


_rgb: dict[int, VideoReformatter] = {}  # pid -> a process's reformatter


def _reformatter() -> VideoReformatter:
    """One swscale context per process. One inherited through fork waits on worker threads that
    did not survive the fork: using it, or even freeing it, hangs a DataLoader worker, so the
    inherited one is left alone (never freed) and the process makes its own."""
    pid = os.getpid()
    if pid not in _rgb:
        _rgb[pid] = VideoReformatter()
    return _rgb[pid]


class _Converter:
    """Decoded frame -> uint8 [H, W, 3] RGB (or [size, size, 3]); a frame matched to several
    wanted times is converted once."""

    def __init__(self, size: Optional[int]):
        self.size = size
        self.last = (None, None)  # (frame, array)

    def __call__(self, frame) -> np.ndarray:
        if self.last[0] is not frame:
            # One reformatter kept per process: `frame.to_ndarray(format="rgb24")` builds a new
            # swscale context per frame, 5 ms for a 64 px AV1 frame against 0.25 ms reused.
            array = _reformatter().reformat(frame, format="rgb24").to_ndarray()
            if self.size:  # resized one at a time: memory stays at the output's size
                array = resize_frames(array[None], self.size)[0]
            self.last = (frame, array)
        return self.last[1]


# Decoding and seeking


def _open_container(path: str | Path):
    path = str(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a readable video container ({_why(err)}; corrupt, not a video, "
                         "or an mp4 cut short before its index)") from None


@contextmanager
def _open(path: str | Path):
    with _open_container(path) as container:
        try:
            yield container
        finally:
            _drained.discard(id(container))


KEEP_OPEN = 4  # containers a process keeps open for `read_frames(..., keep_open=True)`
_kept: "OrderedDict[str, tuple[int, object]]" = OrderedDict()  # path -> (pid that opened it, container)
_inherited: list = []  # containers a forked child inherited: kept referenced, never used or freed
_drained: set[int] = set()  # ids of containers demuxed to their end during the current read


@contextmanager
def _reading(path: str | Path):
    """An open container of `path`, reused across reads in this process: opening parses the
    file's index, which for a LeRobot v3.0 file of thousands of episodes costs more than
    decoding the two or three frames a clip needs. A container inherited through fork is never
    used (its file offset is shared with the parent); one that failed a read is closed."""
    key = str(path)
    entry = _kept.pop(key, None)
    if entry is not None and entry[0] != os.getpid():
        _inherited.append(entry[1])  # freeing it could wait on the parent's decoder threads
        entry = None
    if entry is None:
        entry = (os.getpid(), _open_container(path))
    try:
        yield entry[1]
    except BaseException:
        entry[1].close()
        raise
    finally:
        drained = id(entry[1]) in _drained
        _drained.discard(id(entry[1]))
    if drained:
        entry[1].close()
        return
    _kept[key] = entry
    while len(_kept) > KEEP_OPEN:
        pid, container = _kept.popitem(last=False)[1]
        if pid == os.getpid():
            container.close()
        else:
            _inherited.append(container)


def _video_stream(container, path):
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        raise VideoError(f"{path}: no video stream (streams: {kinds})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: unknown codec: this FFmpeg build (PyAV {av.__version__}) "
                         "has no decoder for its video stream")
    return stream


def _rate(stream, path) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return rate
    raise VideoError(f"{path}: the video stream records no frame rate")


def _start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _to_pts(time: float, stream) -> int:
    """Seconds -> the stream's time_base, rounded down (a seek must not land after `time`)."""
    base = stream.time_base
    return math.floor(Fraction(time) * base.denominator / base.numerator)


def _frames_from(container, stream, time: float, stopped: list[str]) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time, frame) in presentation order, from the last keyframe at or before `time` to the
    end of the data. Should the demuxer's index put the seek after `time` (some files index
    decode times, not presentation times), it seeks earlier until it does not."""
    first_pts = stream.start_time or 0
    back = 0.0
    while True:
        pts = max(_to_pts(time - back, stream), first_pts)
        try:
            container.seek(pts, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError as err:
            raise VideoError(f"{container.name}: cannot seek to t={time:.4f} s ({_why(err)})") from None
        frames = _decoded(container, stream, stopped)
        first = next(frames, None)
        if first is None or first[0] <= time or pts <= first_pts:
            break
        back = max(2 * back, 1.0)
    if first is not None:
        yield first
        yield from frames


def _decoded(container, stream, stopped: list[str]) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time, frame) from the current position on. Where the data breaks off, it ends and says
    why in `stopped` rather than raising: the frames before the break are still good."""
    period = 1 / float(_rate(stream, container.name))
    time = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if frame.time is not None:
                    time = frame.time
                else:  # no timestamp (rare): one period after the frame before
                    time = _start(stream) if time is None else time + period
                yield time, frame
    except av.error.FFmpegError as err:
        stopped.append(_why(err))
    # Demuxed to the end: the decoder has been drained, and after a later seek it can repeat a
    # frame forever, so a kept container that got here is not reused (see `_reading`).
    _drained.add(id(container))


def _because(stopped: list[str]) -> str:
    return f" ({stopped[-1]})" if stopped else ""


def _why(err: av.error.FFmpegError) -> str:
    return err.strerror or str(err)


# Resize


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [n, H, W, 3] -> uint8 [n, size, size, 3]: the shorter side resized to `size`
    (antialiased), then the centre size x size cropped. Frames already that size pass as they are."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    x = v2.functional.resize(x, [size], antialias=True)
    x = v2.functional.center_crop(x, [size, size])
    return x.permute(0, 2, 3, 1).contiguous().numpy()


# Write


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "libx264",
                crf: Optional[int] = None, gop: Optional[int] = None, pix_fmt: str = "yuv420p") -> None:
    """Encode uint8 [T, H, W, 3] RGB frames; frame k is stamped at exactly k / fps.

    codec: libx264 (.mp4, .mkv, .avi), libsvtav1 (.mp4; crf 30 and a keyframe every 2 frames
    unless given, as LeRobot writes), libvpx-vp9 (.webm). crf/gop None: the codec's defaults.
    Sizes yuv420p cannot hold (odd width or height) raise ValueError rather than being padded,
    so a frame never silently changes size between writing and reading. An .mp4 gets its index
    at the front (faststart): a copy cut short still opens, and `probe` reports it truncated.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"{path}: expected uint8 frames [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{path}: {pix_fmt} needs an even width and height, got {width}x{height}; "
                         "crop or pad the frames, or pass pix_fmt='yuv444p' (libx264)")
    defaults = ENCODER_DEFAULTS.get(codec, {})
    crf = defaults.get("crf") if crf is None else crf
    gop = defaults.get("gop") if gop is None else gop
    rate = Fraction(fps).limit_denominator(100_000) if not isinstance(fps, Fraction) else fps
    options = {}
    if crf is not None:
        options["crf"] = str(crf)
        if codec == "libvpx-vp9":
            options["b"] = "0"  # vp9 reads crf as a quality cap unless the bitrate target is off
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its whole config per file otherwise
    container_options = {"movflags": "+faststart"} if Path(path).suffix.lower() in FASTSTART else {}
    try:
        with av.open(str(path), mode="w", container_options=container_options) as container:
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.codec_context.time_base = 1 / rate
            if gop is not None:
                stream.codec_context.gop_size = gop
            for k, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts, frame.time_base = k, 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))  # flush the encoder's delayed frames
    except (av.error.FFmpegError, ValueError) as err:  # PyAV's unknown codec or codec-format mismatch are ValueErrors
        Path(path).unlink(missing_ok=True)  # no half-written file left to pass for a video
        why = _why(err) if isinstance(err, av.error.FFmpegError) else f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: cannot encode {width}x{height} frames with {codec} ({why})") from None


# Lazy frames


class VideoFrames:
    """The frames of one video file at given times [T], served at size x size, decoded on demand:
    `frames[i]`, `frames[a:b]` and `frames[[i, j, ...]]` decode only the frames they name.

    Holds the path and the times, never an open container: it pickles into DataLoader workers,
    each of which opens its own decoders and keeps the last few open (`read_frames(keep_open)`).
    """

    def __init__(self, path: str | Path, times: np.ndarray, size: int, threads: int = 1,
                 tolerance: Optional[float] = None):
        self.path = str(path)
        self.times = np.asarray(times, dtype=np.float64).reshape(-1)
        self.size = int(size)
        self.threads = threads
        self.tolerance = tolerance  # None: half a frame period of the file
        self.shape = (len(self.times), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, index) -> np.ndarray:
        times = self.times[index]  # numpy's indexing rules, bounds checks and errors
        if np.ndim(times) == 0:
            return self._read([times])[0]
        return self._read(times)

    def _read(self, times) -> np.ndarray:
        if not len(times):
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return read_frames(self.path, times, self.size, self.tolerance, self.threads, keep_open=True)

    def __repr__(self) -> str:
        return f"VideoFrames({self.path!r}, {len(self)} frames at {self.size}x{self.size})"
