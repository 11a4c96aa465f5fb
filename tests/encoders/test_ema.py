import pytest
import torch
from torch import nn

from encoders import ema_update, momentum_schedule


def _pair():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online[1].running_mean.fill_(0.5)
    return target, online


def test_schedule_linear_and_clamped():
    assert momentum_schedule(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert momentum_schedule(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert momentum_schedule(500, 100, 0.99, 1.0) == pytest.approx(1.0)
    assert momentum_schedule(-5, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert momentum_schedule(3, 0, 0.99, 1.0) == 1.0


def test_exact_formula_and_buffers():
    target, online = _pair()
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * o, atol=1e-7)
    assert torch.equal(target[1].running_mean, online[1].running_mean)


def test_momentum_one_keeps_zero_copies():
    target, online = _pair()
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0)
    assert all(torch.equal(t, b) for t, b in zip(target.parameters(), before))
    ema_update(target, online, 0.0)
    assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))


def test_mismatch_raises():
    with pytest.raises(ValueError):
        ema_update(nn.Linear(3, 4), nn.Linear(4, 3), 0.5)
