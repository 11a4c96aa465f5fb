"""A LeRobot data set on local disk, layout v3.0 or v2.1, as a data source (`data=lerobot`).

Every path comes from `meta/info.json` (`codebase_version`, `fps`, `features`, and the
`data_path` / `video_path` templates):

    v3.0  meta/episodes/chunk-000/file-000.parquet   one row per episode: its data file, its video
                                                     file and its from/to timestamps in that video
          data/chunk-000/file-000.parquet            the rows of many episodes (timestamp, action, ...)
          videos/<camera>/chunk-000/file-000.mp4     episodes back to back: the frame of a row is
                                                     at `from_timestamp + timestamp` in the file
    v2.1  meta/episodes.jsonl                        {"episode_index", "length", ...} a line
          data/chunk-000/episode_000000.parquet      one file per episode
          videos/chunk-000/<camera>/episode_000000.mp4   the frame of a row is at its `timestamp`

Opening validates every episode in one streaming pass, data file by data file; nothing is kept
but a small record per episode (its file, row groups and rows, its video and time offset), so
memory stays flat as the data set grows. `episode(name)` reads that episode's rows (whole row
groups, the last few kept in an LRU cache) and serves its frames lazily through `VideoFrames`.

Keys (`data.camera=`, `data.action_key=`, `data.state_key=`):
- camera: None takes the only video key; with several, an error lists them.
- action_key: must exist (an error lists the keys); null serves action-free video.
- state_key: the default, `observation.state`, is used when present and its absence only turns
  states off, with a note. Any other key is an explicit choice: missing, it is an error listing
  the keys. null turns states off.

Frame matching uses LeRobot's tolerance, 1e-4 s: its timestamps are frame_index / fps and its
video timestamps exact multiples of 1 / fps, so they agree to float32 rounding. A looser one
(half a frame) would silently serve the neighbouring frame of an episode whose from_timestamp is
off by a fraction of a frame, misaligning frames and actions.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jepa_plan.data.source import ClipConfig, DatasetError, Episode, EpisodeError, first_bad_value, report_skips
from jepa_plan.data.video import VideoError, VideoFrames, VideoInfo, probe

VERSIONS = ("v3.0", "v2.1")
INFO = "meta/info.json"
DEFAULT_STATE_KEY = "observation.state"
COUNT_TOLERANCE = 1  # frames a parquet episode and its video may disagree by: rounding at the episode's end


@dataclass
class LeRobotConfig(ClipConfig):
    """`data=lerobot data.path=DIR [data.camera=observation.images.top]` (see the module docstring)."""

    name: str = "lerobot"
    path: str = ""  # the data set's root folder, holding meta/info.json
    camera: Optional[str] = None  # video key; None: the only one
    action_key: Optional[str] = "action"  # None: action-free video
    state_key: Optional[str] = DEFAULT_STATE_KEY  # the default is optional, any other key required
    resolution: Optional[int] = None  # frames served square at this size; None: the model's (env.resolution)
    tolerance_s: float = 1e-4  # LeRobot's; see the module docstring for why not looser
    decode_threads: int = 1  # per decoder; keep 1 inside DataLoader workers


@dataclass(slots=True)
class _Listed:
    """An episode as the metadata lists it, before validation."""

    index: int
    length: Optional[int]
    data: str  # parquet file, relative to the root
    video: str  # video file, relative to the root
    offset: float  # video time of timestamp 0: v3.0 from_timestamp, v2.1 0
    span: Optional[float]  # v3.0 to_timestamp - from_timestamp; None for v2.1


@dataclass(slots=True)
class _Ref:
    """Where a usable episode lies; one per episode, kept for the source's life."""

    data: str
    groups: tuple[int, int]  # the file's row groups first..last (inclusive) hold its rows
    start: int  # its first row, counted from the first of those row groups
    length: int
    video: str
    offset: float


def episode_name(index: int) -> str:
    return f"episode_{index:06d}"


class LeRobotSource:
    """The usable episodes of a LeRobot data set, frames served square at `image_size`
    (None: the camera's shorter side; resized and centre-cropped by `video.resize_frames`).

    Keys as in `LeRobotConfig` (module docstring). Episodes shorter than `clip_frames` are
    skipped like bad ones. Beyond the DataSource protocol: `version`, `fps`, `camera`,
    `action_key`, `state_key`, `action_dim`, `state_dim`, `notes` (one-line remarks such as
    states being off) and `summary()`.
    """

    CACHE = 8  # parquet row groups kept read
    ARRAYS_BYTES = 64 << 20  # per-episode timestamps, actions and states kept decoded (LRU, bytes)

    def __init__(self, path: str | Path, image_size: Optional[int] = None, camera: Optional[str] = None,
                 action_key: Optional[str] = "action", state_key: Optional[str] = DEFAULT_STATE_KEY,
                 clip_frames: int = 1, max_bad_fraction: float = 0.05, decode_threads: int = 1,
                 tolerance_s: float = 1e-4):
        if not path:
            raise DatasetError("data.path is empty: point it at a LeRobot data set folder "
                               "(the one holding meta/info.json)")
        self.root = Path(path)
        self.clip_frames, self.decode_threads, self.tolerance_s = clip_frames, decode_threads, tolerance_s
        self.info = _read_info(self.root)
        self.version = self.info["codebase_version"]
        self.fps = float(self.info["fps"])
        self.notes: list[str] = []
        features = self.info["features"]
        self.camera = _pick_camera(self.root, features, camera)
        self.action_key = _pick_key(self.root, features, action_key, "action_key", required=True)
        self.state_key = _pick_key(self.root, features, state_key, "state_key", required=state_key != DEFAULT_STATE_KEY)
        if state_key and self.state_key is None:
            self._note(f"{self.root}: no {state_key!r} feature, so episodes have no states "
                       "(state diagnostics and dataset goals are off)")
        self.action_dim = _width(features[self.action_key]) if self.action_key else None
        self.state_dim = _width(features[self.state_key]) if self.state_key else None
        self.has_actions, self.has_states = self.action_key is not None, self.state_key is not None
        height, width = _frame_shape(self.root, features[self.camera], self.camera)
        self.video_shape = (height, width)
        self.image_size = int(image_size or min(height, width))
        record = self.info.get("jepa_plan") or {}
        self.env: Optional[dict] = record.get("env")
        self.action_low, self.action_high = self._action_box(record)

        # One streaming pass, data file by data file: keep only a _Ref per usable episode
        self._refs: dict[str, _Ref] = {}
        self.skipped: list[tuple[str, str]] = []
        self._probes: OrderedDict[str, VideoInfo | str] = OrderedDict()
        total = 0
        for data, listed in self._by_data_file():
            total += len(listed)
            self._validate_file(data, listed)
        self._probes.clear()
        if total == 0:
            raise DatasetError(f"{self.root}: the metadata lists no episodes")
        report_skips(self.root, self.skipped, total, max_bad_fraction)
        self.total = total
        self.names = sorted(self._refs)
        self.lengths = {name: self._refs[name].length for name in self.names}
        self._cache: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._arrays: OrderedDict[str, tuple] = OrderedDict()
        self._arrays_bytes = 0

    # ----------------------------------------------------------------------------- serving

    def episode(self, name: str) -> Episode:
        """Frames (lazy, decoded on indexing), actions float32 [T, A] and states [T, S] of one episode."""
        ref = self._ref(name)
        arrays = self._arrays.pop(name, None)
        if arrays is None:  # the parquet rows, decoded to arrays once and kept while they fit
            rows = self._rows(ref)
            arrays = (ref.offset + _column(rows, "timestamp").astype(np.float64),
                      _matrix(rows.column(self.action_key), self.action_key, ref.data) if self.action_key else None,
                      _matrix(rows.column(self.state_key), self.state_key, ref.data) if self.state_key else None)
            self._arrays_bytes += sum(a.nbytes for a in arrays if a is not None)
        self._arrays[name] = arrays
        while self._arrays_bytes > self.ARRAYS_BYTES and len(self._arrays) > 1:
            self._arrays_bytes -= sum(a.nbytes for a in self._arrays.popitem(last=False)[1] if a is not None)
        times, actions, states = arrays
        frames = VideoFrames(self.root / ref.video, times, self.image_size, self.decode_threads, self.tolerance_s)
        return Episode(frames, actions, states)

    def summary(self) -> str:
        frames = sum(self.lengths.values())
        height, width = self.video_shape
        states = f"state dim {self.state_dim} ({self.state_key})" if self.state_key else "no states"
        actions = f"action dim {self.action_dim} ({self.action_key})" if self.action_key else "no actions"
        lines = [f"lerobot {self.version} {self.root}: {len(self.names)} of {self.total} episodes used, "
                 f"{frames} frames at {self.fps:g} fps; camera {self.camera} ({height}x{width}, served at "
                 f"{self.image_size} px); {actions}; {states}"]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)}:")
            lines += [f"    {item}: {reason}" for item, reason in self.skipped]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict(), "_arrays": OrderedDict(), "_arrays_bytes": 0}  # workers read their own

    def _ref(self, name: str) -> _Ref:
        if name not in self._refs:
            raise KeyError(f"episode {name!r} is not in {self.root} (or was skipped as bad)")
        return self._refs[name]

    def _rows(self, ref: _Ref) -> pa.Table:
        """The episode's rows: its row groups (cached) concatenated and sliced."""
        parts = []
        for group in range(ref.groups[0], ref.groups[1] + 1):
            key = (ref.data, group)
            table = self._cache.pop(key, None)
            if table is None:
                try:
                    with pq.ParquetFile(self.root / ref.data) as file:
                        table = _select(file.read_row_group(group, columns=self._columns()), self._columns(), ref.data)
                except (OSError, pa.ArrowException) as err:
                    raise EpisodeError(f"{self.root / ref.data}: unreadable parquet "
                                       f"({type(err).__name__}: {err})") from None
            self._cache[key] = table
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
            parts.append(table)
        return pa.concat_tables(parts).slice(ref.start, ref.length)

    def _columns(self) -> list[str]:
        return ["timestamp"] + [key for key in (self.action_key, self.state_key) if key]

    def _note(self, note: str) -> None:
        self.notes.append(note)
        warnings.warn(note, UserWarning, stacklevel=3)

    # ----------------------------------------------------------------------------- metadata

    def _action_box(self, record: dict) -> tuple[Optional[list[float]], Optional[list[float]]]:
        """The env's action box when our export recorded it, else the data's min/max from the stats."""
        if not self.action_key:
            return None, None
        if record.get("action_low") is not None and record.get("action_high") is not None:
            return [float(v) for v in record["action_low"]], [float(v) for v in record["action_high"]]
        stats = _read_json(self.root / "meta/stats.json", self._note)
        if stats is None and self.version == "v2.1":
            stats = _merged_episode_stats(self.root / "meta/episodes_stats.jsonl", self.action_key, self._note)
        box = (stats or {}).get(self.action_key) or {}
        try:
            low, high = (np.asarray(box[k], dtype=np.float64).ravel() for k in ("min", "max"))
        except (KeyError, TypeError, ValueError):
            return None, None
        if len(low) != self.action_dim or len(high) != self.action_dim:
            self._note(f"{self.root}/meta: action min/max have {len(low)} entries, the action has {self.action_dim}; "
                       "no action box")
            return None, None
        return low.tolist(), high.tolist()

    def _by_data_file(self) -> Iterator[tuple[str, list[_Listed]]]:
        """The listed episodes grouped by data file, in file order (one file's group at a time)."""
        listed = self._list_v30() if self.version == "v3.0" else self._list_v21()
        group: list[_Listed] = []
        for entry in listed:
            if group and entry.data != group[0].data:
                yield group[0].data, group
                group = []
            group.append(entry)
        if group:
            yield group[0].data, group

    def _list_v30(self) -> Iterator[_Listed]:
        files = sorted((self.root / "meta/episodes").glob("*/*.parquet"))
        if not files:
            raise DatasetError(f"{self.root}/meta/episodes: no chunk-*/file-*.parquet episode index, so this is not "
                               "a complete v3.0 data set")
        video = f"videos/{self.camera}"
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index", f"{video}/chunk_index",
                   f"{video}/file_index", f"{video}/from_timestamp", f"{video}/to_timestamp"]
        for path in files:
            try:
                with pq.ParquetFile(path) as file:
                    table = _select(file.read(columns=columns), columns, path)
            except (OSError, pa.ArrowException, EpisodeError) as err:
                raise DatasetError(f"{path}: unreadable episode index ({err})") from None
            rows = {name: table.column(name).to_pylist() for name in columns}
            for i in range(table.num_rows):
                index = int(rows["episode_index"][i])
                start, stop = float(rows[columns[6]][i]), float(rows[columns[7]][i])
                yield _Listed(
                    index=index, length=int(rows["length"][i]),
                    data=_template(self.info, "data_path", chunk_index=rows["data/chunk_index"][i],
                                   file_index=rows["data/file_index"][i]),
                    video=_template(self.info, "video_path", video_key=self.camera,
                                    chunk_index=rows[columns[4]][i], file_index=rows[columns[5]][i]),
                    offset=start, span=stop - start)

    def _list_v21(self) -> Iterator[_Listed]:
        path = self.root / "meta/episodes.jsonl"
        if not path.is_file():
            raise DatasetError(f"{path}: missing, so this is not a complete v2.1 data set")
        chunks = int(self.info.get("chunks_size", 1000))
        with path.open() as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    index = int(entry["episode_index"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    raise DatasetError(f"{path}:{number}: unreadable episode entry ({err})") from None
                length = entry.get("length")
                yield _Listed(
                    index=index, length=None if length is None else int(length),
                    data=_template(self.info, "data_path", episode_chunk=index // chunks, episode_index=index),
                    video=_template(self.info, "video_path", episode_chunk=index // chunks, video_key=self.camera,
                                    episode_index=index),
                    offset=0.0, span=None)

    # ----------------------------------------------------------------------------- validation

    def _validate_file(self, data: str, listed: list[_Listed]) -> None:
        """Check every episode listed in one data file; keep a _Ref for each good one."""
        path = self.root / data
        if not path.is_file():
            for entry in listed:
                self.skipped.append((episode_name(entry.index), f"{path}: missing parquet file"))
            return
        try:
            with pq.ParquetFile(path) as file:
                sizes = [file.metadata.row_group(g).num_rows for g in range(file.metadata.num_row_groups)]
                wanted = self._columns() + (["episode_index"] if self.version == "v3.0" else [])
                table = _select(file.read(columns=wanted), wanted, data)
        except (OSError, pa.ArrowException, EpisodeError) as err:
            for entry in listed:
                self.skipped.append((episode_name(entry.index), f"{path}: unreadable parquet ({err})"))
            return
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        runs = _runs(table.column("episode_index")) if self.version == "v3.0" else None
        for entry in listed:
            name = episode_name(entry.index)
            try:
                if runs is None:
                    rows = (0, table.num_rows)
                elif entry.index in runs:
                    rows = runs[entry.index]
                else:
                    raise EpisodeError(f"{path}: no rows of episode_index {entry.index} (or rows not contiguous)")
                self._refs[name] = self._check(entry, path, table.slice(rows[0], rows[1] - rows[0]), rows, bounds)
            except EpisodeError as err:
                self.skipped.append((name, str(err)))

    def _check(self, entry: _Listed, path: Path, rows: pa.Table, span: tuple[int, int], bounds: np.ndarray) -> _Ref:
        count = rows.num_rows
        if count == 0:
            raise EpisodeError(f"{path}: no rows for episode_index {entry.index}")
        if entry.length is not None and entry.length != count:
            raise EpisodeError(f"{path}: {count} rows for episode_index {entry.index}, but the episode index says "
                               f"{entry.length}")
        # Actions, states and timestamps must be finite (and timestamps increasing)
        for key in (self.action_key, self.state_key):
            if key:
                bad = first_bad_value(_matrix(rows.column(key), key, path))
                if bad is not None:
                    raise EpisodeError(f"{path}: non-finite {key} {bad[2]} at row {bad[0]} of the episode "
                                       f"(frame_index {bad[0]}), column {bad[1]}")
        stamps = _column(rows, "timestamp").astype(np.float64)
        if not np.isfinite(stamps).all() or (np.diff(stamps) <= 0).any():
            raise EpisodeError(f"{path}: timestamps of episode_index {entry.index} are not finite and increasing")

        # The video: present, readable, and holding a frame for every row
        video = self._probe(entry.video)
        tol = self.tolerance_s
        if entry.span is not None:
            spanned = round(entry.span * self.fps)
            if abs(count - spanned) > COUNT_TOLERANCE:
                raise EpisodeError(
                    f"{path}: {count} rows for episode_index {entry.index}, but its from/to_timestamp in {entry.video} "
                    f"span {spanned} frames at {self.fps:g} fps (tolerance {COUNT_TOLERANCE} frame)")
        elif abs(count - video.frames) > COUNT_TOLERANCE:
            raise EpisodeError(f"{path}: {count} rows, but {self.root / entry.video} holds {video.frames} frames "
                               f"(tolerance {COUNT_TOLERANCE} frame)")
        times = entry.offset + stamps
        last = video.start + (video.frames - 1) / video.fps  # the time of the video's last frame
        covered = int(np.count_nonzero(times <= last + tol))
        if count - covered > COUNT_TOLERANCE or times[0] < video.start - tol:
            raise EpisodeError(
                f"{self.root / entry.video}: holds frames from {video.start:.4f} s to {last:.4f} s, but episode "
                f"{entry.index}'s rows need {times[0]:.4f} s to {times[-1]:.4f} s (tolerance {COUNT_TOLERANCE} frame)")
        steps = (times - video.start) * video.fps
        off = float(np.abs(steps - np.round(steps)).max()) / video.fps
        if off > tol:
            raise EpisodeError(
                f"{self.root / entry.video}: episode {entry.index}'s frame times fall {off:.2g} s off the video's "
                f"{video.fps:g} fps frame grid (tolerance_s={tol:g})")

        if covered < self.clip_frames:
            raise EpisodeError(f"{path}: episode {entry.index} is shorter than a clip: {covered} frames, "
                               f"a clip needs {self.clip_frames}")
        first = int(np.searchsorted(bounds, span[0], side="right")) - 1
        final = int(np.searchsorted(bounds, span[0] + covered - 1, side="right")) - 1
        return _Ref(data=entry.data, groups=(first, final), start=span[0] - int(bounds[first]), length=covered,
                    video=entry.video, offset=entry.offset)

    def _probe(self, video: str) -> VideoInfo:
        """Probe each video file once (a v3.0 file holds many episodes); bad ones raise EpisodeError."""
        found = self._probes.pop(video, None)
        if found is None:
            path = self.root / video
            if not path.is_file():
                found = f"{path}: missing video file"
            else:
                try:
                    found = probe(path)
                except VideoError as err:
                    found = f"corrupt video: {err}"
        self._probes[video] = found
        while len(self._probes) > 16:
            self._probes.popitem(last=False)
        if isinstance(found, str):
            raise EpisodeError(found)
        return found


# --------------------------------------------------------------------------------- helpers


def _read_info(root: Path) -> dict:
    path = root / INFO
    if not path.is_file():
        raise DatasetError(f"{path}: missing, so {root} is not a LeRobot data set (export one with "
                           f"`python -m jepa_plan.export SRC {root} --format lerobot`)")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: unreadable ({err})") from None
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise DatasetError(f"{path}: codebase_version {version!r} is not supported; this reader knows "
                           f"{', '.join(VERSIONS)} (convert older data sets with LeRobot's converter)")
    missing = [key for key in ("fps", "features", "data_path", "video_path") if not info.get(key)]
    if missing:
        raise DatasetError(f"{path}: no {', '.join(missing)} (a data set without videos cannot serve frames)"
                           if "video_path" in missing else f"{path}: no {', '.join(missing)}")
    return info


def _read_json(path: Path, note) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        note(f"{path}: unreadable ({err}); ignored")
        return None


def _merged_episode_stats(path: Path, key: str, note) -> Optional[dict]:
    """v2.1 keeps stats per episode: the min and max of `key` over all of them, read line by line."""
    if not path.is_file():
        return None
    low = high = None
    try:
        with path.open() as lines:
            for line in lines:
                if line.strip():
                    stats = json.loads(line)["stats"][key]
                    mins = np.asarray(stats["min"], np.float64).ravel()
                    maxs = np.asarray(stats["max"], np.float64).ravel()
                    low = mins if low is None else np.minimum(low, mins)
                    high = maxs if high is None else np.maximum(high, maxs)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        note(f"{path}: unreadable {key} stats ({type(err).__name__}: {err}); no action box")
        return None
    return None if low is None else {key: {"min": low.tolist(), "max": high.tolist()}}


def _template(info: dict, field: str, **values) -> str:
    try:
        return info[field].format(**{k: int(v) if not isinstance(v, str) else v for k, v in values.items()})
    except (KeyError, IndexError, ValueError, TypeError) as err:
        raise DatasetError(f"{INFO}: its {field} template {info[field]!r} does not take "
                           f"{', '.join(values)} ({type(err).__name__}: {err})") from None


def _pick_camera(root: Path, features: dict, camera: Optional[str]) -> str:
    videos = [key for key, feature in features.items() if isinstance(feature, dict) and feature.get("dtype") == "video"]
    if not videos:
        images = [key for key, feature in features.items()
                  if isinstance(feature, dict) and feature.get("dtype") == "image"]
        raise DatasetError(f"{root / INFO}: no video features" + (
            f" (images stored in the parquet, {', '.join(images)}, are not supported)" if images else ""))
    if camera is None:
        if len(videos) > 1:
            raise DatasetError(f"{root}: several cameras; pick one with data.camera=<key>, one of: {', '.join(videos)}")
        return videos[0]
    if camera not in videos:
        raise DatasetError(f"{root}: no video key {camera!r}; data.camera must be one of: {', '.join(videos)}")
    return camera


def _pick_key(root: Path, features: dict, key: Optional[str], option: str, required: bool) -> Optional[str]:
    if key is None:
        return None
    if key in features and features[key].get("dtype") not in ("video", "image", "string"):
        return key
    if not required:
        return None
    numeric = [k for k, f in features.items()
               if isinstance(f, dict) and f.get("dtype") not in ("video", "image", "string")]
    raise DatasetError(f"{root}: no feature {key!r} for data.{option}; the numeric features are: {', '.join(numeric)}"
                       + (" (or null to leave it out)" if option == "state_key"
                          else " (or null for action-free video)"))


def _width(feature: dict) -> int:
    return int(math.prod(feature.get("shape") or [1]))


def _frame_shape(root: Path, feature: dict, camera: str) -> tuple[int, int]:
    shape, names = list(feature.get("shape") or []), list(feature.get("names") or [])
    if len(shape) != 3:
        raise DatasetError(f"{root / INFO}: feature {camera} has shape {shape}, expected [height, width, channels]")
    if "height" in names and "width" in names and len(names) == 3:
        return int(shape[names.index("height")]), int(shape[names.index("width")])
    return int(shape[0]), int(shape[1])


def _select(table: pa.Table, columns: list[str], where) -> pa.Table:
    """Those columns of the table, or EpisodeError naming the missing ones (pyarrow's
    `ParquetFile.read(columns=)` leaves out unknown names silently)."""
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise EpisodeError(f"{where}: no column {', '.join(missing)} (has {', '.join(table.column_names)})")
    return table.select(columns)


def _runs(column: pa.ChunkedArray) -> dict[int, tuple[int, int]]:
    """episode_index -> (first row, stop row) of its contiguous run; an index in two runs is left out."""
    values = column.to_numpy()
    if len(values) == 0:
        return {}
    starts = np.concatenate([[0], np.flatnonzero(np.diff(values)) + 1])
    stops = np.concatenate([starts[1:], [len(values)]])
    runs, seen = {}, set()
    for start, stop in zip(starts.tolist(), stops.tolist()):
        index = int(values[start])
        if index in seen:
            runs.pop(index, None)
        else:
            runs[index] = (start, stop)
        seen.add(index)
    return runs


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _matrix(column: pa.ChunkedArray, key: str, where) -> np.ndarray:
    """A list column (fixed-size or not) or a scalar column as float32 [rows, dim]."""
    array = column.combine_chunks()
    rows = len(array)
    if array.null_count:
        raise EpisodeError(f"{where}: {array.null_count} empty entries in column {key!r}")
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        if not pa.types.is_fixed_size_list(array.type) and rows:
            widths = pc.list_value_length(array)
            if pc.min(widths).as_py() != pc.max(widths).as_py():
                raise EpisodeError(f"{where}: column {key!r} has rows of different lengths")
        values = array.flatten()
        if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
            raise EpisodeError(f"{where}: column {key!r} holds {values.type}, expected numbers [dim]")
        return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(rows, -1)
    if not (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)):
        raise EpisodeError(f"{where}: column {key!r} holds {array.type}, expected numbers")
    return array.to_numpy(zero_copy_only=False).astype(np.float32).reshape(rows, 1)
