"""Latent-quality indicators: linear decodability, distance faithfulness, collapse.

Pure torch, no Lightning, so world models and evaluation can use them too. In the
two-rooms calibration (DESIGN.md) std and effective rank looked healthy on a latent that
was useless for planning; `distance_rank_correlation` was the indicator that flagged it.
"""

from __future__ import annotations

import torch


class RidgeProbe:
    """Closed-form ridge regression from features to states, in float64.

    Features are standardised with the training mean / std; the intercept is not
    penalised (it is the training mean of the targets, since standardised features are
    centred).
    """

    def __init__(self):
        self.x_mean = self.x_std = self.weight = self.bias = None

    def fit(self, x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> "RidgeProbe":
        """x [N, D], y [N, S] -> self."""
        if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"need x [N, D] and y [N, S], got {tuple(x.shape)} and {tuple(y.shape)}")
        x, y = x.detach().double(), y.detach().double()
        self.x_mean = x.mean(dim=0)
        self.x_std = x.std(dim=0, unbiased=False).clamp_min(1e-8)
        xs = (x - self.x_mean) / self.x_std
        self.bias = y.mean(dim=0)
        gram = xs.T @ xs + alpha * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self.weight = torch.linalg.solve(gram, xs.T @ (y - self.bias))  # [D, S]
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> predictions [N, S] (float32)."""
        if self.weight is None:
            raise RuntimeError("RidgeProbe.predict called before fit")
        xs = (x.detach().double() - self.x_mean) / self.x_std
        return (xs @ self.weight + self.bias).float()

    def r2(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Coefficient of determination, pooled over output dims:
        1 - sum of squared errors / sum of squares about the per-dim mean of `y`."""
        y = y.detach().double()
        sse = ((self.predict(x).double() - y) ** 2).sum()
        sst = ((y - y.mean(dim=0)) ** 2).sum().clamp_min(1e-12)
        return float(1.0 - sse / sst)

    def r2_per_dim(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Coefficient of determination of each output dim alone (which parts of the state the
        latent carries: a position can be read while a velocity is not)."""
        y = y.detach().double()
        sse = ((self.predict(x).double() - y) ** 2).sum(dim=0)
        sst = ((y - y.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-12)
        return (1.0 - sse / sst).tolist()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """[N] -> float64 ranks, ties get their average rank."""
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2  # 1-based average rank of each value
    return average[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of a [N] and b [N] (ties averaged); 0.0 when either is
    constant, since a collapsed input carries no ordering."""
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"need two [N] tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra = _ranks(a.detach().double())
    rb = _ranks(b.detach().double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm()).item()
    if denom == 0.0:
        return 0.0
    return float((ra @ rb).item() / denom)


def distance_rank_correlation(
    z: torch.Tensor,
    states: torch.Tensor,
    num_pairs: int = 4096,
    generator: torch.Generator | None = None,
) -> float:
    """Spearman between ||z_i - z_j|| and ||s_i - s_j|| over random pairs i != j.

    z [N, D] latents, states [N, S] true states. Near 1 when latent distance orders
    pairs like true distance does (what a planner's cost relies on). Without a generator
    the pairs come from a fixed seed, so repeated validations are comparable.
    """
    if z.shape[0] != states.shape[0] or z.shape[0] < 2:
        raise ValueError(f"need matching N >= 2, got z {tuple(z.shape)}, states {tuple(states.shape)}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    n = z.shape[0]
    i = torch.randint(n, (num_pairs,), generator=generator, device=generator.device)
    j = torch.randint(n, (num_pairs,), generator=generator, device=generator.device)
    distinct = i != j
    i, j = i[distinct].to(z.device), j[distinct].to(z.device)
    z, states = z.detach().double(), states.detach().double().to(z.device)
    return spearman((z[i] - z[j]).norm(dim=1), (states[i] - states[j]).norm(dim=1))


def effective_rank(feats: torch.Tensor) -> float:
    """Roy & Vetterli effective rank of feats [N, D]: exp(entropy of the normalised
    singular values) of the centred features (a shared offset is not a dimension).
    1 for rank-one data, about D for isotropic data, 0 for constant features."""
    x = feats.detach().double().flatten(0, -2)
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    total = s.sum()
    if total <= 1e-12 * max(1.0, x.abs().max().item()):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def feature_std(feats: torch.Tensor) -> float:
    """Mean over dims of the per-dim std of the L2-normalised features [N, D].

    Scale-free: about 1/sqrt(D) for well-spread features, 0 when all features point the
    same way (collapse), whatever their norm.
    """
    x = feats.detach().float().flatten(0, -2)
    x = torch.nn.functional.normalize(x, dim=1)
    return float(x.std(dim=0, unbiased=False).mean())
