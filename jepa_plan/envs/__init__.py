"""Environments by name: `make_env(cfg)` builds the env whose `cfg.name` is registered here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from jepa_plan.envs.two_rooms import TwoRoomsConfig, TwoRoomsEnv

ENVS: dict[str, type[gym.Env]] = {"two_rooms": TwoRoomsEnv}
ENV_CONFIGS: dict[str, type] = {"two_rooms": TwoRoomsConfig}


def env_config(cfg: Any):
    """The registered config dataclass for `cfg`, which may already be one, or a mapping
    (dict, OmegaConf DictConfig) with a `name` key and any of the dataclass's fields.

    Raises ValueError naming the valid choices on an unknown env name or key.
    """
    name = cfg["name"] if isinstance(cfg, Mapping) else getattr(cfg, "name", None)
    if name not in ENV_CONFIGS:
        raise ValueError(f"unknown env name {name!r}; registered envs: {sorted(ENV_CONFIGS)}")
    config_cls = ENV_CONFIGS[name]
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


def make_env(cfg: Any) -> gym.Env:
    """Build the env named by `cfg.name` from its config (dataclass or mapping)."""
    cfg = env_config(cfg)
    return ENVS[cfg.name](cfg)
