"""3-D multi-block masks (V-JEPA): spatial rectangles repeated through every time step.

The target is the union of the sampled rectangles on the Hp x Wp grid, repeated at each
of the T' time steps (so the model cannot copy a masked patch from a neighbouring frame);
the context is everything else. Indices follow `encoders.vit`'s token order
`t' * Hp * Wp + h * Wp + w`.
"""

from __future__ import annotations

import math

import torch

# (num_blocks, spatial_scale, (min_aspect, max_aspect)), scaled down from V-JEPA 2's
# 8 x 0.15 + 2 x 0.7 for an 8x8 grid: the union masks about 60% of the grid on average,
# leaving a context of roughly a third after trimming to the batch minimum.
DEFAULT_BLOCKS: tuple[tuple[int, float, tuple[float, float]], ...] = (
    (4, 0.1, (0.75, 1.5)),
    (1, 0.3, (0.75, 1.5)),
)

_MAX_RESAMPLES = 10


def sample_multiblock_masks(
    batch_size: int,
    grid: tuple[int, int, int],
    blocks=DEFAULT_BLOCKS,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample context / target token indices for a batch.

    Args:
        batch_size: B.
        grid: token grid (T', Hp, Wp).
        blocks: sequence of (num_blocks, spatial_scale, (min_aspect, max_aspect)); each
            block covers about `spatial_scale * Hp * Wp` cells.
        generator: torch.Generator for reproducible masks (its device is used).

    Returns:
        context_idx Long [B, Kc] and target_idx Long [B, Kt], sorted, disjoint, the same
        spatial cells at every time step; Kc = T' * kc and Kt = T' * kt where kc, kt are
        the batch minima of the per-sample spatial counts (larger sets are trimmed at
        random, as V-JEPA does). The context is never empty.
    """
    t, h, w = grid
    if h * w < 2:
        raise ValueError(f"grid {grid} has fewer than 2 spatial cells: nothing to mask")
    if not blocks:
        raise ValueError("blocks is empty: at least one (num_blocks, scale, aspect) is needed")
    device = generator.device if generator is not None else torch.device("cpu")

    masked = _sample_union(batch_size, h, w, blocks, generator, device)  # [B, h*w] bool
    # Resample the (rare) samples whose blocks cover the whole grid.
    for _ in range(_MAX_RESAMPLES):
        full = masked.all(dim=1)
        if not full.any():
            break
        masked[full] = _sample_union(int(full.sum()), h, w, blocks, generator, device)
    # Cap: if blocks still cover everything, release one random cell to the context.
    full = masked.all(dim=1).nonzero().flatten()
    if len(full):
        cells = torch.randint(h * w, (len(full),), generator=generator, device=device)
        masked[full, cells] = False

    context_cells = _random_subset(~masked, generator)  # [B, kc]
    target_cells = _random_subset(masked, generator)  # [B, kt]
    return _repeat_in_time(context_cells, t, h * w), _repeat_in_time(target_cells, t, h * w)


def _sample_union(n, h, w, blocks, generator, device) -> torch.Tensor:
    """Union of rectangles for n samples -> bool [n, h * w] (True = target)."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    masked = torch.zeros(n, h, w, dtype=torch.bool, device=device)
    for num_blocks, scale, (min_ar, max_ar) in blocks:
        if num_blocks <= 0:
            continue
        # Aspect ratio uniform in log space so 0.5 and 2 are equally likely.
        u = torch.rand(n, num_blocks, generator=generator, device=device)
        aspect = torch.exp(math.log(min_ar) + u * (math.log(max_ar) - math.log(min_ar)))
        area = scale * h * w
        bh = torch.sqrt(area * aspect).round().clamp(1, h).long()
        bw = torch.sqrt(area / aspect).round().clamp(1, w).long()
        top = (torch.rand(n, num_blocks, generator=generator, device=device) * (h - bh + 1)).long()
        left = (torch.rand(n, num_blocks, generator=generator, device=device) * (w - bw + 1)).long()
        in_rows = (rows >= top[..., None]) & (rows < (top + bh)[..., None])  # [n, nb, h]
        in_cols = (cols >= left[..., None]) & (cols < (left + bw)[..., None])  # [n, nb, w]
        masked |= (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)
    return masked.flatten(1)


def _random_subset(members: torch.Tensor, generator) -> torch.Tensor:
    """bool [B, C] -> Long [B, k] sorted, a random subset of each row's True cells,
    k = the smallest row count."""
    k = int(members.sum(dim=1).min())
    scores = torch.rand(members.shape, generator=generator, device=members.device)
    scores[~members] = 2.0  # non-members sort last
    return scores.argsort(dim=1)[:, :k].sort(dim=1).values


def _repeat_in_time(cells: torch.Tensor, t: int, cells_per_step: int) -> torch.Tensor:
    """Long [B, k] spatial cells -> Long [B, t * k] token indices, time-major."""
    offsets = torch.arange(t, device=cells.device)[None, :, None] * cells_per_step
    return (offsets + cells[:, None, :]).flatten(1)
