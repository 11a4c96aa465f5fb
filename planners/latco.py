"""LatCo (Rybkin et al. 2021) as the GRASP paper runs it as a baseline: lifted states and
actions optimised jointly, with the gradient through F's state input, no state noise and no
sync to the true rollout. Same loss and optimiser as GRASP otherwise (planners/grasp.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from planners.grasp import GRASPConfig, GRASPPlanner


@dataclass
class LatCoConfig(GRASPConfig):
    stop_grad: bool = False
    state_noise: float = 0.0
    sync: str = "none"


class LatCoPlanner(GRASPPlanner):
    """GRASP's solver under LatCo's settings; cost trace: the lifted loss."""

    config: LatCoConfig
