"""Exponential moving average of a module's weights (the JEPA target encoder)."""

from __future__ import annotations

import torch
from torch import nn


def momentum_schedule(step: int, total_steps: int, start: float, end: float) -> float:
    """Linear ramp from `start` at step 0 to `end` at `total_steps`, clamped (I-JEPA's
    0.996 -> 1.0 ramp); `total_steps <= 0` gives `end`."""
    if total_steps <= 0:
        return float(end)
    frac = min(max(step / total_steps, 0.0), 1.0)
    return float(start + (end - start) * frac)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, in place, for parameters;
    buffers (e.g. norm statistics) are copied from `online`."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    target_params = list(target.parameters())
    online_params = list(online.parameters())
    if len(target_params) != len(online_params):
        raise ValueError(
            f"target has {len(target_params)} parameters but online has {len(online_params)}"
        )
    for t, o in zip(target_params, online_params):
        if t.shape != o.shape:
            raise ValueError(f"parameter shape mismatch: target {t.shape} vs online {o.shape}")
    if target_params:
        # lerp_(t, o, w) = t + w * (o - t) = (1 - w) * t + w * o with w = 1 - momentum.
        torch._foreach_lerp_(target_params, online_params, 1.0 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)
