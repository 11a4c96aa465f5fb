"""The cost of one GRASP iteration against one batched predictor forward+backward (not a test).

One GRASP iteration (`GRASPPlanner.lifted_step`) evaluates all B x T transitions in one
batched `wm.step` call, backpropagates, takes one Adam step and adds noise to the states.
The floor is one batched predictor forward+backward over the same B x T transitions; this
script times both and splits the iteration into its parts (lifted_terms forward, backward,
zero_grad, Adam step, noise; "rest" = the iteration minus its parts: Python and autograd
overhead), times the Adam variants and the noise with and without a preallocated buffer, and
the iteration under `compile=true` (torch.compile of lifted_terms), checked against eager.

    python benchmarks/bench_grasp_iteration.py          # fresh default-size MLP world model, B=50, T=30, 1 thread
    python benchmarks/bench_grasp_iteration.py checkpoint=outputs/train/two_rooms/world_model.pt
    python benchmarks/bench_grasp_iteration.py world_model=oracle
    python benchmarks/bench_grasp_iteration.py batch=[10,50,200] horizon=[15,30] compile=false
    python benchmarks/bench_grasp_iteration.py planner.state_noise=0.005 planner.lr_actions=0.005

Keys (IterationConfig; an unknown key fails naming the valid ones): world_model (mlp: a
freshly built predictor of the default training config's size, 128-dim latent, 4-dim
actions | oracle: the oracle of `env` (two_rooms), frameskip 2, wall softness 0.05 | checkpoint),
checkpoint, batch, horizon (ints or lists to sweep), planner (GRASPConfig overrides; default
the authors' code defaults: state noise 0.01, no clipping), devices (cpu, and cuda when a GPU
is present), threads (1), warmup, blocks, repeats (ms per call = median over `blocks` of the
mean over `repeats` calls), compile (also time the compiled iteration), seed, output_dir.
On CUDA every call is synchronised and the model runs under bf16 autocast (`model_step`).

Writes `<output_dir>/iteration.md` (default outputs/bench/grasp_iteration). Timings are only
meaningful on an otherwise idle machine: run nothing else beside it.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from omegaconf import ListConfig

from jepa_plan.config import ConfigError, load_config, to_container
from jepa_plan.envs import make_env
from planners import GRASPPlanner, build_planner
from planners.base import model_step, randn, start_actions
from world_models import PREDICTORS, CheckpointError, WorldModel

WORLD_MODELS = ("mlp", "oracle", "checkpoint")
TARGET = 1.5  # acceptance: one iteration costs at most 1.5x one batched forward+backward on CPU


@dataclass
class IterationConfig:
    world_model: str = "mlp"  # mlp (fresh, default size) | oracle | checkpoint
    env: str = "two_rooms"  # whose oracle, for world_model=oracle
    checkpoint: Optional[str] = None  # a world_model.pt; implies world_model=checkpoint
    batch: Any = 50  # episodes B (int or list)
    horizon: Any = 30  # transitions per episode T (int or list)
    planner: dict = field(default_factory=dict)  # GRASPConfig overrides
    devices: list = field(default_factory=lambda: ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    threads: int = 1
    warmup: int = 10
    blocks: int = 5
    repeats: int = 20
    compile: bool = True
    seed: int = 0
    output_dir: str = "outputs/bench/grasp_iteration"


# ----------------------------------------------------------------------------- world model and inputs


def fresh_world_model(latent_dim: int = 128, frameskip: int = 2) -> WorldModel:
    """A WorldModel of the default training config's size (MLP predictor 512 x 3, action embed 64,
    EncoderConfig.dim = 128 pooled latent, actions = frameskip 2 x 2), random weights. Only
    `step` is timed, so the encoder is a one-block stub."""
    from world_models import WorldModelConfig

    wm_cfg = WorldModelConfig()
    action_dim = 2 * frameskip
    predictor = PREDICTORS[wm_cfg.name][0](latent_dim, action_dim, hidden=wm_cfg.hidden, layers=wm_cfg.layers,
                                        action_embed=wm_cfg.action_embed)
    torch.nn.init.normal_(predictor.mlp[-1].weight, std=0.01)  # not the identity map it starts as
    return stub_world_model(predictor, latent_dim, env_action_dim=2, frameskip=frameskip)


def stub_world_model(predictor: torch.nn.Module, latent_dim: int, env_action_dim: int, frameskip: int) -> WorldModel:
    """`predictor` in a WorldModel with identity latent and action normalisation, a [-1, 1] env
    action box and a one-block stub encoder: enough to plan through `step`, nothing to encode."""
    from encoders import VideoViT

    action_dim = frameskip * env_action_dim
    encoder = VideoViT(img_size=16, patch_size=8, dim=latent_dim, depth=1, heads=2, mlp_ratio=2.0)
    return WorldModel(encoder, predictor, latent_mean=torch.zeros(latent_dim), latent_proj=torch.eye(latent_dim),
                      action_mean=torch.zeros(action_dim), action_std=torch.ones(action_dim),
                      env_action_low=-torch.ones(env_action_dim), env_action_high=torch.ones(env_action_dim),
                      frameskip=frameskip, meta={})


def load_model(cfg, device: torch.device):
    """-> (world model on `device`, its name for the header, latent shape S)."""
    source = "checkpoint" if cfg.checkpoint else cfg.world_model
    if source == "checkpoint":
        if not cfg.checkpoint:
            raise ConfigError("world_model=checkpoint needs checkpoint=PATH (a world_model.pt from train.py)")
        wm = WorldModel.from_checkpoint(cfg.checkpoint, map_location=device)
        return wm, f"checkpoint {cfg.checkpoint}", wm.latent_shape
    if source == "oracle":
        oracle = make_env({"name": cfg.env}).oracle(frameskip=2, wall_softness=0.05)
        return oracle.to(device), f"{cfg.env} oracle", oracle.latent_shape
    wm = fresh_world_model().to(device)
    return wm, "fresh MLP predictor (default size, random weights)", wm.latent_shape


def start_and_goal(source: str, shape: tuple[int, ...], batch: int, device: torch.device,
                   seed: int, env: str = "two_rooms") -> tuple[torch.Tensor, torch.Tensor]:
    """z0, goal [B, *S]: the env's valid states for its oracle, standard normal latents otherwise."""
    if source == "oracle":
        rng = np.random.default_rng(seed)
        sampler = make_env({"name": env})
        pair = [torch.from_numpy(sampler.sample_states(rng, batch)) for _ in range(2)]
        return pair[0].to(device), pair[1].to(device)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *shape, generator=g).to(device), torch.randn(batch, *shape, generator=g).to(device)


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, warmup: int, blocks: int, repeats: int,
              setup: Callable[[], Any] | None = None) -> float:
    """Seconds per call of `fn`: the median over `blocks` of the mean over `repeats` calls, after
    `warmup` calls. `setup` runs before each call, outside the timed region."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    sync(device)
    means = []
    for _ in range(blocks):
        total = 0.0
        if setup is None:  # one timed region per block: no per-call timer overhead
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            sync(device)
            total = time.perf_counter() - start
        else:
            for _ in range(repeats):
                setup()
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                total += time.perf_counter() - start
        means.append(total / repeats)
    return statistics.median(means)


class Problem:
    """One GRASP search's variables, set up as `GRASPPlanner.search` does: states [B, T - 1, *S]
    and actions [B, T, A] requiring grad, the planner's Adam, a noise buffer, a generator."""

    def __init__(self, planner: GRASPPlanner, wm, z0: torch.Tensor, goal: torch.Tensor, horizon: int, seed: int):
        self.planner, self.wm, self.z0, self.goal = planner, wm, z0, goal
        device = z0.device
        self.low, self.high = wm.action_low.to(device), wm.action_high.to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.actions = start_actions(None, z0.shape[0], horizon, self.low, self.high).requires_grad_(True)
        self.states = planner.initial_states(wm, z0, goal, self.actions, self.generator).requires_grad_(True)
        self.optimiser = planner.optimiser(self.states, self.actions)
        self.noise = torch.empty_like(self.states)
        self.loss = None

    def step(self) -> torch.Tensor:
        with torch.enable_grad():
            return self.planner.lifted_step(self.wm, self.z0, self.goal, self.states, self.actions, self.optimiser,
                                            self.noise, self.generator, self.low, self.high)[0]

    def forward(self) -> None:
        """lifted_terms and the loss, as lifted_step computes them (graph kept for `backward`)."""
        with torch.enable_grad():
            defect, goal_term = self.planner.terms(self.wm, self.z0, self.goal, self.states, self.actions)
            gamma = self.planner.config.gamma
            self.loss = (defect + gamma * goal_term if gamma else defect).sum()

    def backward(self) -> None:
        self.loss.backward()

    def zero_grad(self) -> None:
        self.optimiser.zero_grad(set_to_none=True)

    def fresh_graph(self) -> None:
        self.zero_grad()
        self.forward()

    def fill_grads(self) -> None:
        """Gradients on states and actions, for timing an optimiser step alone."""
        self.fresh_graph()
        self.backward()

    @torch.no_grad()
    def add_noise(self, preallocated: bool = True) -> None:
        sigma = self.planner.config.state_noise
        out = self.noise if preallocated else None
        self.states.add_(randn(self.states.shape, self.generator, self.states.device, out=out), alpha=sigma)


def adam_variants(problem: Problem) -> dict[str, torch.optim.Optimizer | str]:
    """The planner's two-group Adam in each implementation, on the problem's tensors (or why not)."""
    cfg = problem.planner.config
    groups = [{"params": [problem.states], "lr": cfg.lr_states}, {"params": [problem.actions], "lr": cfg.lr_actions}]
    out = {}
    for name, kwargs in (("for-loop (foreach=False)", {"foreach": False}), ("default (foreach=None)", {}),
                         ("foreach=True", {"foreach": True}), ("fused=True", {"fused": True})):
        try:
            out[name] = torch.optim.Adam(groups, **kwargs)
        except (RuntimeError, ValueError) as err:
            out[name] = f"not supported here: {err}"
    return out


def compiled_check(eager: GRASPPlanner, compiled: GRASPPlanner, wm, z0: torch.Tensor, goal: torch.Tensor,
                   horizon: int, seed: int, steps: int = 3) -> tuple[float, float]:
    """Both planners from the same inputs, `steps` iterations each with the same noise seed ->
    (max |loss difference| over those steps relative to the largest |loss|, max |state
    difference| at the end). Relative: the loss sums T per-step terms, so fp32 rounding alone
    reaches 1e-5 in absolute terms."""
    results = []
    for planner in (eager, compiled):
        problem = Problem(planner, wm, z0, goal, horizon, seed)
        losses = torch.stack([problem.step() for _ in range(steps)])
        results.append((losses, problem.states.detach()))
    (loss_e, states_e), (loss_c, states_c) = results
    relative = (loss_e - loss_c).abs().max() / loss_e.abs().max().clamp_min(1e-12)
    return relative.item(), (states_e - states_c).abs().max().item()


# ----------------------------------------------------------------------------- one (device, B, T)


def bench_shape(cfg, wm, source: str, shape: tuple[int, ...], device: torch.device, batch: int,
                horizon: int) -> list[tuple[str, float | None, str]]:
    """-> rows (what, seconds per call or None, note) for B = batch episodes x T = horizon transitions."""
    timing = dict(warmup=cfg.warmup, blocks=cfg.blocks, repeats=cfg.repeats)
    z0, goal = start_and_goal(source, shape, batch, device, cfg.seed, cfg.env)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    z = torch.randn(batch, horizon, *shape, generator=g).to(device)
    a = torch.randn(batch, horizon, wm.action_dim, generator=g).to(device).requires_grad_(True)

    def forward_backward():
        a.grad = None
        model_step(wm, z, a).pow(2).mean().backward()

    def forward():
        with torch.no_grad():
            model_step(wm, z, a)

    rows = [("predictor forward+backward", time_call(forward_backward, device, **timing),
             "wm.step on [B, T], grad to a"),
            ("predictor forward (no grad)", time_call(forward, device, **timing), "")]

    planner = build_planner("grasp", **{**to_container(cfg.planner), "compile": False})
    problem = Problem(planner, wm, z0, goal, horizon, cfg.seed)
    optimiser = problem.optimiser
    kind = "fused" if optimiser.defaults.get("fused") else f"foreach={optimiser.defaults.get('foreach')}"
    rows.append(("GRASP iteration (lifted_step)", time_call(problem.step, device, **timing), "eager"))
    parts = [("  lifted_terms forward + loss", time_call(problem.forward, device, **timing), ""),
             ("  backward", time_call(problem.backward, device, setup=problem.fresh_graph, **timing), ""),
             ("  zero_grad", time_call(problem.zero_grad, device, **timing), "set_to_none"),
             ("  Adam step", time_call(optimiser.step, device, setup=problem.fill_grads, **timing),
              f"the planner's ({kind})"),
             ("  noise", time_call(problem.add_noise, device, **timing), "into the preallocated buffer")]
    rows += parts
    rows.append(("  rest: Python and autograd overhead", rows[2][1] - sum(p[1] for p in parts),
                 "iteration minus its parts (below 0: the parts alone ran slower than inside the iteration)"))

    # Alternatives for the optimiser step and the noise, each on the same tensors, timed as the parts are
    for name, adam in adam_variants(problem).items():
        if isinstance(adam, str):
            rows.append((f"Adam {name}", None, adam))
        else:
            rows.append((f"Adam {name}", time_call(adam.step, device, setup=problem.fill_grads, **timing), ""))
    rows.append(("noise, fresh tensor each call", time_call(lambda: problem.add_noise(False), device, **timing), ""))

    if cfg.compile:
        fast = build_planner("grasp", **{**to_container(cfg.planner), "compile": True})
        compiled = Problem(fast, wm, z0, goal, horizon, cfg.seed)
        start = time.perf_counter()
        compiled.step()  # compiles the forward and the backward
        sync(device)
        compile_seconds = time.perf_counter() - start
        loss_diff, state_diff = compiled_check(planner, fast, wm, z0, goal, horizon, cfg.seed)
        verdict = "equal to eager" if loss_diff <= 1e-5 else "DIFFERS from eager"
        rows.append(("GRASP iteration, compile=true", time_call(compiled.step, device, **timing),
                     f"compile {compile_seconds:.1f} s; loss vs eager over 3 steps: max relative diff "
                     f"{loss_diff:.1e}, {verdict} (tol 1e-5); max abs state diff {state_diff:.1e}"))
    return rows


# ----------------------------------------------------------------------------- main


def as_list(value) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple, ListConfig)) else [int(value)]


def header(cfg, model_name: str) -> list[str]:
    return ["# One GRASP iteration vs one batched predictor forward+backward", "",
            f"World model: {model_name}. torch {torch.__version__}, {cfg.threads} CPU thread(s), "
            f"{platform.processor() or platform.machine()}"
            + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "") + ".",
            f"GRASP config: authors' code defaults with overrides {to_container(cfg.planner) or 'none'}. "
            f"ms per call: median over {cfg.blocks} blocks of {cfg.repeats} calls after {cfg.warmup} warm-up calls.",
            "Timings are only meaningful on an otherwise idle machine (run nothing else beside it).", ""]


def main(argv: list[str] | None = None) -> str:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv, preset="bench_grasp_iteration",
                          schema=IterationConfig, groups=())
        if cfg.world_model not in WORLD_MODELS:
            raise ConfigError(f"world_model='{cfg.world_model}' is not one of {', '.join(WORLD_MODELS)}")
        build_planner("grasp", **to_container(cfg.planner))
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    except (TypeError, ValueError) as err:
        sys.exit(f"config error: planner: {err}")
    torch.set_num_threads(cfg.threads)
    source = "checkpoint" if cfg.checkpoint else cfg.world_model
    lines, model_name = [], ""
    for device in map(torch.device, cfg.devices):
        try:
            wm, model_name, shape = load_model(cfg, device)
        except (ConfigError, CheckpointError) as err:
            sys.exit(f"error: {err}")
        for batch in as_list(cfg.batch):
            for horizon in as_list(cfg.horizon):
                rows = bench_shape(cfg, wm, source, shape, device, batch, horizon)
                floor, iteration = rows[0][1], rows[2][1]
                lines += [f"## {device.type}, B x T = {batch} x {horizon} ({batch * horizon:,} transitions)", "",
                          f"**GRASP iteration / predictor forward+backward = {iteration / floor:.2f}x** "
                          f"(target <= {TARGET}x on CPU: {'met' if iteration / floor <= TARGET else 'not met'})", "",
                          "| what | ms per call | x fwd+bwd | note |", "|---|---|---|---|"]
                lines += [f"| {what} | {'-' if s is None else f'{s * 1e3:.3f}'} | "
                          f"{'-' if s is None else f'{s / floor:.2f}'} | {note} |" for what, s, note in rows]
                lines.append("")
                print("\n".join(lines[-len(rows) - 7:]), flush=True)
    report = "\n".join(header(cfg, model_name) + lines)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "iteration.md").write_text(report + "\n")
    print(f"wrote {out / 'iteration.md'}", flush=True)
    return report


if __name__ == "__main__":
    main()
