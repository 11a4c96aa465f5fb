"""An optional pre-decoded frame cache: decode a video source once into uint8 memory-mapped shards.

On few cores decoding is the loader's cost, and a clip of 2 frames from an AV1 file with GOP 2
still decodes up to 3 frames (more with longer GOPs). `data.cache=DIR` decodes every episode
once, sequentially, at the model's resolution, into

    DIR/<key>/shard_000.npy ...   uint8 [N, R, R, 3], episodes back to back (about 1 GiB each)
    DIR/<key>/index.json          episode -> (shard, first frame, length), written last

and serves frames from the maps afterwards. `<key>` hashes what the frames depend on (the
source's kind, folder, resolution, frame grid and episode lengths), so a changed data set or
resolution builds a new cache instead of reading a stale one. Actions and states still come
from the source. The trade (disk against clips per second) is measured by
`benchmarks/bench_loader.py`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from jepa_plan.data.source import DataSource, DatasetError, Episode, EpisodeError

SHARD_BYTES = 1 << 30
CHUNK = 256  # frames decoded per read while building


class ShardCache:
    """A `DataSource` serving `source`'s frames from pre-decoded shards (built on first use)."""

    def __init__(self, source: DataSource, cache_dir: str | Path, log=print):
        self.source = source
        self.root, self.names, self.lengths = source.root, list(source.names), dict(source.lengths)
        self.skipped = list(source.skipped)
        for attr in ("image_size", "has_actions", "has_states", "action_low", "action_high", "env"):
            setattr(self, attr, getattr(source, attr))
        self.dir = Path(cache_dir) / cache_key(source)
        if not (self.dir / "index.json").is_file():
            self._build(log)
        self.index = json.loads((self.dir / "index.json").read_text())
        for name, reason in self.index["failed"]:  # failed to decode while building: skipped
            if name in self.lengths:
                self.names.remove(name)
                del self.lengths[name]
                self.skipped.append((name, reason))
        self._maps: dict[int, np.ndarray] = {}

    def _build(self, log) -> None:
        size = self.image_size
        per_shard = max(1, SHARD_BYTES // (size * size * 3))
        shards, index, frames_in = [[]], {}, 0
        for name in self.names:  # episodes back to back, a new shard when the current is full
            if frames_in and frames_in + self.lengths[name] > per_shard:
                shards.append([])
                frames_in = 0
            index[name] = (len(shards) - 1, frames_in, self.lengths[name])
            shards[-1].append(name)
            frames_in += self.lengths[name]
        self.dir.mkdir(parents=True, exist_ok=True)
        started, failed = time.time(), []
        log(f"building the frame cache {self.dir}: {sum(self.lengths.values())} frames of {len(self.names)} "
            f"episodes in {len(shards)} shard(s)")
        for number, names in enumerate(shards):
            total = sum(self.lengths[n] for n in names)
            tmp = self.dir / f"shard_{number:03d}.npy.tmp"
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, size, size, 3))
            for name in names:
                _, first, length = index[name]
                try:
                    frames = self.source.episode(name).frames
                    for start in range(0, length, CHUNK):
                        out[first + start:first + min(start + CHUNK, length)] = frames[start:min(start + CHUNK, length)]
                except EpisodeError as err:  # it decoded at validation but not now: leave it out
                    failed.append((name, str(err)))
            out.flush()
            del out
            tmp.replace(self.dir / f"shard_{number:03d}.npy")
        for name, reason in failed:
            index.pop(name)
        (self.dir / "index.json").write_text(json.dumps({"episodes": index, "failed": failed}))
        log(f"frame cache built in {time.time() - started:.0f}s ({disk_bytes(self.dir) / 1e6:.1f} MB)")

    def _map(self, shard: int) -> np.ndarray:
        if shard not in self._maps:
            path = self.dir / f"shard_{shard:03d}.npy"
            try:
                self._maps[shard] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise DatasetError(f"{path}: unreadable frame cache ({err}); delete {self.dir} to rebuild it") from None
        return self._maps[shard]

    def episode(self, name: str) -> Episode:
        if name not in self.index["episodes"]:
            reason = dict(map(tuple, self.index["failed"])).get(name, "not in the cache")
            raise EpisodeError(f"{name}: {reason}")
        shard, first, length = self.index["episodes"][name]
        source = self.source.episode(name)
        return Episode(self._map(shard)[first:first + length], source.actions, source.states)

    def summary(self) -> str:
        return f"{self.source.summary()}\n  frames from the cache {self.dir} ({disk_bytes(self.dir) / 1e6:.1f} MB)"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}  # workers map their own


def cache_key(source: DataSource) -> str:
    """A short hash of everything the cached frames depend on."""
    described = {"kind": type(source).__name__, "root": str(Path(source.root).resolve()),
                 "size": source.image_size, "fps": getattr(source, "fps", None),
                 "camera": getattr(source, "camera", None), "lengths": sorted(source.lengths.items())}
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*") if p.is_file())
