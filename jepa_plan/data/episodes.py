"""The project's episode format: one folder per episode, a manifest per data set.

    DATASET/manifest.json          format, env config, shapes, action box, episode list, stats
    DATASET/ep_000000/frames.npy   uint8   [T, H, W, 3]
    DATASET/ep_000000/actions.npy  float32 [T, A]   action taken at frame t
    DATASET/ep_000000/states.npy   float32 [T, S]   true env state at frame t (optional: diagnostics, goals)

Frames are memory-mapped, never read whole: a data set of any size trains in bounded RAM.
Every file is validated when an episode is opened, and each error names the file and what
is wrong with it. `EpisodeStore` skips bad episodes with a warning, counts them, and fails
only when more than `max_bad_fraction` of the data set is bad.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_plan.data.source import ClipConfig, DatasetError, Episode, EpisodeError, first_bad_value, report_skips

FORMAT = "jepa_plan.episodes/v1"
MANIFEST = "manifest.json"
FILES = {"frames": np.uint8, "actions": np.float32, "states": np.float32}


@dataclass
class EpisodesConfig(ClipConfig):
    """`data=episodes` (the default): the project's own format, collected from the env when missing."""

    name: str = "episodes"
    dir: str = "data/${env.name}"  # collected there if it does not exist yet
    episodes: int = 1000  # episodes to collect when `dir` is missing
    episode_steps: int = 50
    collect_seed: int = 0


def episode_name(index: int) -> str:
    return f"ep_{index:06d}"


def write_episode(path: str | Path, frames: np.ndarray, actions: np.ndarray, states: np.ndarray | None = None) -> None:
    """Write one episode folder; counts must agree, dtypes are converted to the format's."""
    path = Path(path)
    arrays = {"frames": np.asarray(frames), "actions": np.asarray(actions)}
    if states is not None:
        arrays["states"] = np.asarray(states)
    _check_counts(path, {k: len(v) for k, v in arrays.items()})
    path.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        np.save(path / f"{key}.npy", np.ascontiguousarray(array, dtype=FILES[key]))


def write_manifest(root: str | Path, manifest: dict) -> None:
    """Written last and atomically: a folder with a manifest is a complete data set."""
    root = Path(root)
    tmp = root / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(root / MANIFEST)


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"{path}: no {MANIFEST}, so {root} is not an episode data set. Create one with "
            f"`python -m jepa_plan.collect env=two_rooms episodes=1000 out={root}`, or write episodes "
            "with jepa_plan.data.episodes.write_episode and a manifest"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: unreadable manifest ({err})") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("episodes"), list):
        raise DatasetError(f"{path}: expected format {FORMAT!r} with an 'episodes' list, found {manifest.get('format')!r}")
    return manifest


def check_env(manifest: dict, where: str | Path, name: str, resolution: int) -> None:
    """Refuse a data set recorded from another env or resolution than `name` at `resolution`
    px, naming both; a manifest without an env record (data of the user's own) passes."""
    recorded = manifest.get("env")
    if not recorded:
        return
    if recorded.get("name") != name or recorded.get("resolution") != resolution:
        raise DatasetError(
            f"{where}: recorded from env {recorded.get('name')!r} at {recorded.get('resolution')} px, but this run "
            f"uses env {name!r} at {resolution} px; pass env={recorded.get('name')} "
            f"env.resolution={recorded.get('resolution')}, or point at data of this env")


def _check_counts(path: Path, counts: dict[str, int]) -> None:
    for other in ("actions", "states"):
        if other in counts and counts[other] != counts["frames"]:
            raise EpisodeError(f"{path}: frames has {counts['frames']} entries but {other} has {counts[other]}")


def _open_array(path: Path, dtype, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise EpisodeError(f"{path}: missing file")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:  # bad header, short file, pickled object: all the same to a reader
        raise EpisodeError(f"{path}: corrupt or truncated .npy ({type(err).__name__}: {err})") from None
    if array.dtype != dtype:
        raise EpisodeError(f"{path}: expected {np.dtype(dtype).name}, found {array.dtype}")
    return array


def load_episode(path: str | Path) -> Episode:
    """Open and validate one episode folder (frames memory-mapped; states.npy optional)."""
    path = Path(path)
    frames = _open_array(path / "frames.npy", np.uint8, mmap=True)
    actions = _open_array(path / "actions.npy", np.float32, mmap=False)
    states = _open_array(path / "states.npy", np.float32, mmap=False) if (path / "states.npy").exists() else None
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise EpisodeError(f"{path}/frames.npy: expected uint8 [T, H, W, 3], found shape {frames.shape}")
    counts = {"frames": len(frames)}
    for name, array in (("actions", actions), ("states", states)):
        if array is None:
            continue
        if array.ndim != 2:
            raise EpisodeError(f"{path}/{name}.npy: expected [T, dim], found shape {array.shape}")
        bad = first_bad_value(array)
        if bad:
            raise EpisodeError(f"{path}/{name}.npy: non-finite value {bad[2]} at step {bad[0]} (dim {bad[1]})")
        counts[name] = len(array)
    _check_counts(path, counts)
    return Episode(frames, actions, states)


class EpisodeStore:
    """Validated, lazily opened episodes of one data set: the `episodes` data source.

    Opening checks every episode once (headers and sizes; actions and states are small, read
    whole and kept); the frames stay on disk and are mapped again on demand, without
    re-validating. Bad episodes are skipped with a warning and listed in `skipped` as
    (name, reason). Frames are served at the size they were recorded: the manifest's
    `image_shape`, which must be square.
    """

    CACHE = 64  # frame files kept mapped (each map holds a file descriptor)

    def __init__(self, root: str | Path, max_bad_fraction: float = 0.05):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.image_shape = tuple(self.manifest.get("image_shape", ()))
        self.lengths: dict[str, int] = {}
        self.skipped: list[tuple[str, str]] = []
        self._small: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # name -> (actions, states)
        self._cache: dict[str, np.ndarray] = {}  # name -> mapped frames, most recently used last
        frame_shape = None
        for entry in self.manifest["episodes"]:
            name = entry["name"]
            try:
                episode = self._validate(name, entry)
            except EpisodeError as err:
                self.skipped.append((name, str(err)))
                continue
            self.lengths[name] = len(episode)
            self._small[name] = (episode.actions, episode.states)
            frame_shape = frame_shape or tuple(episode.frames.shape[1:])
        self.names = sorted(self.lengths)
        report_skips(self.root, self.skipped, len(self.manifest["episodes"]), max_bad_fraction)
        if not self.names:
            raise DatasetError(f"{self.root}: the manifest lists no usable episodes")
        height, width = frame_shape[:2]
        if height != width:
            raise DatasetError(f"{self.root}: frames are {height}x{width}; the episode format holds square frames "
                               "(export the data as video and read it with data=video_folder or data=lerobot to resize)")
        self.image_size = int(height)
        self.has_actions = True
        self.has_states = all(self._small[n][1] is not None for n in self.names)
        self.action_low = self.manifest.get("action_low")
        self.action_high = self.manifest.get("action_high")
        self.env = self.manifest.get("env") or None

    def _validate(self, name: str, entry: dict) -> Episode:
        episode = load_episode(self.root / name)
        if "length" in entry and entry["length"] != len(episode):
            raise EpisodeError(f"{self.root / name}: manifest says {entry['length']} frames, files hold {len(episode)}")
        if self.image_shape and tuple(episode.frames.shape[1:]) != self.image_shape:
            raise EpisodeError(f"{self.root / name}/frames.npy: frames are {episode.frames.shape[1:]}, "
                               f"manifest image_shape is {self.image_shape}")
        return episode

    def __len__(self) -> int:
        return len(self.names)

    def episode(self, name: str) -> Episode:
        if name not in self.lengths:
            raise KeyError(f"episode {name!r} is not in {self.root} (or was skipped as bad)")
        frames = self._cache.pop(name, None)
        if frames is None:  # validated when the store opened: only the map is redone
            frames = _open_array(self.root / name / "frames.npy", np.uint8, mmap=True)
        self._cache[name] = frames
        if len(self._cache) > self.CACHE:
            self._cache.pop(next(iter(self._cache)))
        actions, states = self._small[name]
        return Episode(frames, actions, states if self.has_states else None)

    def summary(self) -> str:
        lines = [f"{self.root}: {len(self.names)} episodes, {sum(self.lengths.values())} frames at "
                 f"{self.image_size} px" + (f", env {self.env.get('name')}" if self.env else "")]
        lines += [f"  skipped {item}: {reason}" for item, reason in self.skipped]
        return "\n".join(lines)

    def __getstate__(self) -> dict:
        # DataLoader workers get the index, not the mapped arrays; they map their own.
        return {**self.__dict__, "_cache": {}}
