"""Planners that optimise actions toward an encoded goal. They know only the WorldModel protocol.

`PLANNERS` maps a name to (planner class, config class); `build_planner("grasp", gamma=0.1)`
builds one and refuses unknown names and keys, naming the valid ones.
"""

from __future__ import annotations

from dataclasses import fields

from planners.base import HistoryWorldModel, Planner, PlannerConfig, PlanResult, WorldModel, model_history
from planners.cem import CEMConfig, CEMPlanner
from planners.gd import GDConfig, GDPlanner
from planners.grasp import GRASPConfig, GRASPPlanner
from planners.latco import LatCoConfig, LatCoPlanner
from planners.mppi import MPPIConfig, MPPIPlanner
from planners.objective import Objective

PLANNERS: dict[str, tuple[type[Planner], type[PlannerConfig]]] = {
    "cem": (CEMPlanner, CEMConfig),
    "mppi": (MPPIPlanner, MPPIConfig),
    "gd": (GDPlanner, GDConfig),
    "grasp": (GRASPPlanner, GRASPConfig),
    "latco": (LatCoPlanner, LatCoConfig),
}


def build_planner(name: str, **overrides) -> Planner:
    """The planner registered as `name`, its config's defaults replaced by `overrides`."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; registered planners: {sorted(PLANNERS)}")
    planner_cls, config_cls = PLANNERS[name]
    valid = [f.name for f in fields(config_cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"planner {name!r}: unknown config keys {unknown}; valid keys: {valid}")
    return planner_cls(config_cls(**overrides))


__all__ = [
    "PLANNERS", "build_planner", "Planner", "PlannerConfig", "PlanResult", "WorldModel", "HistoryWorldModel",
    "model_history", "Objective",
    "CEMPlanner", "CEMConfig", "MPPIPlanner", "MPPIConfig", "GDPlanner", "GDConfig",
    "GRASPPlanner", "GRASPConfig", "LatCoPlanner", "LatCoConfig",
]
