"""Run configuration: structured dataclasses validated by OmegaConf.

A run's config is built in layers, later ones winning:

    dataclass defaults  <-  configs/<preset>.yaml  <-  configs/<group>/<name>.yaml  <-  command line

Command-line items are OmegaConf dotlist overrides (`encoder.depth=4`), except that a bare
group name selects a component file (`env=two_rooms` loads `configs/env/two_rooms.yaml`).
An unknown key raises `ConfigError` naming the key; an unknown component name raises one
listing the registered names (read from each wing's own name table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from encoders import ENCODERS
from encoders.vjepa import EncoderConfig
from jepa_plan.data import SOURCES
from jepa_plan.envs import ENVS
from world_models import PREDICTORS
from world_models.config import WorldModelConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

STAGES = ("encoder", "world_model", "all")
WANDB_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A config key, value or component name is wrong; the message names it."""


@dataclass
class TrainerConfig:
    """Lightning Trainer settings shared by both stages."""

    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"  # bf16-mixed on a CUDA GPU with bf16, else 32-true
    max_steps: Optional[int] = None  # if set, caps every stage (else encoder/world_model.max_steps)
    # If set, each stage also stops after this many minutes of fitting and still writes its
    # encoder.pt / world_model.pt (Lightning's max_time). The lr schedule still runs to max_steps.
    max_minutes: Optional[float] = None
    val_check_interval: int = 250
    limit_val_batches: Optional[int] = 40  # validation batches per check (None = the whole val split)
    checkpoint_every_n_steps: int = 100
    log_every_n_steps: int = 20
    progress_bar: bool = True
    threads: Optional[int] = None  # torch CPU threads; None keeps torch's default


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline | online | disabled
    project: str = "jepa_plan"
    entity: Optional[str] = None


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class TrainConfig:
    """Everything `train.py` needs; saved resolved as `<output_dir>/config.yaml`."""

    stage: str = "all"  # encoder | world_model | all
    seed: int = 0
    # Seed search for the encoder stage: train it once per seed (same data split), each into
    # <output_dir>/encoder_seeds/seed_<s>/, and keep the run with the lowest `encoder_select`
    # (a validation metric, so no labels) as <output_dir>/encoder.pt. None: one run at `seed`.
    encoder_seeds: Optional[list] = None
    encoder_select: str = "val/loss"
    output_dir: str = "outputs/train/${env.name}"
    resume: bool = False
    env: Any = None  # the env's own config dataclass, chosen by `env=<name>`
    data: Any = None  # the data source's config dataclass, chosen by `data=<name>` (default episodes)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class PlanConfig:
    """Everything `plan.py` needs; saved resolved as `<output_dir>/config.yaml`."""

    env: Any = None  # chosen by `env=<name>`
    world_model: str = "checkpoint"  # checkpoint (a trained world_model.pt) | oracle (the env's own dynamics)
    checkpoint: Optional[str] = None  # world_model.pt written by train.py
    oracle_frameskip: int = 2  # env steps per model action, for world_model=oracle
    oracle_wall_softness: float = 0.05  # smoothed wall gradients of the oracle (0 = exact)
    planners: list = field(default_factory=lambda: ["grasp", "cem"])  # run on identical goals
    # Per-name planner settings: `planner.cem.samples=100`; a name that is not a registered
    # planner is a variant and says which one it is: `planner.grasp_cem.planner=grasp`.
    planner: dict = field(default_factory=dict)
    goals: str = "dataset"  # dataset | random | image | a goal set of the env (two_rooms: door, same_room)
    goal_offset: Optional[int] = None  # env steps from start to goal for goals=dataset; None: horizon * frameskip
    goal_image: Optional[str] = None  # for goals=image
    # goals=dataset: the goal image is the data set's frame (data) or the env's render of the goal
    # state (env, stable-worldmodel's protocol); they differ only after a lossy codec (LeRobot AV1)
    goal_frames: str = "data"
    data_dir: Optional[str] = None  # for goals=dataset; default: the data the model trained on
    episodes: int = 50
    horizon: int = 10  # model steps planned
    mode: str = "mpc"  # mpc | open_loop
    replan_every: int = 1  # model steps executed between replans (mpc)
    max_steps: int = 60  # env-step budget per episode (mpc)
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    threads: Optional[int] = None
    videos: int = -1  # GIFs per planner: -1 one per episode (about 13 KB each), N the first N, 0 none
    output_dir: str = "outputs/plan/${env.name}"
    logger: LoggerConfig = field(default_factory=LoggerConfig)


# group -> its wing's name table, {name: (class, config dataclass)}
GROUPS = {"env": ENVS, "encoder": ENCODERS, "world_model": PREDICTORS, "data": SOURCES}
DEFAULT_GROUPS = {"env": "two_rooms", "encoder": "vit", "world_model": "mlp", "data": "episodes"}


def _check_name(group: str, name: str) -> None:
    table = GROUPS[group]
    if name not in table:
        raise ConfigError(
            f"unknown {group} '{name}'; registered {group} names: {', '.join(sorted(table))}"
        )


def _split_overrides(overrides: Sequence[str], group_names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Separate group selections (`env=two_rooms`) from dotlist overrides (`encoder.depth=4`)."""
    groups, dotlist = {}, []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command-line item '{item}' is not key=value")
        key, value = item.split("=", 1)
        if key in group_names:
            groups[key] = value
        else:
            dotlist.append(item)
    return groups, dotlist


def _merge(base: DictConfig, layer: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)
    except (ConfigKeyError, ConfigAttributeError) as err:
        key = err.full_key or getattr(err, "key", "?")
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        node = OmegaConf.select(base, parent) if parent else base
        valid = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "?"
        raise ConfigError(f"unknown config key '{key}' in {source}; valid keys here: {valid}") from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"bad value for config key '{key}' in {source}: {err.msg}") from None


def _load_yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml syntax errors carry their own line numbers
        raise ConfigError(f"cannot read config file {path}: {err}") from None


def load_config(
    overrides: Sequence[str] = (),
    preset: str = "train",
    schema: type = TrainConfig,
    config_dir: Path = CONFIG_DIR,
    groups: Sequence[str] = tuple(GROUPS),
) -> DictConfig:
    """Build, validate and resolve a run config.

    `preset` names `configs/<preset>.yaml`; `overrides` are command-line items; `groups` are
    the component groups of `schema` (the others are plain keys there).
    Returns a read-only, fully resolved structured DictConfig.
    """
    selected, dotlist = _split_overrides(overrides, groups)
    preset_path = config_dir / f"{preset}.yaml"
    preset_cfg = _load_yaml(preset_path) if preset_path.exists() else OmegaConf.create({})

    cfg = OmegaConf.structured(schema)
    for group in groups:
        if group not in cfg:
            continue
        name = selected.get(group) or OmegaConf.select(preset_cfg, f"{group}.name") or DEFAULT_GROUPS[group]
        _check_name(group, name)
        group_schema = OmegaConf.structured(GROUPS[group][name][1])
        group_file = config_dir / group / f"{name}.yaml"
        if group_file.exists():
            group_schema = _merge(group_schema, _load_yaml(group_file), str(group_file))
        group_schema.name = name
        OmegaConf.update(cfg, group, group_schema, force_add=True, merge=False)

    cfg = _merge(cfg, preset_cfg, str(preset_path))
    for group, name in selected.items():  # a selection on the command line beats the preset
        if group in cfg:
            cfg[group].name = name
    cfg = _merge(cfg, OmegaConf.from_dotlist(dotlist), "the command line")

    for group in groups:
        if group in cfg:
            _check_name(group, cfg[group].name)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"cannot resolve config: {err}") from None
    _validate(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _validate(cfg: DictConfig) -> None:
    """Value checks that the types alone cannot express."""
    if "planners" in cfg:  # a planning run
        # `goals` is checked against the env's own goal sets when the env is built.
        for key, choices in (("world_model", ("checkpoint", "oracle")), ("mode", ("mpc", "open_loop"))):
            if cfg[key] not in choices:
                raise ConfigError(f"{key}='{cfg[key]}' is not one of {', '.join(choices)}")
    if "stage" in cfg and cfg.stage not in STAGES:
        raise ConfigError(f"stage='{cfg.stage}' is not one of {', '.join(STAGES)}")
    if "logger" in cfg and cfg.logger.wandb.mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode='{cfg.logger.wandb.mode}' is not one of {', '.join(WANDB_MODES)}"
        )
    if cfg.get("encoder_seeds") is not None:
        seeds = list(cfg.encoder_seeds)
        if not seeds or not all(isinstance(x, int) for x in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError(f"encoder_seeds={seeds} must be a non-empty list of distinct integers (or null)")
    if "encoder_select" in cfg and not str(cfg.encoder_select).startswith("val/"):
        raise ConfigError(f"encoder_select='{cfg.encoder_select}' must be a validation metric, 'val/<name>'")
    if "trainer" in cfg and cfg.trainer.get("max_minutes") is not None and not cfg.trainer.max_minutes > 0:
        raise ConfigError(f"trainer.max_minutes={cfg.trainer.max_minutes} must be positive (or null: no limit)")
    if "data" in cfg:
        if cfg.data.clip_len < 2:
            raise ConfigError(f"data.clip_len={cfg.data.clip_len} must be at least 2")
        if cfg.data.frameskip < 1:
            raise ConfigError(f"data.frameskip={cfg.data.frameskip} must be at least 1")
        if not 0.0 < cfg.data.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={cfg.data.val_fraction} must be in (0, 1)")
        if cfg.data.get("train_episodes") is not None and cfg.data.train_episodes < 1:
            raise ConfigError(f"data.train_episodes={cfg.data.train_episodes} must be at least 1 (or null: all)")


def to_container(cfg: DictConfig) -> dict:
    """Plain nested dict (for checkpoints, W&B and json)."""
    return OmegaConf.to_container(cfg, resolve=True)


def to_dataclass(cfg: DictConfig, cls: type) -> Any:
    """Instantiate a component's config dataclass from its (validated) node."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in to_container(cfg).items() if k in names})


def script_args(argv: list[str], defaults: dict) -> dict:
    """A script's `key=value` items over its `defaults`; an unknown key is named with the valid ones."""
    given = OmegaConf.to_container(OmegaConf.from_dotlist(list(argv)))
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SystemExit(f"unknown arguments {unknown}; valid: {sorted(defaults)}")
    return {**defaults, **given}
