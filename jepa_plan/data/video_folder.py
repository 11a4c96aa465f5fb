"""`data=video_folder`: every video file under a folder, as action-free episodes.

    FOLDER/**/*.mp4|webm|mkv|avi   one episode per file, named by its path under FOLDER

For encoder pretraining only (no actions, no states). Videos of any size and frame rate mix:
each is sampled on its own time grid, `start + i / rate` (rate = `fps`, or the video's own
rate when None), and served square at `image_size` (shorter side resized, centre cropped).
Every file is probed when the source opens (its first and last frame decoded); corrupt,
truncated, empty and undecodable files, and those shorter than a clip, are skipped with the
reason. Only each file's small `VideoInfo` is kept, so memory does not grow with frames.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from jepa_plan.data.source import ClipConfig, DatasetError, Episode, report_skips
from jepa_plan.data.video import VideoError, VideoFrames, VideoInfo, probe

EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")


@dataclass
class VideoFolderConfig(ClipConfig):
    """`data=video_folder data.path=FOLDER`: the videos under FOLDER, action-free."""

    name: str = "video_folder"
    path: str = ""
    resolution: Optional[int] = None  # frames served at this size; None: the env's resolution
    fps: Optional[float] = None  # sample every video at this rate; None: each video's own rate
    extensions: list = field(default_factory=lambda: list(EXTENSIONS))
    decode_threads: int = 1  # decoder threads per DataLoader worker


def find_videos(root: Path, extensions=EXTENSIONS) -> list[Path]:
    """Files under `root` (recursively) with one of `extensions`, any case, sorted by path."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    looked_for = ", ".join(sorted(wanted))
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (looking for video files: {looked_for})")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())
    if not files:
        raise DatasetError(f"{root}: no video files ({looked_for}) in this folder or below it")
    return files


class VideoFolderSource:
    """The videos under `path` as episodes of lazily decoded frames [T, image_size, image_size, 3]."""

    has_actions = False
    has_states = False
    action_low = None
    action_high = None
    env = None

    def __init__(self, path: str | Path, image_size: int, fps: Optional[float] = None, clip_frames: int = 2,
                 max_bad_fraction: float = 0.05, decode_threads: int = 1, extensions=EXTENSIONS):
        self.root = Path(path)
        self.image_size = int(image_size)
        self.fps = fps
        self.decode_threads = decode_threads
        self.infos: dict[str, VideoInfo] = {}
        self.lengths: dict[str, int] = {}
        self.skipped: list[tuple[str, str]] = []
        files = find_videos(self.root, extensions)
        for file in files:
            name = file.relative_to(self.root).as_posix()
            try:
                info = probe(file, verify=True)
            except VideoError as err:
                self.skipped.append((name, str(err).removeprefix(f"{file}: ")))
                continue
            length = self._grid_length(info)
            if length < clip_frames:
                self.skipped.append((name, f"shorter than a clip: {length} frames, a clip needs {clip_frames}"))
                continue
            self.infos[name] = info
            self.lengths[name] = length
        report_skips(self.root, self.skipped, len(files), max_bad_fraction)
        self.names = sorted(self.lengths)

    def _grid_length(self, info: VideoInfo) -> int:
        rate = self.fps or info.fps
        return math.floor(info.duration * rate + 1e-6)  # the epsilon absorbs frames / fps * fps rounding

    def __len__(self) -> int:
        return len(self.names)

    def episode(self, name: str) -> Episode:
        if name not in self.lengths:
            raise KeyError(f"video {name!r} is not in {self.root} (or was skipped as bad)")
        info = self.infos[name]
        rate = self.fps or info.fps
        times = info.start + np.arange(self.lengths[name]) / rate
        # Up to a whole source frame from the grid: a resampled grid point lies between two
        # frames, and the last one may lie past the last frame by less than a period.
        tolerance = 1.01 / info.fps
        frames = VideoFrames(info.path, times, self.image_size, self.decode_threads, tolerance)
        return Episode(frames, None, None)

    def summary(self) -> str:
        """Videos used and their total duration, the sizes and rates seen, and every skipped file."""
        infos = list(self.infos.values())
        seconds = sum(info.duration for info in infos)
        sizes = Counter(f"{info.width}x{info.height}" for info in infos)
        rates = Counter(f"{info.fps:g}" for info in infos)
        sampled = f"{self.fps:g} fps" if self.fps else "each video's own fps"
        lines = [
            f"{self.root}: {len(infos)} videos used, {_hms(seconds)} in all, sampled at {sampled} "
            f"({sum(self.lengths.values())} frames at {self.image_size}x{self.image_size}); {len(self.skipped)} skipped",
            "  resolutions: " + ", ".join(f"{size} x{n}" for size, n in sizes.most_common()),
            "  fps: " + ", ".join(f"{rate} x{n}" for rate, n in rates.most_common()),
        ]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def _hms(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m:02d}m {s:02d}s" if hours else f"{m}m {s:02d}s" if m else f"{seconds:.1f} s"
