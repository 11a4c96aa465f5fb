import math

import pytest
import torch

from encoders import RidgeProbe, distance_rank_correlation, effective_rank, feature_std, spearman


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_probe_recovers_linear_map():
    g = _gen()
    x = torch.randn(400, 8, generator=g) * 3 + 1
    w = torch.randn(8, 2, generator=g)
    y = x @ w + torch.tensor([0.5, -2.0])
    probe = RidgeProbe().fit(x[:200], y[:200], alpha=1e-6)
    assert probe.predict(x[200:]).shape == (200, 2)
    assert probe.r2(x[200:], y[200:]) > 0.999


def test_probe_on_noise_scores_near_zero():
    g = _gen(1)
    x, y = torch.randn(600, 8, generator=g), torch.randn(600, 2, generator=g)
    r2 = RidgeProbe().fit(x[:300], y[:300]).r2(x[300:], y[300:])
    assert abs(r2) < 0.1


def test_probe_r2_per_dim_separates_a_readable_dim_from_an_unreadable_one():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(600, 6, generator=g)
    y = torch.stack([x[:, 0] - 2 * x[:, 3], torch.randn(600, generator=g)], dim=1)  # readable, noise
    probe = RidgeProbe().fit(x[:400], y[:400])
    readable, noise = probe.r2_per_dim(x[400:], y[400:])
    assert readable > 0.99 and noise < 0.1
    assert min(readable, noise) < probe.r2(x[400:], y[400:]) < max(readable, noise)


def test_probe_predict_before_fit_raises():
    with pytest.raises(RuntimeError):
        RidgeProbe().predict(torch.zeros(2, 2))


def test_spearman():
    a = torch.randn(100, generator=_gen())
    assert spearman(a, a.exp()) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.zeros(100)) == 0.0
    # ties are averaged: [1, 2, 2, 3] vs [1, 2, 3, 4]
    assert spearman(torch.tensor([1.0, 2, 2, 3]), torch.arange(4.0)) == pytest.approx(math.sqrt(0.9))


def test_distance_rank_correlation():
    g = _gen(2)
    states = torch.rand(300, 2, generator=g)
    rotation = torch.linalg.qr(torch.randn(16, 16, generator=g)).Q[:, :2]
    z = states @ rotation.T * 5  # an isometry up to scale
    assert distance_rank_correlation(z, states, num_pairs=1000) > 0.99
    noise = torch.randn(300, 16, generator=g)
    assert abs(distance_rank_correlation(noise, states, num_pairs=1000)) < 0.15


def test_effective_rank():
    g = _gen(3)
    assert effective_rank(torch.randn(4000, 16, generator=g)) > 15.0
    rank1 = torch.randn(500, 1, generator=g) * torch.randn(1, 16, generator=g)
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(torch.ones(50, 8)) == 0.0


def test_feature_std():
    assert feature_std(torch.ones(50, 8) * 3) == 0.0
    spread = feature_std(torch.randn(2000, 16, generator=_gen(4)))
    assert spread == pytest.approx(1 / math.sqrt(16), rel=0.1)
