"""Planning-readiness diagnostics on held-out episodes.

These predict whether a planner can use the latent space (DESIGN.md calibration): the
rollout must beat repeating the last latent, a linear probe must read the state off the
latent (and off *predicted* latents), and latent distance must track true distance.
"""

from __future__ import annotations

import torch

from encoders.diagnostics import RidgeProbe, distance_rank_correlation


@torch.no_grad()
def planning_readiness(rollout, train_z: torch.Tensor, train_states: torch.Tensor, val_windows: dict,
                       val_z: torch.Tensor, val_states: torch.Tensor, ridge_alpha: float = 1.0,
                       num_pairs: int = 8192, seed: int = 0, history: int = 1,
                       groups: dict[str, list[int]] | None = None) -> dict[str, float]:
    """All diagnostics as a flat dict of floats.

    `rollout(z0 [M, D], actions [M, H, A], past_z [M, c, D] | None, past_a [M, c, A] | None)
    -> [M, H, D]` (WorldModel.rollout's signature). val_windows: "z" [M, K+1, D], "a" [M, K, A],
    "states" [M, K+1, S] (held-out episodes). A history-k model starts from the window's first k
    frames (z_0 is the last of them), so K + 1 - k steps are scored.
    `rollout_err_k`/`repeat_err_k`: mean |z_hat_k - z_k| vs |z_0 - z_k| (L1 per dim).
    `probe_err_k`/`probe_repeat_err_k`: state error of the ridge probe decoded from the
    predicted latent vs from the repeated z_0 (Euclidean, state units); with `groups`
    ({name: state columns}) also `probe_err_k_<name>` / `probe_repeat_err_k_<name>` over those
    columns alone (Push-T's block pose). Without states (S = 0: a data set that records none)
    only the latent columns are computed.
    """
    z, a, s = val_windows["z"], val_windows["a"], val_windows["states"]
    context = min(history, a.shape[1]) - 1  # frames before z_0
    past = (z[:, :context], a[:, :context]) if context else (None, None)
    z, a, s = z[:, context:], a[:, context:], s[:, context:]
    pred = rollout(z[:, 0], a, *past).float()  # [M, K - context, D]; the caller's no_grad covers it
    target = z[:, 1:]
    repeat = z[:, :1].expand_as(target)
    out: dict[str, float] = {}
    for k in range(pred.shape[1]):
        out[f"rollout_err_k{k + 1}"] = (pred[:, k] - target[:, k]).abs().mean().item()
        out[f"repeat_err_k{k + 1}"] = (repeat[:, k] - target[:, k]).abs().mean().item()
    if s.shape[-1] == 0:
        return out
    probe = RidgeProbe().fit(train_z, train_states, alpha=ridge_alpha)
    out["probe_r2"] = probe.r2(val_z, val_states)
    out["dist_spearman"] = distance_rank_correlation(val_z, val_states, num_pairs=num_pairs,
                                                     generator=torch.Generator().manual_seed(seed))
    for i, r2 in enumerate(probe.r2_per_dim(val_z, val_states)):
        out[f"probe_r2_s{i}"] = r2
    true_s = s[:, 1:]
    repeat_s = probe.predict(z[:, 0])[:, None].expand_as(true_s)
    pred_s = probe.predict(pred.flatten(0, 1)).view_as(true_s)
    for k in range(pred.shape[1]):
        out[f"probe_err_k{k + 1}"] = (pred_s[:, k] - true_s[:, k]).norm(dim=-1).mean().item()
        out[f"probe_repeat_err_k{k + 1}"] = (repeat_s[:, k] - true_s[:, k]).norm(dim=-1).mean().item()
        for name, cols in (groups or {}).items():
            out[f"probe_err_k{k + 1}_{name}"] = (pred_s[:, k, cols] - true_s[:, k, cols]).norm(dim=-1).mean().item()
            out[f"probe_repeat_err_k{k + 1}_{name}"] = (repeat_s[:, k, cols] - true_s[:, k, cols]).norm(dim=-1).mean().item()
    return out


def readiness_table(d: dict[str, float], names: list[str] | None = None) -> str:
    """The diagnostics as a printable table; `names` label the probe's state dims (s0, s1, ...)."""
    horizon = sum(1 for k in d if k.startswith("rollout_err_k"))
    states = "probe_r2" in d
    lines = ["k  latent L1 model  repeat-last  " + ("| probe state err model  repeat-last" if states
                                                  else " (no states in the data: no probe columns)")]
    for k in range(1, horizon + 1):
        row = f"{k:<2} {d[f'rollout_err_k{k}']:>14.4f}  {d[f'repeat_err_k{k}']:>11.4f}"
        if states:
            row += f"  | {d[f'probe_err_k{k}']:>21.4f}  {d[f'probe_repeat_err_k{k}']:>11.4f}"
        lines.append(row)
    if not states:
        return "\n".join(lines)
    lines.append(f"probe R^2 (state): {d['probe_r2']:.3f}    latent/true distance rank corr: {d['dist_spearman']:.3f}")
    per_dim = [d[f"probe_r2_s{i}"] for i in range(sum(1 for k in d if k.startswith("probe_r2_s")))]
    if per_dim:
        names = names if names and len(names) == len(per_dim) else [f"s{i}" for i in range(len(per_dim))]
        lines.append("probe R^2 per state dim: " + "  ".join(f"{n} {r2:.3f}" for n, r2 in zip(names, per_dim)))
    groups = sorted({k.split("_", 3)[3] for k in d if k.startswith("probe_err_k1_")})
    for group in groups:
        lines.append(f"probe err of {group} by k, model / repeat-last: " + "  ".join(
            f"k{k} {d[f'probe_err_k{k}_{group}']:.3g}/{d[f'probe_repeat_err_k{k}_{group}']:.3g}"
            for k in range(1, horizon + 1)))
    return "\n".join(lines)
