"""The data loader against the training step, per source, worker count and frame cache (not a test).

    python benchmarks/bench_loader.py                       # two_rooms data, 200 episodes, workers 0/1/2
    python benchmarks/bench_loader.py data=data/two_rooms episodes=200 batches=40 workers=[0,1,2]
    python benchmarks/bench_loader.py memory=[10,1000]      # peak RSS against the number of videos
    python benchmarks/bench_loader.py sources=[lerobot,video_folder] workers=[0,4,8] size=full   # GPU: the full recipe's step

`sources` picks rows (episodes, lerobot, video_folder; the episode data set is needed only to
export what is missing or for its own row); `size=tiny|full` times the two_rooms benchmark
recipe's training config instead of train.yaml's.

Throughput: exports `episodes` episodes of an episode data set (collected with the default
recipe when missing) once as a LeRobot v3.0 data set (AV1, as LeRobot writes it) and as a
folder of H.264 mp4 files (`python -m jepa_plan.export`), then serves shuffled clips of the
default training config (`configs/train.yaml`: clip length, frameskip, batch size) from each
source, with and without the pre-decoded shard cache (`data.cache`), with 0, 1 and 2 DataLoader
workers, and prints clips per second beside what one encoder training step of the same config
consumes (clips per second at its measured step time, same process, same threads). A ratio
above 1 means the loader keeps up.

Memory: writes N short videos (and a LeRobot v3.0 data set of N episodes), opens each source
in a fresh process, serves 30 batches and reports the process's peak resident memory, for
each N: flat in N means nothing scales with the data set but its small index.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.vjepa import EncoderConfig, VJEPAModule  # noqa: E402
from jepa_plan.benchmark import load_recipe  # noqa: E402
from jepa_plan.config import load_config, to_container, to_dataclass  # noqa: E402
from jepa_plan.data import open_source  # noqa: E402
from jepa_plan.data.datamodule import ClipDataModule  # noqa: E402
from jepa_plan.data.shards import disk_bytes  # noqa: E402


def export(src: Path, out: Path, fmt: str, episodes: int, extra: tuple[str, ...] = ()) -> float:
    """Export once (kept for later runs); returns the seconds it took (0 when it existed)."""
    if out.exists():
        return 0.0
    started = time.time()
    subprocess.run([sys.executable, "-m", "jepa_plan.export", str(src), str(out), "--format", fmt,
                    "--episodes", str(episodes), *extra], check=True, cwd=ROOT)
    return time.time() - started


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def clips_per_second(source, cfg, workers: int, batches: int) -> tuple[float, float]:
    """(clips/s in steady state, seconds to the first batch).

    Workers prefetch two batches each while the first is on its way, so the 2 x `workers`
    batches after the first are drained untimed; then `batches` shuffled batches are timed."""
    dm = ClipDataModule(source, clip_len=cfg.data.clip_len, frameskip=cfg.data.frameskip,
                        batch_size=cfg.data.batch_size, num_workers=workers, seed=0)
    dm.setup()
    started = time.perf_counter()
    loader = iter(dm.train_dataloader())
    next(loader)
    first = time.perf_counter() - started
    if 1 + 2 * workers + batches > len(dm.train_dataloader()):
        sys.exit(f"batches={batches} with {workers} workers needs {1 + 2 * workers + batches} batches in an epoch; "
                 f"this data set has {len(dm.train_dataloader())} at batch size {cfg.data.batch_size}")
    for _ in range(2 * workers):
        next(loader)
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * cfg.data.batch_size / (time.perf_counter() - started), first


def training_clips_per_second(cfg, image_size: int, action_dim: int, steps: int = 12) -> float:
    """Clips per second one encoder training step of `cfg` consumes (synthetic batches)."""
    from benchmarks.bench_train_throughput import time_stage

    enc_cfg = asdict(to_dataclass(cfg.encoder, EncoderConfig))
    skip, clip = cfg.data.frameskip, cfg.data.clip_len
    g = torch.Generator().manual_seed(0)
    sample = {"frames": torch.randint(0, 256, (clip, 3, image_size, image_size), dtype=torch.uint8, generator=g),
              "actions": torch.randn(clip - 1, skip * action_dim, generator=g)}
    module = VJEPAModule(enc_cfg, img_size=image_size, frameskip=skip, action_dim=action_dim,
                         action_mean=[0.0] * action_dim, action_std=[1.0] * action_dim, max_steps=steps + 3)
    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16-mixed" if accelerator == "cuda" else "32-true"
    row = time_stage(module, sample, cfg.data.batch_size, precision, accelerator, warmup=3, steps=steps)
    return row["samples_per_s"]


SOURCE_KINDS = ("episodes", "lerobot", "video_folder")


def as_list(text: str) -> list[str]:
    return [item.strip() for item in text.strip("[]").split(",") if item.strip()]


def throughput(args: dict) -> None:
    size, sizes = args.get("size"), load_recipe("two_rooms")["sizes"]  # a recipe size: its config, not train.yaml's
    if size is not None and size not in sizes:
        sys.exit(f"size={size}: configs/benchmark/two_rooms.yaml has sizes {', '.join(sizes)}")
    cfg = load_config(sizes[size] if size else [])
    src = Path(args.get("data", cfg.data.dir))
    episodes = int(args.get("episodes", 200))
    batches = int(args.get("batches", 40))
    workers = [int(w) for w in as_list(args.get("workers", "[0,1,2]"))]
    kinds = as_list(args.get("sources", ",".join(SOURCE_KINDS)))
    if set(kinds) - set(SOURCE_KINDS):
        sys.exit(f"unknown sources {sorted(set(kinds) - set(SOURCE_KINDS))}; valid: {', '.join(SOURCE_KINDS)}")
    work = Path(args.get("out", "outputs/bench_loader")) / f"{src.name}_{episodes}"
    work.mkdir(parents=True, exist_ok=True)
    formats = {kind: fmt for kind, fmt in (("lerobot", "lerobot"), ("video_folder", "mp4")) if kind in kinds}
    needs_episodes = "episodes" in kinds or any(not (work / fmt).exists() for fmt in formats.values())
    if needs_episodes and not (src / "manifest.json").exists():
        subprocess.run([sys.executable, "train.py", "stage=encoder", "trainer.max_steps=0"], cwd=ROOT)  # collects
    # Each export is written once, into the folder named after its format, and reused by later runs.
    seconds = {kind: export(src, work / fmt, fmt, episodes) for kind, fmt in formats.items()}
    res = cfg.env.resolution
    sources = {
        "episodes (.npy maps)": {"name": "episodes", "dir": str(src)},
        "lerobot v3.0, AV1": {"name": "lerobot", "path": str(work / "lerobot")},
        "lerobot v3.0, AV1 + cache": {"name": "lerobot", "path": str(work / "lerobot"), "cache": str(work / "cache")},
        "video_folder, H.264": {"name": "video_folder", "path": str(work / "mp4")},
        "video_folder, H.264 + cache": {"name": "video_folder", "path": str(work / "mp4"), "cache": str(work / "cache")},
    }
    threads = torch.get_num_threads()
    train_rate = training_clips_per_second(cfg, res, action_dim=2)
    print(f"{'two_rooms size=' + size if size else 'default'} training config: clip {cfg.data.clip_len} frames, "
          f"frameskip {cfg.data.frameskip}, batch "
          f"{cfg.data.batch_size}, {res} px; one encoder step consumes {train_rate:.1f} clips/s "
          f"({'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'CPU, {threads} threads'})")
    print(f"data: {episodes} episodes of {src}; exported once in {seconds.get('lerobot', 0):.0f} s (LeRobot) and "
          f"{seconds.get('video_folder', 0):.0f} s (mp4); {batches} shuffled batches per row after the first")
    print("| source | workers | clips/s | first batch s | loader / training |")
    print("|---|---|---|---|---|")
    disk = {}
    sources = {label: spec for label, spec in sources.items() if spec["name"] in kinds}
    for label, spec in sources.items():
        data_cfg = {**to_container(cfg.data), **spec}
        if spec["name"] == "episodes":
            data_cfg.pop("cache", None)
        started = time.time()
        if "cache" in spec:  # a cache per source kind: build it once, outside the timed rows
            shutil.rmtree(work / "cache", ignore_errors=True)
        source = open_source(data_cfg, res)
        built = time.time() - started
        if "cache" in spec:
            disk[label] = (disk_bytes(source.dir), built)
        elif spec["name"] != "episodes":
            disk[label] = (folder_bytes(Path(spec["path"])), built)
        else:
            disk[label] = (folder_bytes(src), built)
        for w in workers:
            rate, first = clips_per_second(source, cfg, w, batches)
            torch.set_num_threads(threads)  # the loader may have changed it
            print(f"| {label} | {w} | {rate:.1f} | {first:.2f} | {rate / train_rate:.2f} |", flush=True)
    print("\n| source | bytes on disk (whole exported subset) | open / cache build s |")
    print("|---|---|---|")
    for label, (size, built) in disk.items():
        print(f"| {label} | {size / 1e6:.1f} MB | {built:.1f} |")


# -- memory ------------------------------------------------------------------------------------

def memory_child(kind: str, path: str) -> None:
    """Open a source, serve 30 batches, print the peak RSS (run in a fresh process)."""
    cfg = load_config([])
    source = open_source({**to_container(cfg.data), "name": kind, "path": path, "frameskip": 1}, cfg.env.resolution)
    dm = ClipDataModule(source, clip_len=2, frameskip=1, batch_size=32, num_workers=0, seed=0)
    dm.setup()
    served = 0
    while served < 30:  # a small data set runs out of batches: go round again
        for _ in dm.train_dataloader():
            served += 1
            if served == 30:
                break
    print(json.dumps({"videos": len(source.names), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def make_videos(folder: Path, n: int, frames: int = 40, size: int = 96) -> None:
    """n distinct short H.264 videos (a moving square; each its own colour and start)."""
    from jepa_plan.data.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = folder / f"clip_{i:05d}.mp4"
        if path.exists():
            continue
        video = np.zeros((frames, size, size, 3), np.uint8)
        colour, x0 = rng.integers(60, 255, 3), int(rng.integers(0, size - 16))
        for t in range(frames):
            x = (x0 + 2 * t) % (size - 16)
            video[t, 30:46, x:x + 16] = colour
        write_video(path, video, fps=10)


def measure(kind: str, path: Path) -> dict:
    child = subprocess.run([sys.executable, __file__, f"memory_child={kind}", f"path={path}"],
                           capture_output=True, text=True, cwd=ROOT)
    if child.returncode:
        sys.exit(f"the {kind} memory run on {path} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def memory(args: dict) -> None:
    """Peak RSS of a process that opens a source and serves 30 batches, per number of videos:
    a folder of N videos, and (when `data` names an episode data set with at least N episodes)
    LeRobot v3.0 and v2.1 exports of its first N episodes (v2.1: N video files)."""
    counts = [int(n) for n in args["memory"].strip("[]").split(",")]
    work = Path(args.get("out", "outputs/bench_loader")) / "memory"
    src = Path(args.get("data", load_config([]).data.dir))
    print("| source | videos (episodes) | peak RSS MB |")
    print("|---|---|---|")
    for n in counts:
        folder = work / f"videos_{n}"
        make_videos(folder, n)
        row = measure("video_folder", folder)
        print(f"| video_folder, {n} H.264 files | {row['videos']} | {row['peak_rss_mb']:.0f} |", flush=True)
        if (src / "manifest.json").exists():
            for version in ("v3.0", "v2.1"):
                out = work / f"lerobot_{version}_{n}"
                export(src, out, "lerobot", n, ("--version", version))
                row = measure("lerobot", out)
                print(f"| lerobot {version} ({src.name}) | {row['videos']} | {row['peak_rss_mb']:.0f} |", flush=True)


def main(argv: list[str]) -> None:
    args = dict(item.split("=", 1) for item in argv)
    known = {"data", "episodes", "batches", "workers", "out", "memory", "memory_child", "path", "sources", "size"}
    if set(args) - known:
        sys.exit(f"unknown keys {sorted(set(args) - known)}; valid: {', '.join(sorted(known))}")
    if "memory_child" in args:
        memory_child(args["memory_child"], args["path"])
    elif "memory" in args:
        memory(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main(sys.argv[1:])
