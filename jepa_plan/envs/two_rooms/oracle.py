"""The two_rooms oracle: the environment's own dynamics behind the planner's WorldModel protocol.

The latent is the state itself (S = [2], the agent centre), so a planner that fails on the
oracle fails for its own reasons, not the learned model's. `step` is `step_states` copied
line for line in torch, `frameskip` times per model action, differentiable in both inputs.

Hard walls give gradient planners nothing to follow: against a wall face the x gradient is
zero and nothing says "the door is over there" (DESIGN.md calibration: gradient planners
stall against the wall). With `wall_softness > 0` the forward pass stays exact, but the
backward pass is that of a smoothed copy of the step (straight-through): every clamp and
every wall test is replaced by a softplus / sigmoid of temperature `wall_softness` (world
units). The y gradient then says that x opens up near the door rows, while predictions
never leak through a wall, so a plan cannot exploit the smoothing. `wall_softness = 0` is
the exact environment with its own (mostly zero) gradients.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from jepa_plan.envs.two_rooms.world import AGENT_COLOUR, TwoRoomsConfig, geometry, pixel_centres
from world_models.world_model import rollout_steps

# Sum of absolute RGB differences under which a pixel is the agent; the nearest other
# colour in the scene (the left floor) is 260 away.
AGENT_COLOUR_TOLERANCE = 60


def _soft_min(u: torch.Tensor, c: float, tau: float) -> torch.Tensor:
    """min(u, c), smoothed by softplus at temperature tau (tau = 0: exact)."""
    return torch.clamp(u, max=c) if tau == 0 else c - tau * F.softplus((c - u) / tau)


def _soft_max(u: torch.Tensor, c: float, tau: float) -> torch.Tensor:
    return torch.clamp(u, min=c) if tau == 0 else c + tau * F.softplus((u - c) / tau)


def _soft_clamp(u: torch.Tensor, low: float, high: float, tau: float) -> torch.Tensor:
    return _soft_max(_soft_min(u, high, tau), low, tau)


def _soft_greater(u: torch.Tensor, c: float, tau: float) -> torch.Tensor:
    """Indicator u > c as a float weight in [0, 1]; a sigmoid of temperature tau when tau > 0."""
    return (u > c).to(u.dtype) if tau == 0 else torch.sigmoid((u - c) / tau)


class TwoRoomsOracle(nn.Module):
    """Exact (or wall-smoothed) two_rooms dynamics with latent = state.

    - `encode(frames uint8 [B, T, 3, H, W]) -> [B, T, 2]`: the agent disc's centroid
      (NaN where no agent pixel is visible).
    - `step(z [..., 2], a [..., 2 * frameskip]) -> [..., 2]`: `frameskip` env steps.
    - `rollout(z0 [B, 2], actions [B, H, A]) -> [B, H, 2]`.
    Model actions are `frameskip` env actions stacked, unnormalised: the box is [-1, 1]^A.
    """

    def __init__(self, cfg: TwoRoomsConfig | None = None, frameskip: int = 1, wall_softness: float = 0.0):
        super().__init__()
        self.cfg = cfg if cfg is not None else TwoRoomsConfig()
        self.geo = geometry(self.cfg)
        if frameskip < 1:
            raise ValueError(f"TwoRoomsOracle: frameskip={frameskip} must be at least 1")
        if wall_softness < 0:
            raise ValueError(f"TwoRoomsOracle: wall_softness={wall_softness} must be >= 0")
        self.frameskip = int(frameskip)
        self.wall_softness = float(wall_softness)
        self.register_buffer("action_low", torch.full((2 * self.frameskip,), -1.0))
        self.register_buffer("action_high", torch.full((2 * self.frameskip,), 1.0))
        x, y = pixel_centres(self.cfg.resolution)
        self.register_buffer("pixel_x", torch.as_tensor(x, dtype=torch.float32))  # [W] by column
        self.register_buffer("pixel_y", torch.as_tensor(y, dtype=torch.float32))  # [H] by row
        self.register_buffer("agent_colour", torch.tensor(AGENT_COLOUR, dtype=torch.int32))

    # -- planner interface -------------------------------------------------------------
    @property
    def action_dim(self) -> int:
        return 2 * self.frameskip

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (2,)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [B, T, 3, H, W] -> agent centres [B, T, 2] (centroid of agent pixels).

        The rendered disc is symmetric about its centre up to pixel quantisation, so the
        centroid of the pixel centres it covers is within a fraction of a pixel of the state.
        """
        res = self.cfg.resolution
        if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[2:] != (3, res, res):
            raise ValueError(f"encode expects uint8 frames [B,T,3,{res},{res}], "
                             f"got {frames.dtype} {tuple(frames.shape)}")
        colour = self.agent_colour.view(3, 1, 1)
        mask = ((frames.int() - colour).abs().sum(dim=2) < AGENT_COLOUR_TOLERANCE).float()  # [B, T, H, W]
        count = mask.sum(dim=(-2, -1))
        x = (mask.sum(dim=-2) * self.pixel_x).sum(-1) / count  # column sums weighted by column x
        y = (mask.sum(dim=-1) * self.pixel_y).sum(-1) / count
        return torch.stack([x, y], dim=-1)  # 0 / 0 = NaN where the agent is not visible

    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """z [..., 2], a [..., 2 * frameskip] -> [..., 2]: the env actions of `a` applied in order."""
        if z.shape[-1] != 2 or a.shape[-1] != self.action_dim:
            raise ValueError(f"step expects z [..., 2] and a [..., {self.action_dim}], "
                             f"got {tuple(z.shape)} and {tuple(a.shape)}")
        env_actions = self.env_actions(a.to(z.dtype))
        for k in range(self.frameskip):
            z = self._env_step(z, env_actions[..., k, :])
        return z

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z0 [B, 2], actions [B, H, A] -> states [B, H, 2] (z_1..z_H)."""
        return rollout_steps(self.step, z0, actions)

    # -- conversions, as on the learned WorldModel -----------------------------------------
    def normalize_actions(self, env_actions: torch.Tensor) -> torch.Tensor:
        """env actions [..., frameskip, 2] -> model actions [..., A]."""
        return env_actions.flatten(-2)

    def env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """model actions [..., A] -> env actions [..., frameskip, 2] to execute in order."""
        return actions.unflatten(-1, (self.frameskip, 2))

    # -- dynamics ---------------------------------------------------------------------------
    def _env_step(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """One env step, s [..., 2], a [..., 2] -> [..., 2]: exact values, smoothed gradients
        when `wall_softness > 0`."""
        hard = self._walls(s, a, tau=0.0)
        if self.wall_softness == 0 or not torch.is_grad_enabled():
            return hard
        soft = self._walls(s, a, tau=self.wall_softness)
        return soft + (hard - soft).detach()  # value of `hard`, gradient of `soft`

    def _walls(self, s: torch.Tensor, a: torch.Tensor, tau: float) -> torch.Tensor:
        """`two_rooms.step_states` in torch, its clamps and tests smoothed at temperature tau.

        Axis by axis, x first, so a blocked agent slides along the wall. The side of the wall
        the agent starts on stays a hard test: it carries no useful gradient.
        """
        geo = self.geo
        # The env's action clip, written with `where` so that an action exactly on the box edge,
        # where planners clamp theirs, still gets a gradient (clamp's is zero there).
        a = torch.where(a > 1.0, 1.0, torch.where(a < -1.0, -1.0, a))
        delta = self.cfg.max_speed * a
        x, y = s[..., 0], s[..., 1]

        # x motion: the wall face stops agents outside the door rows.
        x_free = _soft_clamp(x + delta[..., 0], -geo.bound, geo.bound, tau)
        outside_door = _soft_greater(y.abs(), geo.door_y, tau)
        x_left = outside_door * _soft_min(x_free, -geo.wall_x, tau) + (1 - outside_door) * x_free
        x_right = outside_door * _soft_max(x_free, geo.wall_x, tau) + (1 - outside_door) * x_free
        x_new = torch.where(x <= -geo.wall_x, x_left, torch.where(x >= geo.wall_x, x_right, x_free))

        # y motion: inside the slab the agent is in the door corridor and must stay in it.
        y_free = _soft_clamp(y + delta[..., 1], -geo.bound, geo.bound, tau)
        in_slab = _soft_greater(-x_new.abs(), -geo.wall_x, tau)  # |x_new| < wall_x
        y_new = in_slab * _soft_clamp(y_free, -geo.door_y, geo.door_y, tau) + (1 - in_slab) * y_free
        return torch.stack([x_new, y_new], dim=-1)

