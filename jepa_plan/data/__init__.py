"""What training reads: data sources behind one protocol (`source`), and the clip DataModule.

    SOURCES = {name: (Class, Config)}   selected with `data=<name>` (configs/data/<name>.yaml)

`open_source(cfg, image_size)` opens the source a config names.
"""

from __future__ import annotations

from pathlib import Path

from jepa_plan.data.episodes import EpisodesConfig, EpisodeStore
from jepa_plan.data.lerobot import DEFAULT_STATE_KEY, LeRobotConfig, LeRobotSource
from jepa_plan.data.shards import ShardCache
from jepa_plan.data.source import DataSource, DatasetError
from jepa_plan.data.video_folder import EXTENSIONS, VideoFolderConfig, VideoFolderSource

SOURCES = {
    "episodes": (EpisodeStore, EpisodesConfig),
    "video_folder": (VideoFolderSource, VideoFolderConfig),
    "lerobot": (LeRobotSource, LeRobotConfig),
}


def open_source(cfg: dict, image_size: int) -> DataSource:
    """The data source `cfg` (a `data` config node as a dict) names, serving `image_size` px
    frames; an episode data set serves the size it was recorded at."""
    name = cfg.get("name", "episodes")
    if name not in SOURCES:
        raise DatasetError(f"unknown data source {name!r}; registered: {', '.join(sorted(SOURCES))}")
    bad = cfg.get("max_bad_fraction", 0.05)
    if name == "episodes":
        if cfg.get("cache"):
            raise DatasetError("data.cache applies to video sources; data=episodes is already uint8 memory-mapped")
        return EpisodeStore(cfg["dir"], max_bad_fraction=bad)
    if not cfg.get("path"):
        raise DatasetError(f"data={name} needs data.path=DIR")
    size = cfg.get("resolution") or image_size
    if name == "video_folder":
        source = VideoFolderSource(cfg["path"], size, fps=cfg.get("fps"), clip_frames=_span(cfg),
                                   max_bad_fraction=bad, decode_threads=cfg.get("decode_threads", 1),
                                   extensions=tuple(cfg.get("extensions") or EXTENSIONS))
    else:
        source = LeRobotSource(cfg["path"], size, camera=cfg.get("camera"), action_key=cfg.get("action_key", "action"),
                               state_key=cfg.get("state_key", DEFAULT_STATE_KEY), clip_frames=_span(cfg),
                               max_bad_fraction=bad, decode_threads=cfg.get("decode_threads", 1),
                               tolerance_s=cfg.get("tolerance_s", LeRobotConfig.tolerance_s))
    return ShardCache(source, cfg["cache"]) if cfg.get("cache") else source


def open_data_dir(path: str | Path, image_size: int) -> DataSource:
    """A data set given only by its folder (`plan.py data_dir=`): an episode data set
    (manifest.json) or a LeRobot one (meta/info.json)."""
    root = Path(path)
    if (root / "meta" / "info.json").is_file():
        return open_source({"name": "lerobot", "path": str(root)}, image_size)
    return EpisodeStore(root)


def _span(cfg: dict) -> int:
    return (cfg.get("clip_len", 2) - 1) * cfg.get("frameskip", 1) + 1
