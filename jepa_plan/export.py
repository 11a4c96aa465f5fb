"""Export an episode data set as plain videos, or as a LeRobot data set (layout v3.0 or v2.1).

    python -m jepa_plan.export data/two_rooms exports/two_rooms --format lerobot
    python -m jepa_plan.export data/two_rooms exports/two_rooms_v21 --format lerobot --version v2.1 --codec libx264
    python -m jepa_plan.export data/two_rooms exports/two_rooms_mp4 --format mp4

`--format mp4` writes OUT/ep_000000.mp4 ... (one video per episode, libx264 by default) and
nothing else. `--format lerobot` writes the layout LeRobot writes and `jepa_plan.data.lerobot`
reads: AV1 by default (libsvtav1, yuv420p, a keyframe every 2 frames, crf 30, as LeRobot);
v3.0 puts many episodes back to back in each data and video file, starting a new file once one
reaches --file-mb; v2.1 writes one file per episode. meta/info.json also carries
`"jepa_plan": {"env", "source", "action_low", "action_high"}`, and is written last: a folder
with it is complete.

Export streams episode by episode: memory holds one episode's frames (memory-mapped) and a
bounded buffer of metadata rows, whatever the size of the data set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jepa_plan.data.episodes import EpisodeStore
from jepa_plan.data.source import DatasetError, Episode
from jepa_plan.data.video import probe, write_video

FORMATS = ("mp4", "lerobot")
VERSIONS = ("v3.0", "v2.1")
CODECS = ("libsvtav1", "libx264")
DEFAULT_FPS = 10.0
CHUNKS_SIZE = 1000  # files per chunk folder, as LeRobot
DATA_FILE_MB, VIDEO_FILE_MB = 100, 500  # LeRobot's defaults for v3.0 files
LEROBOT_ENCODING = {"crf": 30, "gop": 2, "pix_fmt": "yuv420p"}  # LeRobot's encoder settings
PATHS = {  # the path templates LeRobot writes into meta/info.json
    "v3.0": ("data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
             "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"),
    "v2.1": ("data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
             "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"),
}
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
META_ROWS = 1000  # episode rows buffered before they are written out


def export(src: str | Path, out: str | Path, format: str = "lerobot", version: str = "v3.0",
           codec: Optional[str] = None, fps: Optional[float] = None, camera: str = "observation.image",
           episodes: Optional[int] = None, file_mb: Optional[float] = None, crf: Optional[int] = None,
           pix_fmt: Optional[str] = None, log=print) -> dict:
    """Export the usable episodes of `src` (the first `episodes` of them) to `out`, which must be
    empty or absent; return {"episodes", "frames", "bytes", "seconds"} and log one summary line.

    fps: the manifest's when it records one, else `fps`, else 10. file_mb (v3.0): start a new
    data or video file once the current one holds this many MB (default LeRobot's 100 and 500).
    crf, pix_fmt (lerobot): the encoder's quality and pixel format, LeRobot's 30 and yuv420p by
    default. At 64 px, 4:2:0 chroma halves the colour resolution of small objects: 5% of pixels
    move by more than 30 levels whatever the crf (even lossless H.264); libx264 with yuv444p and
    crf 0 keeps them within a level or two.
    """
    if format not in FORMATS or version not in VERSIONS or (codec is not None and codec not in CODECS):
        raise ValueError(f"export: format {format!r}, version {version!r}, codec {codec!r}; the choices are "
                         f"{FORMATS}, {VERSIONS} and {CODECS}")
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    store = EpisodeStore(src)
    fps = _resolve_fps(store.manifest, fps)
    names = store.names[:episodes] if episodes else store.names
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty; export into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    if format == "mp4":
        for name in names:
            write_video(out / f"{name}.mp4", store.episode(name).frames, fps, codec=codec or "libx264")
        described = f"mp4 ({codec or 'libx264'})"
    else:
        writer = _LeRobotWriter(out, version, camera, fps, codec or "libsvtav1", file_mb, store, src,
                                {**LEROBOT_ENCODING, "crf": LEROBOT_ENCODING["crf"] if crf is None else crf,
                                 "pix_fmt": pix_fmt or LEROBOT_ENCODING["pix_fmt"]})
        for index, name in enumerate(names):
            writer.add(index, store.episode(name))
        writer.finish()
        described = f"lerobot {version} ({codec or 'libsvtav1'})"
    frames = sum(store.lengths[name] for name in names)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    seconds = time.perf_counter() - started
    log(f"exported {len(names)} episodes, {frames} frames of {src} to {out} as {described} at {fps:g} fps: "
        f"{written:,} bytes in {seconds:.1f} s")
    return {"episodes": len(names), "frames": frames, "bytes": written, "seconds": seconds}


def _resolve_fps(manifest: dict, fps: Optional[float]) -> float:
    recorded = manifest.get("fps") or (manifest.get("env") or {}).get("fps")
    if recorded and fps and float(recorded) != float(fps):
        raise ValueError(f"--fps {fps:g} disagrees with the {float(recorded):g} fps the data set's manifest records")
    return float(recorded or fps or DEFAULT_FPS)


# ----------------------------------------------------------------------------- LeRobot layout


class _LeRobotWriter:
    """Writes one LeRobot data set, an episode at a time (`add`), then its metadata (`finish`)."""

    def __init__(self, out: Path, version: str, camera: str, fps: float, codec: str, file_mb: Optional[float],
                 store: EpisodeStore, src: Path, encoding: dict = LEROBOT_ENCODING):
        self.out, self.version, self.camera, self.fps, self.codec = out, version, camera, fps, codec
        self.encoding = encoding
        self.data_mb = file_mb or DATA_FILE_MB
        self.video_mb = file_mb or VIDEO_FILE_MB
        self.manifest, self.src = store.manifest, src
        self.has_states = store.has_states
        self.task = str((store.manifest.get("env") or {}).get("name") or "jepa_plan episodes")
        self.frames = 0  # rows written so far: the next row's global `index`
        self.episodes = 0
        self.shape = None  # [H, W], [A], [S] of the first episode; every other must match
        self.codec_name = None
        self.stats: dict[str, _Moments] = {}
        if version == "v3.0":
            self.data = _DataFiles(out, PATHS["v3.0"][0], self.data_mb)
            self.videos = _VideoFiles(out, PATHS["v3.0"][1].replace("{video_key}", camera), self.video_mb)
            self.segment = out / "videos" / ".episode.mp4"  # each episode is encoded here, then appended
            self.segment.parent.mkdir(parents=True, exist_ok=True)
            self.meta = _Rows(out / EPISODES_PATH.format(chunk_index=0, file_index=0))
        else:
            (out / "meta").mkdir(parents=True, exist_ok=True)
            self.episodes_jsonl = (out / "meta/episodes.jsonl").open("w")
            self.stats_jsonl = (out / "meta/episodes_stats.jsonl").open("w")

    def add(self, index: int, episode: Episode) -> None:
        length = len(episode)
        shape = (tuple(episode.frames.shape[1:3]), episode.actions.shape[1:],
                 episode.states.shape[1:] if self.has_states else None)
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            raise ValueError(f"episode {index} has frames/actions/states of shapes {shape}, the first had {self.shape}")
        table = self._rows(index, episode)
        stats = _episode_stats(table, episode.frames, self.camera)
        for key, moments in stats.items():
            self.stats.setdefault(key, _Moments()).merge(moments)
        if self.version == "v3.0":
            write_video(self.segment, episode.frames, self.fps, codec=self.codec, **self.encoding)
            self._check_codec(self.segment)
            video_chunk, video_file, start = self.videos.append(self.segment, length / self.fps)
            data_chunk, data_file = self.data.write(table)
            video = f"videos/{self.camera}"
            row = {"episode_index": index, "tasks": [self.task], "length": length,
                   "data/chunk_index": data_chunk, "data/file_index": data_file,
                   "dataset_from_index": self.frames, "dataset_to_index": self.frames + length,
                   f"{video}/chunk_index": video_chunk, f"{video}/file_index": video_file,
                   f"{video}/from_timestamp": start, f"{video}/to_timestamp": start + length / self.fps,
                   "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for key, moments in stats.items():
                row.update({f"stats/{key}/{stat}": value for stat, value in moments.result(key == self.camera).items()})
            self.meta.add(row)
        else:
            chunk = index // CHUNKS_SIZE
            path = self.out / PATHS["v2.1"][0].format(episode_chunk=chunk, episode_index=index)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            video = self.out / PATHS["v2.1"][1].format(episode_chunk=chunk, video_key=self.camera, episode_index=index)
            video.parent.mkdir(parents=True, exist_ok=True)
            write_video(video, episode.frames, self.fps, codec=self.codec, **self.encoding)
            self._check_codec(video)
            entry = {"episode_index": index, "tasks": [self.task], "length": length}
            self.episodes_jsonl.write(json.dumps(entry) + "\n")
            episode_stats = {key: moments.result(key == self.camera) for key, moments in stats.items()}
            self.stats_jsonl.write(json.dumps({"episode_index": index, "stats": episode_stats}) + "\n")
        self.frames += length
        self.episodes += 1

    def finish(self) -> None:
        if not self.episodes:
            raise DatasetError(f"{self.src}: no episodes to export")
        if self.version == "v3.0":
            self.data.close()
            self.videos.close()
            self.segment.unlink(missing_ok=True)
            self.meta.close()
            _write_tasks_parquet(self.out / "meta/tasks.parquet", [self.task])
            stats = {key: moments.result(key == self.camera) for key, moments in self.stats.items()}
            (self.out / "meta/stats.json").write_text(json.dumps(stats, indent=4))
        else:
            self.episodes_jsonl.close()
            self.stats_jsonl.close()
            (self.out / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": self.task}) + "\n")
        info_path = self.out / "meta/info.json"
        info_path.parent.mkdir(parents=True, exist_ok=True)
        info_path.write_text(json.dumps(self.info(), indent=4))

    def info(self) -> dict:
        (height, width), (actions,), states = self.shape
        fps = int(self.fps) if float(self.fps).is_integer() else self.fps
        features = {"action": {"dtype": "float32", "shape": [actions],
                               "names": [f"action_{i}" for i in range(actions)]}}
        if states is not None:
            features["observation.state"] = {"dtype": "float32", "shape": [states[0]],
                                             "names": [f"state_{i}" for i in range(states[0])]}
        features[self.camera] = {
            "dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": self.codec_name,
                     "video.pix_fmt": self.encoding["pix_fmt"], "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False}}
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in ("frame_index", "episode_index", "index", "task_index"):
            features[key] = {"dtype": "int64", "shape": [1], "names": None}
        info = {"codebase_version": self.version, "robot_type": None, "total_episodes": self.episodes,
                "total_frames": self.frames, "total_tasks": 1}
        if self.version == "v3.0":
            info.update(chunks_size=CHUNKS_SIZE, data_files_size_in_mb=self.data_mb,
                        video_files_size_in_mb=self.video_mb)
        else:
            info.update(total_videos=self.episodes, total_chunks=math.ceil(self.episodes / CHUNKS_SIZE),
                        chunks_size=CHUNKS_SIZE)
        data_path, video_path = PATHS[self.version]
        info.update(fps=fps, splits={"train": f"0:{self.episodes}"}, data_path=data_path, video_path=video_path,
                    features=features)
        info["jepa_plan"] = {"env": self.manifest.get("env"), "source": str(self.src),
                             "action_low": self.manifest.get("action_low"),
                             "action_high": self.manifest.get("action_high")}
        return info

    def _rows(self, index: int, episode: Episode) -> pa.Table:
        """The parquet rows of one episode, columns as LeRobot writes them."""
        frame_index = np.arange(len(episode), dtype=np.int64)
        columns = {"action": _fixed_lists(episode.actions)}
        if self.has_states:
            columns["observation.state"] = _fixed_lists(episode.states)
        columns.update({
            "timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(np.full(len(episode), index, dtype=np.int64)),
            "index": pa.array(self.frames + frame_index),
            "task_index": pa.array(np.zeros(len(episode), dtype=np.int64)),
        })
        return pa.table(columns)

    def _check_codec(self, path: Path) -> None:
        if self.codec_name is None:
            self.codec_name = probe(path, verify=False).codec


def _fixed_lists(array: np.ndarray) -> pa.FixedSizeListArray:
    """float32 [T, D] -> a fixed-size list column (what LeRobot's features of shape [D] become)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


class _DataFiles:
    """v3.0 data parquet files, episodes appended; a new file once the current one holds `mb`
    MB of (uncompressed) rows, as LeRobot measures them."""

    def __init__(self, out: Path, template: str, mb: float):
        self.out, self.template, self.limit = out, template, mb * 2**20
        self.chunk, self.file, self.writer, self.bytes = 0, -1, None, 0

    def write(self, table: pa.Table) -> tuple[int, int]:
        if self.writer is None or self.bytes >= self.limit:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file)
            path = self.out / self.template.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer, self.bytes = pq.ParquetWriter(path, table.schema), 0
        self.writer.write_table(table)  # one row group per episode: a reader reads only its own
        self.bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _VideoFiles:
    """v3.0 video files: each episode's video appended (packets copied, timestamps shifted), so
    an episode's frames start at its from_timestamp; a new file once one holds `mb` MB."""

    def __init__(self, out: Path, template: str, mb: float):
        self.out, self.template, self.limit = out, template, mb * 2**20
        self.chunk, self.file = 0, -1
        self.container = self.stream = None
        self.seconds = 0.0  # duration of the current file so far
        self.bytes = 0

    def append(self, segment: Path, seconds: float) -> tuple[int, int, float]:
        """Append a one-episode video; return (chunk, file, from_timestamp) where it went."""
        if self.container is None or self.bytes >= self.limit:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file)
            path = self.out / self.template.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
            self.stream, self.seconds, self.bytes = None, 0.0, 0
        start = self.seconds
        with av.open(str(segment)) as source:
            stream = source.streams.video[0]
            if self.stream is None:
                self.stream = self.container.add_stream_from_template(stream, opaque=True)  # copied, not re-encoded
            for packet in source.demux(stream):
                if packet.dts is None:  # the demuxer's empty flush packet
                    continue
                shift = round(start / float(packet.time_base))
                packet.pts += shift
                packet.dts += shift
                packet.stream = self.stream
                self.bytes += packet.size
                self.container.mux(packet)
        self.seconds = start + seconds
        return self.chunk, self.file, start

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    """The (chunk, file) after this one: CHUNKS_SIZE files to a chunk folder."""
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)


class _Rows:
    """A parquet file written META_ROWS rows at a time, schema taken from the first rows."""

    def __init__(self, path: Path):
        self.path, self.rows, self.writer = path, [], None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= META_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            table = pa.Table.from_pylist(self.rows)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        else:
            table = pa.Table.from_pylist(self.rows, schema=self.writer.schema)
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()


def _write_tasks_parquet(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as LeRobot writes it from pandas: a `task_index` column indexed by
    the task strings (pandas metadata says `task` is the index, so pandas readers get it back)."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas = {"index_columns": ["task"], "column_indexes": [],
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                           "metadata": None}],
              "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas).encode()}), path)


# ----------------------------------------------------------------------------- statistics


class _Moments:
    """Running count, sum, sum of squares, min and max per channel (float64): LeRobot's
    min/max/mean/std/count of one feature. `count` is rows (or frames); `values` per channel."""

    def __init__(self):
        self.count, self.values = 0, 0
        self.sum = self.squares = self.low = self.high = None

    @classmethod
    def of(cls, array: np.ndarray, count: Optional[int] = None) -> "_Moments":
        """array [N, C]: N values of C channels (count: the rows they came from, default N)."""
        moments = cls()
        array = np.asarray(array, dtype=np.float64)
        moments.count, moments.values = len(array) if count is None else count, len(array)
        moments.sum, moments.squares = array.sum(0), np.square(array).sum(0)
        moments.low, moments.high = array.min(0), array.max(0)
        return moments

    def merge(self, other: "_Moments") -> None:
        if self.sum is None:
            self.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in other.__dict__.items()})
            return
        self.count += other.count
        self.values += other.values
        self.sum = self.sum + other.sum
        self.squares = self.squares + other.squares
        self.low, self.high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)

    def result(self, image: bool = False) -> dict:
        """{"min", "max", "mean", "std", "count"}; an image's per channel as [3, 1, 1] in [0, 1]."""
        mean = self.sum / self.values
        std = np.sqrt(np.maximum(self.squares / self.values - np.square(mean), 0.0))
        out = {"min": self.low, "max": self.high, "mean": mean, "std": std}
        if image:
            out = {k: (v / 255.0).reshape(3, 1, 1) for k, v in out.items()}
        return {**{k: v.tolist() for k, v in out.items()}, "count": [int(self.count)]}


def _episode_stats(table: pa.Table, frames: np.ndarray, camera: str) -> dict[str, _Moments]:
    """Moments of every feature of one episode: its parquet columns and its frames' channels."""
    stats = {}
    for key in table.column_names:
        column = table.column(key).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy().reshape(len(column), -1)
        else:
            values = column.to_numpy().reshape(-1, 1)
        stats[key] = _Moments.of(values)
    image = _Moments()
    for start in range(0, len(frames), 4):  # a few frames at a time: float64 copies stay small
        chunk = np.asarray(frames[start:start + 4]).reshape(-1, 3)
        image.merge(_Moments.of(chunk, count=len(frames[start:start + 4])))
    stats[camera] = image
    return stats


# ----------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Optional[list[str]] = None) -> None:
    parser = _Parser(prog="python -m jepa_plan.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="an episode data set (a folder with manifest.json)")
    parser.add_argument("out", help="the folder to write (must be empty or absent)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--version", choices=VERSIONS, default=None, help="LeRobot layout (default v3.0)")
    parser.add_argument("--codec", choices=CODECS, default=None,
                        help="default libsvtav1 (AV1) for lerobot, libx264 for mp4")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"frame rate, when the manifest records none (default {DEFAULT_FPS:g})")
    parser.add_argument("--camera", default="observation.image", help="the video key (lerobot; default %(default)s)")
    parser.add_argument("--episodes", type=int, default=None, help="export only the first N usable episodes")
    parser.add_argument("--pix-fmt", default=None, choices=("yuv420p", "yuv444p"),
                        help="lerobot: pixel format (default yuv420p, as LeRobot; yuv444p needs --codec libx264)")
    parser.add_argument("--crf", type=int, default=None,
                        help=f"lerobot: encoder quality, lower is closer to the source (default {LEROBOT_ENCODING['crf']}, "
                             "as LeRobot)")
    parser.add_argument("--file-mb", type=float, default=None,
                        help=f"v3.0: start a new data/video file past this many MB (default {DATA_FILE_MB} and "
                             f"{VIDEO_FILE_MB}, as LeRobot)")
    args = parser.parse_args(argv)
    if args.format == "mp4" and (args.version or args.file_mb or args.crf is not None or args.pix_fmt
                                 or args.camera != "observation.image"):
        parser.error("--version, --file-mb, --crf, --pix-fmt and --camera apply to --format lerobot only")
    if args.crf is not None and not 0 <= args.crf <= 63:
        parser.error(f"--crf {args.crf} must lie in [0, 63]")
    if args.version == "v2.1" and args.file_mb:
        parser.error("--file-mb applies to v3.0 (v2.1 writes one file per episode)")
    if args.fps is not None and not (args.fps > 0 and math.isfinite(args.fps)):
        parser.error(f"--fps {args.fps} must be a positive number")
    if args.episodes is not None and args.episodes < 1:
        parser.error(f"--episodes {args.episodes} must be at least 1")
    if args.file_mb is not None and not args.file_mb > 0:
        parser.error(f"--file-mb {args.file_mb} must be positive")
    if not args.camera or "/" in args.camera:
        parser.error(f"--camera {args.camera!r}: a LeRobot feature name, non-empty and without '/'")
    try:
        export(args.src, args.out, format=args.format, version=args.version or "v3.0", codec=args.codec,
               fps=args.fps, camera=args.camera, episodes=args.episodes, file_mb=args.file_mb, crf=args.crf,
               pix_fmt=args.pix_fmt)
    except (DatasetError, FileExistsError, ValueError) as err:
        sys.exit(f"export: {err}")


if __name__ == "__main__":
    main()
