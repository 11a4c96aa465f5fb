"""Training throughput of both stages through Lightning's Trainer, per precision (not a test).

    python benchmarks/bench_train_throughput.py                              # CPU, 32-true, the tiny recipe
    python benchmarks/bench_train_throughput.py env=two_rooms size=full precisions=[32-true,bf16-mixed]
    python benchmarks/bench_train_throughput.py env=pusht size=full action_dim=2 state_dim=7   # no env built

Builds the encoder (V-JEPA) and world-model LightningModules from a benchmark recipe's training
config (`configs/benchmark/<env>.yaml`, `sizes.<size>`), feeds each synthetic batches of the
config's shapes (frames uint8 at the env's resolution, actions, states; latents and model
actions for the world model) and times `steps` optimiser steps after `warmup`, through the same
Trainer settings training uses (accelerator, precision). Synthetic data isolates the model's
step time from the loader's; the data loader is issue 9's benchmark. Prints one table row per
(stage, precision): ms per step (median), samples per second, peak GPU memory.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from encoders.vjepa import EncoderConfig, VJEPAModule
from jepa_plan.benchmark import load_recipe
from jepa_plan.config import load_config, to_container, to_dataclass
from jepa_plan.envs import make_env
from world_models import WorldModelConfig
from world_models.latents import window_steps
from world_models.module import WorldModelModule


class Synthetic(Dataset):
    """`length` copies of one random sample (the step time does not depend on the values)."""

    def __init__(self, sample: dict[str, torch.Tensor], length: int):
        self.sample, self.length = sample, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample


class StepTimer(L.Callback):
    """Wall seconds of each training step, synchronised on CUDA."""

    def __init__(self):
        self.seconds: list[float] = []

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


def time_stage(module: L.LightningModule, sample: dict, batch_size: int, precision: str, accelerator: str,
               warmup: int, steps: int) -> dict:
    timer = StepTimer()
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=warmup + steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], limit_val_batches=0)
    loader = DataLoader(Synthetic(sample, batch_size * (warmup + steps)), batch_size=batch_size)
    if accelerator == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, loader)
    ms = 1000 * statistics.median(timer.seconds[warmup:])
    peak = torch.cuda.max_memory_allocated() / 2**30 if accelerator == "cuda" else float("nan")
    return {"ms_per_step": ms, "samples_per_s": batch_size / ms * 1000, "peak_gib": peak}


def main(argv: list[str]) -> None:
    args = dict(item.split("=", 1) for item in argv)
    env, size = args.pop("env", "two_rooms"), args.pop("size", "tiny")
    precisions = args.pop("precisions", "[32-true]").strip("[]").split(",")
    warmup, steps = int(args.pop("warmup", 5)), int(args.pop("steps", 30))
    accelerator = args.pop("accelerator", "cuda" if torch.cuda.is_available() else "cpu")
    dims = args.pop("action_dim", None), args.pop("state_dim", None)
    if args:
        sys.exit(f"unknown keys {sorted(args)}; valid: env, size, precisions, warmup, steps, accelerator, "
                 "action_dim, state_dim")
    cfg = load_config([f"env={env}", *load_recipe(env)["sizes"][size]])
    enc_cfg = asdict(to_dataclass(cfg.encoder, EncoderConfig))
    wm_cfg = asdict(to_dataclass(cfg.world_model, WorldModelConfig))
    res, skip, clip = cfg.env.resolution, cfg.data.frameskip, cfg.data.clip_len
    if None in dims:  # the env's own; both given: no env is built (a machine without its packages)
        env_obj = make_env(to_container(cfg.env))
        a_env, s_dim = env_obj.action_dim, env_obj.state_dim
    else:
        a_env, s_dim = int(dims[0]), int(dims[1])
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (clip, 3, res, res), dtype=torch.uint8, generator=g)
    encoder_sample = {"frames": frames, "actions": torch.randn(clip - 1, skip * a_env, generator=g),
                      "states": torch.randn(clip, s_dim, generator=g)}
    k = window_steps(wm_cfg)  # history-k predictors need k - 1 frames of context
    world_sample = {"z": torch.randn(k + 1, enc_cfg["dim"], generator=g),
                    "a": torch.randn(k, skip * a_env, generator=g), "states": torch.randn(k + 1, s_dim, generator=g)}

    device = torch.cuda.get_device_name(0) if accelerator == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    encoder = (f"keypoint encoder, {enc_cfg['dim'] // 2} points" if enc_cfg["name"] == "keypoints"
               else f"ViT encoder, dim {enc_cfg['dim']} depth {enc_cfg['depth']}")
    print(f"{env} size={size}: {res} px, {encoder}, clip {clip}; "
          f"predictor {wm_cfg['layers']}x{wm_cfg['hidden']}; on {device}; median of {steps} steps after {warmup}")
    print("| stage | precision | batch | ms/step | samples/s | peak GPU GiB |")
    print("|---|---|---|---|---|---|")
    for precision in precisions:
        for stage in ("encoder", "world_model"):
            torch.manual_seed(0)
            if stage == "encoder":
                module = VJEPAModule(enc_cfg, img_size=res, frameskip=skip, action_dim=a_env,
                                     action_mean=[0.0] * a_env, action_std=[1.0] * a_env,
                                     max_steps=warmup + steps)
                sample, batch = encoder_sample, cfg.data.batch_size
            else:
                module = WorldModelModule(wm_cfg, latent_dim=enc_cfg["dim"], action_dim=skip * a_env)
                sample, batch = world_sample, wm_cfg["batch_size"]
            row = time_stage(module, sample, batch, precision, accelerator, warmup, steps)
            print(f"| {stage} | {precision} | {batch} | {row['ms_per_step']:.1f} | {row['samples_per_s']:,.0f} | "
                  f"{row['peak_gib']:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
