"""Block-pose probes of trained encoders on Push-T episodes (not a test): can the pose be read off the latent?

    python benchmarks/probe_block_pose.py encoders=[outputs/exp/a/encoder.pt,outputs/exp/b/encoder.pt] data=data/pusht_tiny

For each `encoder.pt` (or a Lightning `last.ckpt` of the encoder stage, to probe a run mid-way), every `every`-th frame of episodes [fit_from, fit_to) and [fit_to, test_to)
of the episode store `data` is encoded alone (`embed_frames`, the mean-pooled vector the world
model and planners use). Probes fit on the first range and are scored on the second (held-out
episodes): a ridge regression (`encoders.diagnostics.RidgeProbe`, alpha 1) and a 2 x 256 GELU
MLP (AdamW, `mlp_steps` steps of 256). Targets are `PushTEnv.probe_features`: agent x / y, block
x / y, the block angle as sin / cos. Prints one markdown row of held-out R^2 per encoder.

With `nuisance_ratios=[0,10]` it also prints the ridge R^2 inside the world model's latent: the
latent projected by `world_models.latents.latent_basis` at each `world_model.nuisance_ratio`, the
basis fit as training fits it (codec-noise shifts of `nuisance_frames` frames), but on the probe's
fit frames rather than every train frame. It shows what the basis keeps of the agent and the block.

With `attentive_steps=N` it also probes the patch tokens before pooling, with V-JEPA's frozen
evaluation: an attentive probe (one learned query cross-attending, 4 heads, to the layer-normed
tokens, then a 2 x 256 GELU MLP; AdamW 1e-3, N steps of 256 frames). It tells a pose the tokens
hold but the mean loses from one the encoder never formed.

Keys: encoders (list of encoder.pt or .ckpt), data (data/pusht_tiny), fit_from (500), fit_to (900),
test_to (1000), every (5), mlp_steps (3000), device (cuda when present), seed (0),
nuisance_ratios ([]: none), nuisance_frames (4096), attentive_steps (0: none), double_angle (false:
with true, sin and cos of twice the block angle are probed too, which read the block's axis without
its direction), points (false: with true, for keypoint encoders, a table of where each point sits:
its R^2 on the agent's position, its R^2 as a point fixed on the block (linear in the block's x, y,
cos and sin of its angle), its offset from the block's origin, and how many points are fixed on the
block at distinct offsets, which is what puts the angle linearly in the latent).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.augment import CodecNoise  # noqa: E402
from encoders.diagnostics import RidgeProbe  # noqa: E402
from encoders.keypoints import KeypointEncoder  # noqa: E402
from encoders.vjepa import EncoderConfig, build_encoder  # noqa: E402
from jepa_plan.config import script_args  # noqa: E402
from jepa_plan.data.episodes import EpisodeStore, episode_name  # noqa: E402
from jepa_plan.data.source import Episode  # noqa: E402
from jepa_plan.envs.pusht import PushTEnv  # noqa: E402
from jepa_plan.training import load_encoder  # noqa: E402
from world_models.latents import encode_episodes, latent_basis, perturbation_shifts  # noqa: E402

COLUMNS = ["agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos"]


def frames_and_targets(store: EpisodeStore, indices: range, every: int):
    """The store's episodes `indices`, every `every`-th step: (episodes to encode, targets [N, 6])."""
    picked, targets = [], []
    names = PushTEnv.probe_features(np.zeros((1, 7)))[1]
    keep = [names.index(c) for c in COLUMNS]
    for i in indices:
        ep = store.episode(episode_name(i))
        if ep.states is None:
            raise SystemExit(f"{store.root}/{episode_name(i)} has no states.npy: the probe needs the block's pose")
        steps = slice(None, None, every)
        picked.append(Episode(ep.frames[steps], ep.actions[steps], ep.states[steps]))
        targets.append(PushTEnv.probe_features(np.asarray(ep.states[steps]))[0][:, keep])
    return picked, torch.from_numpy(np.concatenate(targets)).float()


def encoder_at(path: Path):
    """The context encoder of an `encoder.pt`, or of an encoder-stage Lightning checkpoint, with its step."""
    if path.suffix != ".ckpt":
        return load_encoder(path)[0], "end"
    state = torch.load(path, map_location="cpu", weights_only=False)
    hp = state["hyper_parameters"]
    encoder = build_encoder(EncoderConfig.from_dict(hp["cfg"]), hp["img_size"])
    prefix = "context_encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)})
    return encoder.requires_grad_(False).eval(), f"step {state['global_step']}"


def mlp_r2(x_fit, y_fit, x_test, y_test, steps: int, seed: int) -> list[float]:
    """Held-out R^2 per target of a 2 x 256 GELU MLP on standardised inputs and targets."""
    torch.manual_seed(seed)
    mu, sd = x_fit.mean(0), x_fit.std(0).clamp_min(1e-8)
    ym, ys = y_fit.mean(0), y_fit.std(0)
    xa, xb, ya, yb = (x_fit - mu) / sd, (x_test - mu) / sd, (y_fit - ym) / ys, (y_test - ym) / ys
    net = torch.nn.Sequential(torch.nn.Linear(xa.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                              torch.nn.GELU(), torch.nn.Linear(256, ya.shape[1])).to(xa.device)
    return fit_and_score(net, xa, ya, xb, yb, steps, weight_decay=1e-2)


def fit_and_score(net, x_fit, y_fit, x_test, y_test, steps: int, weight_decay: float) -> list[float]:
    """Train `net` on (x_fit, y_fit) by MSE (AdamW 1e-3, `steps` steps of 256) -> held-out R^2 per target."""
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=weight_decay)
    for _ in range(steps):
        i = torch.randint(0, len(x_fit), (256,), device=x_fit.device)
        loss = (net(x_fit[i]) - y_fit[i]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = torch.cat([net(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])
    return (1 - (p - y_test).pow(2).sum(0) / (y_test - y_test.mean(0)).pow(2).sum(0)).tolist()


class AttentiveProbe(torch.nn.Module):
    """Patch tokens [B, N, D] -> targets [B, S]: one learned query attends to the layer-normed tokens."""

    def __init__(self, dim: int, targets: int, heads: int = 4):
        super().__init__()
        self.query = torch.nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.norm = torch.nn.LayerNorm(dim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = torch.nn.Sequential(torch.nn.Linear(dim, 256), torch.nn.GELU(), torch.nn.Linear(256, targets))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(tokens)
        pooled, _ = self.attn(self.query.expand(len(tokens), -1, -1), tokens, tokens)
        return self.head(pooled[:, 0])


def frame_tokens(encoder, episodes: list[Episode], device: str, chunk: int = 500) -> torch.Tensor:
    """Every frame of `episodes`, each encoded alone -> its patch tokens [N, tokens, D] (before pooling)."""
    frames = torch.from_numpy(np.concatenate([np.asarray(ep.frames) for ep in episodes])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return torch.cat([encoder.frame_tokens(frames[i:i + chunk, None].to(device)).float()
                          for i in range(0, len(frames), chunk)])


def attentive_r2(t_fit, y_fit, t_test, y_test, steps: int, seed: int) -> list[float]:
    """Held-out R^2 per target of an `AttentiveProbe` trained on standardised targets."""
    torch.manual_seed(seed)
    ym, ys = y_fit.mean(0), y_fit.std(0)
    ya, yb = (y_fit - ym) / ys, (y_test - ym) / ys
    probe = AttentiveProbe(t_fit.shape[-1], ya.shape[1]).to(t_fit.device)
    return fit_and_score(probe, t_fit, ya, t_test, yb, steps, weight_decay=1e-2)


def cells(r) -> str:
    return " | ".join(f"{r[i]:.2f} / {r[i + 1]:.2f}" for i in range(0, len(r) - 1, 2))


def with_double_angle(targets: torch.Tensor) -> torch.Tensor:
    """[N, 6] COLUMNS -> [N, 8]: sin and cos of twice the block angle appended. A latent that knows the
    block's axis but not which way the stem points reads these and not sin / cos."""
    sin, cos = targets[:, 4], targets[:, 5]
    return torch.cat([targets, torch.stack([2 * sin * cos, cos**2 - sin**2], 1)], 1)


def lstsq_r2(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of each column of `targets` [N, M] on [1, features] -> (R^2 [M], coefficients [F + 1, M])."""
    x = np.c_[np.ones(len(targets)), features]
    coef = np.linalg.lstsq(x, targets, rcond=None)[0]
    return 1 - (targets - x @ coef).var(0) / np.maximum(targets.var(0), 1e-12), coef


def point_attachment(latents: np.ndarray, states: np.ndarray, side: int, rigid: float = 0.9) -> tuple[list[str], str]:
    """Where each keypoint of a keypoint encoder sits, from its latents [N, 2K] and Push-T states [N, 7].

    A point fixed on the block at offset o in the block's frame is at c + (bx, by) + R(theta) o, linear in
    (bx, by, cos theta, sin theta); its R^2 there is near 1 and the cos / sin coefficients are o, in
    pixels at `side`. The angle is linear in the points only when two or more of them are rigid on the
    block at different offsets, so the summary gives that count and the largest distance between
    their offsets. Returns (one markdown row per point, the summary line).
    """
    pose = np.c_[states[:, 2:4], np.cos(states[:, 4]), np.sin(states[:, 4])]
    r_agent = lstsq_r2(states[:, 0:2], latents)[0].reshape(-1, 2).mean(1)  # per point, over its x and y
    r_block, coef = lstsq_r2(pose, latents)
    r_block = r_block.reshape(-1, 2).mean(1)
    # Per point: the cos / sin coefficients of its x, then of its y; |offset| in pixels is their norm / sqrt 2.
    offsets = coef[3:5].T.reshape(-1, 4) * side / 2 / np.sqrt(2)
    stds = latents.reshape(len(latents), -1, 2).std(0).mean(1)
    rows = [f"| {k} | {stds[k]:.3f} | {r_agent[k]:.2f} | {r_block[k]:.2f} | {np.linalg.norm(offsets[k]):.1f} |"
            for k in range(len(stds))]
    fixed = offsets[r_block >= rigid]
    spread = max((np.linalg.norm(a - b) for a in fixed for b in fixed), default=0.0)
    return rows, (f"{len(fixed)} of {len(stds)} points rigid on the block (R^2 >= {rigid}); "
                  f"largest distance between their offsets {spread:.1f} px at {side} px")


def basis_rows(path: str, encoder, fit, test, x_fit, x_test, ratios: list[float], frames: int, device: str) -> list[str]:
    """One markdown row per nuisance ratio: the kept directions and the ridge R^2 of the projected latents."""
    with torch.no_grad():
        shifts = perturbation_shifts(encoder, fit[0], frames, CodecNoise(), device=device).cpu()
    rows = []
    for ratio in ratios:
        mean, proj, _ = latent_basis(x_fit, shifts, float(ratio))
        ridge = RidgeProbe().fit((x_fit - mean) @ proj, fit[1], alpha=1.0).r2_per_dim((x_test - mean) @ proj, test[1])
        rows.append(f"| {path} | {ratio:g} | {proj.shape[1]} of {x_fit.shape[1]} | {cells(ridge)} |")
    return rows


def main(argv: list[str]) -> None:
    args = script_args(argv, {"encoders": [], "data": "data/pusht_tiny", "fit_from": 500, "fit_to": 900,
                              "test_to": 1000, "every": 5, "mlp_steps": 3000, "device": None, "seed": 0,
                              "nuisance_ratios": [], "nuisance_frames": 4096, "attentive_steps": 0,
                              "double_angle": False, "points": False})
    if not args["encoders"]:
        raise SystemExit("give encoders=[path/to/encoder.pt,...]")
    device = args["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    store = EpisodeStore(args["data"])
    if args["test_to"] > len(store):
        raise SystemExit(f"test_to={args['test_to']} but {args['data']} holds {len(store)} episodes")
    fit = frames_and_targets(store, range(args["fit_from"], args["fit_to"]), args["every"])
    test = frames_and_targets(store, range(args["fit_to"], args["test_to"]), args["every"])
    columns = COLUMNS + ["block_sin2", "block_cos2"] if args["double_angle"] else COLUMNS
    if args["double_angle"]:
        fit, test = (fit[0], with_double_angle(fit[1])), (test[0], with_double_angle(test[1]))
    print(f"data {args['data']}: fit on {len(fit[1])} frames of episodes {args['fit_from']}-{args['fit_to'] - 1}, "
          f"score on {len(test[1])} of episodes {args['fit_to']}-{args['test_to'] - 1} (every {args['every']}th)")
    pairs = " | ".join(f"{a} / {b}" for a, b in zip(columns[::2], columns[1::2]))
    print(f"| encoder | at | ridge: {pairs} | MLP: {pairs} |")
    print("|---|---|" + "---|" * len(columns))
    basis, attentive, points = [], [], []
    for path in args["encoders"]:
        encoder, at = encoder_at(Path(path))
        with torch.no_grad():
            x_fit = encode_episodes(encoder, fit[0], device=device)["latents"].to(device)
            x_test = encode_episodes(encoder, test[0], device=device)["latents"].to(device)
        y_fit, y_test = fit[1].to(device), test[1].to(device)
        ridge = RidgeProbe().fit(x_fit.cpu(), y_fit.cpu(), alpha=1.0).r2_per_dim(x_test.cpu(), y_test.cpu())
        mlp = mlp_r2(x_fit, y_fit, x_test, y_test, args["mlp_steps"], args["seed"])
        print(f"| {path} | {at} | {cells(ridge)} | {cells(mlp)} |", flush=True)
        if args["points"]:
            if not isinstance(encoder, KeypointEncoder):
                raise SystemExit(f"points=true needs a keypoint encoder; {path} is a {type(encoder).__name__}")
            states = np.concatenate([np.asarray(ep.states) for ep in fit[0]])
            rows, summary = point_attachment(x_fit.cpu().numpy(), states, encoder.img_size)
            points.append(f"\n{path}: {summary}\n| point | std | R^2 on agent xy | R^2 rigid on block | "
                          f"offset on block (px) |\n|---|---|---|---|---|\n" + "\n".join(rows))
        if args["nuisance_ratios"]:
            basis += basis_rows(path, encoder, fit, test, x_fit.cpu(), x_test.cpu(), args["nuisance_ratios"],
                                args["nuisance_frames"], device)
        if args["attentive_steps"]:
            t_fit, t_test = frame_tokens(encoder, fit[0], device), frame_tokens(encoder, test[0], device)
            r2 = attentive_r2(t_fit, y_fit, t_test, y_test, args["attentive_steps"], args["seed"])
            attentive.append(f"| {path} | {t_fit.shape[1]} x {t_fit.shape[2]} | {cells(r2)} |")
    for table in points:
        print(table)
    if attentive:
        print(f"\nAttentive probe of the patch tokens ({args['attentive_steps']} steps):\n| encoder | tokens | {pairs} |")
        print("|---|---|---|---|---|")
        print("\n".join(attentive))
    if basis:
        print(f"\nIn the world model's latent (ridge):\n| encoder | nuisance_ratio | kept | {pairs} |")
        print("|---|---|---|---|---|---|")
        print("\n".join(basis))


if __name__ == "__main__":
    main(sys.argv[1:])
