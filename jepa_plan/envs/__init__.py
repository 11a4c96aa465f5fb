"""Environments by name: `ENVS = {name: (EnvClass, ConfigClass)}`, the same table shape as
`planners.PLANNERS`, `encoders.ENCODERS` and `world_models.PREDICTORS`.

`make_env(cfg)` builds the env whose `cfg.name` is registered. Every env implements the batched
protocol of `jepa_plan.envs.base.Env`. External envs import their optional packages only when
built, so this table imports without them; building one without its extra raises `MissingExtra`
with the pip command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jepa_plan.envs.base import Env, EnvConfig, MissingExtra
from jepa_plan.envs.pointmaze import PointMazeEnv, PointMazeMediumConfig, PointMazeUMazeConfig
from jepa_plan.envs.pusht import PushTConfig, PushTEnv
from jepa_plan.envs.swm_tworoom import SWMTwoRoomEnv, TwoRoomConfig
from jepa_plan.envs.two_rooms import TwoRoomsConfig, TwoRoomsEnv

ENVS: dict[str, tuple[type[Env], type[EnvConfig]]] = {
    "two_rooms": (TwoRoomsEnv, TwoRoomsConfig),
    "tworoom": (SWMTwoRoomEnv, TwoRoomConfig),
    "pointmaze_umaze": (PointMazeEnv, PointMazeUMazeConfig),
    "pointmaze_medium": (PointMazeEnv, PointMazeMediumConfig),
    "pusht": (PushTEnv, PushTConfig),
}


def env_config(cfg: Any) -> EnvConfig:
    """The registered config dataclass for `cfg`, which may already be one, or a mapping
    (dict, OmegaConf DictConfig) with a `name` key and any of the dataclass's fields.

    Raises ValueError naming the valid choices on an unknown env name or key.
    """
    name = cfg["name"] if isinstance(cfg, Mapping) else getattr(cfg, "name", None)
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r}; registered envs: {', '.join(sorted(ENVS))}")
    config_cls = ENVS[name][1]
    if isinstance(cfg, config_cls):
        return cfg
    if isinstance(cfg, Mapping):
        values = dict(cfg)
    else:
        values = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"env {name!r}: unknown config keys {unknown}; valid keys: {valid}")
    return config_cls(**values)


def make_env(cfg: Any) -> Env:
    """Build the env named by `cfg.name` from its config (dataclass or mapping)."""
    cfg = env_config(cfg)
    return ENVS[cfg.name][0](cfg)


__all__ = ["ENVS", "Env", "EnvConfig", "MissingExtra", "env_config", "make_env"]
