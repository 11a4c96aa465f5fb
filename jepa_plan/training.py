"""Training wiring: data -> V-JEPA encoder stage -> world-model stage -> one checkpoint file.

Files of a run, all under `output_dir`:

    config.yaml                  the fully resolved config
    encoder/csv/version_N/metrics.csv   per-step metrics, one version per attempt (also in W&B)
    encoder/checkpoints/         last.ckpt (every `trainer.checkpoint_every_n_steps`) and best.ckpt
    encoder.pt                   the trained context encoder (stage done)
    latents.pt                   cached frozen-encoder latents of every frame
    world_model/csv/, world_model/checkpoints/
    world_model.pt               what `WorldModel.from_checkpoint` loads (stage done)
    diagnostics.json             planning readiness on held-out episodes + collapse indicators
    wandb/                       offline W&B runs (`wandb sync` them later)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from encoders.augment import CodecNoise
from encoders.vjepa import EncoderConfig, VJEPAModule, build_encoder
from jepa_plan.collect import collect_episodes
from jepa_plan.config import ConfigError, load_config, to_container, to_dataclass
from jepa_plan.data import open_source
from jepa_plan.data.datamodule import ClipDataModule
from jepa_plan.data.episodes import check_env, read_manifest
from jepa_plan.data.source import DatasetError, DataSource
from jepa_plan.envs import ENVS, Env, MissingExtra
from jepa_plan.wandb_dirs import fallback_to_offline, keep_wandb_files_in, usable_wandb_mode
from world_models import WorldModel
from world_models.diagnostics import readiness_table
from world_models.latents import (LatentSplit, encode_episodes, latent_basis, perturbation_shifts, stack_actions,
                                  window_steps, windows)
from world_models.config import WorldModelConfig
from world_models.module import WorldModelModule

ENCODER_FORMAT = "jepa_plan.encoder/v1"


def log(msg: str) -> None:
    if rank_zero_only.rank == 0:
        print(f"[jepa-train] {msg}", flush=True)


# -- run directory, data ---------------------------------------------------------------------

def prepare_output_dir(cfg: DictConfig) -> Path:
    out = Path(cfg.output_dir)
    started = [p for p in ("encoder", "world_model", "encoder.pt", "world_model.pt") if (out / p).exists()]
    if started and not cfg.resume and rank_zero_only.rank == 0:
        raise ConfigError(f"output_dir={out} already holds a run ({', '.join(started)}); "
                          "pass resume=true to continue it, or choose another output_dir=")
    out.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    return out


def ensure_dataset(cfg: DictConfig) -> Path:
    """Collect the env's data set into `data.dir` unless it is already there; a data set from
    another env or resolution than the run's is refused by name."""
    root = Path(cfg.data.dir)
    if (root / "manifest.json").exists():
        try:
            check_env(read_manifest(root), root, cfg.env.name, cfg.env.resolution)
        except DatasetError as err:
            raise ConfigError(str(err)) from None
        return root
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"data.dir={root} exists but has no manifest.json; point data.dir at an episode "
                          "data set or at a new folder to collect into")
    log(f"collecting {cfg.data.episodes} episodes x {cfg.data.episode_steps} steps of {cfg.env.name} into {root}")
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    try:
        collect_episodes(to_container(cfg.env), tmp, episodes=cfg.data.episodes, steps=cfg.data.episode_steps,
                         seed=cfg.data.collect_seed)
    except MissingExtra as err:
        raise ConfigError(str(err)) from None
    try:
        tmp.rename(root)  # atomic: another process never sees half a data set
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # someone else finished first
    return root


def open_data(cfg: DictConfig) -> DataSource:
    """The run's data source (`data=<name>`), checked against the run: a data set recorded
    from another env or resolution is refused by name, and the world-model stage needs actions."""
    if cfg.data.name == "episodes":
        ensure_dataset(cfg)
    try:
        source = open_source(to_container(cfg.data), cfg.env.resolution)
        if source.env:
            check_env({"env": source.env}, source.root, cfg.env.name, cfg.env.resolution)
    except DatasetError as err:
        raise ConfigError(str(err)) from None
    if cfg.stage in ("world_model", "all") and not source.has_actions:
        raise ConfigError(f"data={cfg.data.name} ({source.root}) has no actions, so it serves encoder pretraining "
                          f"only: pass stage=encoder, or train the world model on data with actions "
                          f"(data=episodes or data=lerobot)")
    return source


def make_datamodule(cfg: DictConfig, source: DataSource) -> ClipDataModule:
    d = cfg.data
    dm = ClipDataModule(source, clip_len=d.clip_len, frameskip=d.frameskip, batch_size=d.batch_size,
                        val_fraction=d.val_fraction, num_workers=d.num_workers, seed=cfg.seed,
                        train_episodes=d.train_episodes)
    dm.setup()
    log(f"data ({cfg.data.name}) {source.summary()}")  # lists every skipped file with its reason
    log(f"split: {len(dm.train_names)} train / {len(dm.val_names)} val episodes")
    return dm


# -- Lightning pieces ------------------------------------------------------------------------

def resolve_precision(precision: str) -> str:
    """`auto`: bf16-mixed on a CUDA GPU that supports it, full fp32 elsewhere."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def make_loggers(cfg: DictConfig, out: Path, stage: str) -> list:
    # A new CSV version folder per attempt: a resumed run never overwrites the earlier metrics.
    loggers = [CSVLogger(save_dir=out / stage, name="csv")]
    mode = usable_wandb_mode(cfg.logger.wandb.mode)
    if mode != "disabled":
        keep_wandb_files_in(out)
        id_file = out / stage / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else None

        def wandb_logger(offline: bool) -> WandbLogger:
            # `mode` passed explicitly: Lightning's `offline` only sets WANDB_MODE, which W&B no
            # longer reads once an earlier run in this process has set it up (train, then plan).
            return WandbLogger(project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity,
                               name=f"{out.name}-{stage}", group=str(out), save_dir=str(out), offline=offline,
                               mode="offline" if offline else "online", id=run_id,
                               resume="allow" if run_id else None, job_type=stage)

        logger = wandb_logger(offline=mode == "offline")
        if rank_zero_only.rank == 0:
            try:
                logger.log_hyperparams(to_container(cfg))  # starts the W&B run
            except Exception as err:  # a key W&B refuses, a server that stops answering
                if mode != "online":
                    raise
                fallback_to_offline(f"wandb.init failed ({type(err).__name__}: {err})")
                logger = wandb_logger(offline=True)
                logger.log_hyperparams(to_container(cfg))
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(logger.version or "")
        loggers.append(logger)
    return loggers


def make_trainer(cfg: DictConfig, out: Path, stage: str, max_steps: int) -> L.Trainer:
    t = cfg.trainer
    ckpt_dir = str(out / stage / "checkpoints")  # a str: Path objects break weights_only resume
    callbacks = [
        # `last.ckpt` every N steps: what a resume after a crash continues from.
        ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0,
                        every_n_train_steps=t.checkpoint_every_n_steps),
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min", save_top_k=1),
    ]
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, num_nodes=t.num_nodes,
        precision=resolve_precision(t.precision), max_steps=max_steps, max_epochs=-1,
        val_check_interval=min(t.val_check_interval, max_steps), check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches if t.limit_val_batches is not None else 1.0,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar,
        logger=make_loggers(cfg, out, stage), callbacks=callbacks, num_sanity_val_steps=0,
        enable_model_summary=False, default_root_dir=out,
        max_time=None if t.max_minutes is None else timedelta(minutes=t.max_minutes))


def finish_stage(trainer: L.Trainer, stage: str, steps: int) -> None:
    """Say when `trainer.max_minutes` ended the stage early, and close the stage's W&B run so
    the next stage gets its own."""
    if trainer.global_step < steps:
        log(f"stage {stage}: stopped by trainer.max_minutes at step {trainer.global_step} of {steps}")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            logger.experiment.finish()


def resume_path(cfg: DictConfig, out: Path, stage: str) -> str | None:
    last = out / stage / "checkpoints" / "last.ckpt"
    if cfg.resume and last.exists():
        log(f"resuming {stage} from {last}")
        return str(last)
    return None


def stage_steps(cfg: DictConfig, stage_cfg: DictConfig) -> int:
    return cfg.trainer.max_steps if cfg.trainer.max_steps is not None else stage_cfg.max_steps


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


# -- stage 1: V-JEPA encoder -----------------------------------------------------------------

def train_encoder(cfg: DictConfig, dm: ClipDataModule, out: Path) -> None:
    steps = stage_steps(cfg, cfg.encoder)
    enc_cfg = asdict(to_dataclass(cfg.encoder, EncoderConfig))
    module = VJEPAModule(enc_cfg, img_size=dm.image_size, frameskip=cfg.data.frameskip,
                         action_dim=dm.action_dim, action_mean=dm.action_mean.tolist(),
                         action_std=dm.action_std.tolist(), max_steps=steps,
                         state_dim=dm.state_dim if cfg.encoder.state_supervision > 0 else 0)
    trainer = make_trainer(cfg, out, "encoder", steps)
    log(f"stage encoder: {steps} steps, precision {trainer.precision}, output {out / 'encoder'}")
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(cfg, out, "encoder"))
    finish_stage(trainer, "encoder", steps)
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        (out / "encoder_metrics.json").write_text(json.dumps(metrics, indent=2))
        # The context encoder, not the EMA target: in short runs the target lags behind
        # (DESIGN.md calibration item 3).
        atomic_save({"format": ENCODER_FORMAT, "cfg": enc_cfg, "img_size": dm.image_size,
                     "state_dict": module.context_encoder.state_dict()}, out / "encoder.pt")
    trainer.strategy.barrier()


def search_encoder_seeds(cfg: DictConfig, dm: ClipDataModule, out: Path) -> None:
    """`encoder_seeds`: the encoder stage once per seed on the same split, then the run with the
    lowest `encoder_select` becomes `<out>/encoder.pt`. Each run resumes or is skipped on its own,
    and `<out>/encoder_seeds.json` records every seed's metric and the choice."""
    key, rows = cfg.encoder_select, []
    for seed in cfg.encoder_seeds:
        sub = out / "encoder_seeds" / f"seed_{seed}"
        if cfg.resume and (sub / "encoder.pt").exists():
            log(f"encoder seed {seed} already done ({sub / 'encoder.pt'}), skipping")
        else:
            log(f"encoder seed search: seed {seed} into {sub}")
            sub.mkdir(parents=True, exist_ok=True)
            L.seed_everything(seed, workers=True, verbose=False)
            train_encoder(cfg, dm, sub)
        metrics = json.loads((sub / "encoder_metrics.json").read_text())
        if key not in metrics:
            raise ConfigError(f"encoder_select='{key}' is not one of the encoder's validation metrics "
                              f"({', '.join(sorted(metrics))}) in {sub / 'encoder_metrics.json'}")
        rows.append({"seed": seed, key: metrics[key], "encoder": str(sub / "encoder.pt")})
    best = min(rows, key=lambda row: row[key])
    log("encoder seed search (" + key + "): " + ", ".join(f"seed {r['seed']} {r[key]:.4f}" for r in rows)
        + f"; keeping seed {best['seed']}")
    if rank_zero_only.rank == 0:
        chosen = Path(best["encoder"]).parent
        shutil.copy2(chosen / "encoder_metrics.json", out / "encoder_metrics.json")
        tmp = out / "encoder.pt.tmp"
        shutil.copy(chosen / "encoder.pt", tmp)  # a fresh mtime: the latent cache must see a new encoder
        tmp.replace(out / "encoder.pt")
        (out / "encoder_seeds.json").write_text(json.dumps({"select": key, "chosen": best["seed"], "runs": rows}, indent=2))


def load_encoder(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path} not found: train the encoder first (stage=encoder or stage=all)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != ENCODER_FORMAT:
        raise ConfigError(f"{path}: expected format {ENCODER_FORMAT!r}, found {state.get('format')!r}")
    encoder = build_encoder(EncoderConfig.from_dict(state["cfg"]), state["img_size"])
    encoder.load_state_dict(state["state_dict"])
    return encoder.requires_grad_(False).eval(), state


# -- stage 2: world model --------------------------------------------------------------------

def cached_latents(encoder, dm: ClipDataModule, out: Path, shift_frames: int) -> dict:
    """Encode every train and val frame once, and the codec-noise shifts of `shift_frames` train
    frames (for the latent basis); reuse the cache while encoder.pt is unchanged."""
    cache, enc_file = out / "latents.pt", out / "encoder.pt"
    if cache.exists() and cache.stat().st_mtime >= enc_file.stat().st_mtime:
        data = torch.load(cache, weights_only=True)
        if (data.get("train_names") == list(dm.train_names) and data.get("val_names") == list(dm.val_names)
                and data.get("shift_frames") == shift_frames):
            return data
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.time()
    data = {split: encode_episodes(encoder, (dm.store.episode(n) for n in names), device=device)
            for split, names in (("train", dm.train_names), ("val", dm.val_names))}
    spread = [dm.store.episode(n) for n in dm.train_names[:: max(1, len(dm.train_names) // 64)]]
    data["shifts"] = perturbation_shifts(encoder, spread, shift_frames, CodecNoise(), device=device)
    data["shift_frames"] = shift_frames
    data["train_names"], data["val_names"] = list(dm.train_names), list(dm.val_names)
    log(f"encoded {len(data['train']['latents']) + len(data['val']['latents']) + 2 * len(data['shifts'])} "
        f"frames in {time.time() - started:.0f}s")
    if rank_zero_only.rank == 0:
        atomic_save(data, cache)
    return data


def latent_split(raw: dict, stats: dict, frameskip: int, steps: int) -> LatentSplit:
    z = (raw["latents"] - stats["latent_mean"]) @ stats["latent_proj"]
    a = (stack_actions(raw["actions"], raw["lengths"], frameskip) - stats["action_mean"]) / stats["action_std"]
    return LatentSplit(z=z, a=a, states=raw["states"], index=windows(raw["lengths"], frameskip, steps))


def split_loader(split: LatentSplit, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(range(len(split)), batch_size=min(batch_size, len(split)), shuffle=shuffle,
                      drop_last=shuffle, collate_fn=lambda rows: split.batch(torch.tensor(rows)))


def train_world_model(cfg: DictConfig, dm: ClipDataModule, out: Path) -> dict:
    encoder, enc_state = load_encoder(out / "encoder.pt")
    wm_cfg = asdict(to_dataclass(cfg.world_model, WorldModelConfig))
    raw = cached_latents(encoder, dm, out, wm_cfg["nuisance_frames"])
    mean, proj, ratios = latent_basis(raw["train"]["latents"], raw["shifts"], wm_cfg["nuisance_ratio"],
                                      wm_cfg["whiten_floor"])
    if wm_cfg["nuisance_ratio"] > 0:
        log(f"latent basis: {proj.shape[1]} of {proj.shape[0]} directions spread over the data at least "
            f"{wm_cfg['nuisance_ratio']:g}x what codec-like noise moves them (ratios {ratios[0]:.0f} .. {ratios[-1]:.1f})")
    names, groups = probe_features(dm.store, raw)
    skip = cfg.data.frameskip
    stats = {
        "latent_mean": mean,
        "latent_proj": proj,
        "action_mean": torch.as_tensor(dm.action_mean, dtype=torch.float32).repeat(skip),
        "action_std": torch.as_tensor(dm.action_std, dtype=torch.float32).repeat(skip),
    }
    horizon = window_steps(wm_cfg)
    train = latent_split(raw["train"], stats, skip, horizon)
    val = latent_split(raw["val"], stats, skip, horizon)
    if wm_cfg["whiten_floor"] > 0:
        variance = train.z.var(0)
        log(f"latent basis whitened (floor {wm_cfg['whiten_floor']:g}): {int((variance > 0.5).sum())} of "
            f"{len(variance)} principal axes at variance > 0.5")

    steps = stage_steps(cfg, cfg.world_model)
    module = WorldModelModule(wm_cfg, latent_dim=train.z.shape[1], action_dim=train.a.shape[1])
    module.diagnostics_data = {"train": train, "val": val}
    module.probe_groups = groups
    trainer = make_trainer(cfg, out, "world_model", steps)
    log(f"stage world_model: {steps} steps on {len(train)} windows, output {out / 'world_model'}")
    trainer.fit(module, split_loader(train, wm_cfg["batch_size"], True), split_loader(val, wm_cfg["batch_size"], False),
                ckpt_path=resume_path(cfg, out, "world_model"))
    finish_stage(trainer, "world_model", steps)

    result = {}
    if trainer.is_global_zero:
        module.to("cpu")
        env = to_container(cfg.env)
        low, high = action_box(dm)
        meta = {"encoder": enc_state["cfg"], "img_size": enc_state["img_size"], "predictor": wm_cfg, "env": env,
                "env_action_low": low, "env_action_high": high,
                "config": to_container(cfg), "val_names": list(dm.val_names)}
        wm = WorldModel(encoder, module.predictor, frameskip=skip, meta=meta,
                        env_action_low=torch.tensor(meta["env_action_low"]),
                        env_action_high=torch.tensor(meta["env_action_high"]), **stats)
        wm.save(out / "world_model.pt")
        result = write_diagnostics(module, out, names)
    trainer.strategy.barrier()
    return result


def action_box(dm: ClipDataModule) -> tuple[list[float], list[float]]:
    """The planner's action box: the data set's own record, else the range its train episodes span."""
    if dm.store.action_low is not None and dm.store.action_high is not None:
        return list(dm.store.action_low), list(dm.store.action_high)
    log("the data set records no action box; planning within the range of its train actions")
    return dm.action_low.tolist(), dm.action_high.tolist()


def probe_features(store: DataSource, raw: dict) -> tuple[list[str], dict[str, list[int]]]:
    """Replace the cached splits' states by what the readiness probe should read (the recorded
    env's `probe_features`, e.g. an angle as sine and cosine); -> the probe dims' names and the
    env's `PROBE_GROUPS` as column lists. Data that names no registered env keeps its states."""
    recorded = (getattr(store, "env", None) or {}).get("name")
    env_class = ENVS[recorded][0] if recorded in ENVS else Env
    names: list[str] = []
    for split in ("train", "val"):
        states = raw[split]["states"]
        if states.shape[-1]:
            features, names = env_class.probe_features(states.numpy())
            raw[split]["states"] = torch.as_tensor(np.ascontiguousarray(features), dtype=torch.float32)
    groups = {group: [names.index(n) for n in members]
              for group, members in env_class.PROBE_GROUPS.items() if set(members) <= set(names)}
    return names, groups


def write_diagnostics(module: WorldModelModule, out: Path, names: list[str]) -> dict:
    readiness = module.readiness()
    enc_file = out / "encoder_metrics.json"
    encoder_metrics = json.loads(enc_file.read_text()) if enc_file.exists() else {}
    result = {"planning_readiness": readiness, "probe_features": names, "encoder": encoder_metrics}
    (out / "diagnostics.json").write_text(json.dumps(result, indent=2))
    log("planning readiness on held-out episodes:\n" + readiness_table(readiness, names))
    if encoder_metrics:
        log("encoder (collapse indicators, last validation): "
            + ", ".join(f"{k}={v:.3f}" for k, v in sorted(encoder_metrics.items())))
    return result


# -- entry -----------------------------------------------------------------------------------

def run(cfg: DictConfig) -> dict:
    started = time.time()
    out = prepare_output_dir(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    dm = make_datamodule(cfg, open_data(cfg))
    result: dict = {}
    if cfg.stage in ("encoder", "all"):
        if cfg.resume and (out / "encoder.pt").exists():
            log(f"encoder stage already done ({out / 'encoder.pt'}), skipping")
        elif cfg.encoder_seeds:
            search_encoder_seeds(cfg, dm, out)
        else:
            train_encoder(cfg, dm, out)
    if cfg.stage in ("world_model", "all"):
        if cfg.resume and (out / "world_model.pt").exists():
            log(f"world-model stage already done ({out / 'world_model.pt'}), skipping")
        else:
            result = train_world_model(cfg, dm, out)
    done = f" (world model: {out / 'world_model.pt'})" if (out / "world_model.pt").exists() else ""
    log(f"done in {time.time() - started:.0f}s; files in {out}/{done}")
    return result


def main(argv: list[str] | None = None) -> None:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    run(cfg)
