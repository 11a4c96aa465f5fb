"""Plant known planner faults one at a time and check that the planner tests catch each one.

    python tests/mutants.py              # every mutant, prints the fault -> failing tests table
    python tests/mutants.py -k mppi      # only mutants whose name contains "mppi"

Each mutant is a (file, original text, faulty text) edit. The source tree is copied to a
temporary folder per mutant, the edit is applied there (an original text that no longer
occurs is an error, so a stale mutant cannot pass silently), and `pytest tests/planners`
runs against the copy (it comes first on PYTHONPATH). A mutant is caught when at least one
test fails. The real tree is never touched. Not part of `make test` (one pytest run per
mutant, about 20 s each on 2 cores): `make mutants` runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("planners", "world_models", "encoders", "jepa_plan", "configs", "tests", "pyproject.toml")


@dataclass(frozen=True)
class Mutant:
    name: str
    fault: str
    path: str
    original: str
    faulty: str


MUTANTS = [
    # The faults the issue lists
    Mutant("grasp_lr_swap", "GRASP: state and action learning rates swapped", "planners/grasp.py",
           '[{"params": [states], "lr": self.config.lr_states},\n'
           '                                 {"params": [actions], "lr": self.config.lr_actions}]',
           '[{"params": [states], "lr": self.config.lr_actions},\n'
           '                                 {"params": [actions], "lr": self.config.lr_states}]'),
    Mutant("grasp_adam_not_reset", "GRASP: Adam's moments not reset after a sync", "planners/grasp.py",
           "optimiser = self.optimiser(states, actions)  # fresh moments", "pass  # fresh moments"),
    Mutant("grasp_gd_sync_lr0", "GRASP: GD sync with learning rate 0", "planners/grasp.py",
           "steps=cfg.sync_steps,\n                                   lr=cfg.sync_lr)",
           "steps=cfg.sync_steps,\n                                   lr=0.0)"),
    Mutant("grasp_cem_sync_ignores_gap", "GRASP: CEM-sync std that ignores the gap", "planners/grasp.py",
           "var = (cfg.sync_var_scale * gap + cfg.sync_var_min)", "var = (0 * gap + 1.0)"),
    Mutant("grasp_final_sync_discarded", "GRASP: the final sync's result discarded", "planners/grasp.py",
           "        actions.copy_(synced)\n",
           "        if iteration < self.config.iterations:\n            actions.copy_(synced)\n"),
    Mutant("cem_samples_unclipped", "CEM: samples left outside the box the config clips them to", "planners/cem.py",
           "return torch.clamp(actions, low, high) if clip else actions", "return actions"),
    Mutant("mppi_uniform_weights", "MPPI: uniform weights", "planners/mppi.py",
           "return torch.softmax(-temperature * elite_cost, dim=1)",
           "return torch.full_like(elite_cost, 1.0 / elite_cost.shape[1])"),
    Mutant("mppi_no_std_clamp", "MPPI: std not clamped", "planners/mppi.py",
           "return mean, torch.minimum(torch.maximum(std, std_min), std_max)", "return mean, std"),
    # The usual ones
    Mutant("wrong_elites", "CEM/MPPI/GRASP sync: the most expensive samples kept as elites", "planners/cem.py",
           "largest=False", "largest=True"),
    Mutant("grasp_stop_grad_leaks", "GRASP: the stop-gradient leaks", "planners/grasp.py",
           "inputs = inputs.detach()  # sg", "inputs = inputs  # sg"),
    Mutant("grasp_noise_on_actions", "GRASP: noise on the actions too", "planners/grasp.py",
           "            if cfg.clip_actions:\n                actions.clamp_(low, high)\n        return loss.detach()",
           "            actions.add_(0.01 * torch.randn_like(actions))\n"
           "            if cfg.clip_actions:\n                actions.clamp_(low, high)\n        return loss.detach()"),
    # More ways to get GRASP subtly wrong
    Mutant("grasp_states_reset", "GRASP: virtual states reset to the rollout after a sync", "planners/grasp.py",
           "        if self.config.reset_states:\n", "        if True:\n"),
    Mutant("grasp_sync_summed_cost", "GRASP: the sync optimises the summed cost, not the final step",
           "planners/grasp.py", 'Objective("l2", "last") if config.sync_cost == "last"',
           'Objective("l2", "all") if config.sync_cost == "last"'),
    Mutant("grasp_floor_once", "GRASP: CEM-sync floor not re-added every iteration", "planners/grasp.py",
           "var = elite.var(1).mean(-1, keepdim=True) + cfg.sync_var_min",
           "var = elite.var(1).mean(-1, keepdim=True)"),
    Mutant("grasp_sync_clips", "GRASP: CEM-sync samples clipped to the box", "planners/grasp.py",
           "samples = mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * noise  # [B, K, T, A]",
           "samples = (mean.unsqueeze(1) + var.sqrt().unsqueeze(1) * noise).clamp(-0.3, 0.3)  # [B, K, T, A]"),
    Mutant("grasp_goal_weight_ignored", "GRASP: goal term weight ignored", "planners/grasp.py",
           "loss = defect + cfg.gamma * goal_term", "loss = defect + goal_term"),
    Mutant("grasp_goal_target_detached", "GRASP: the target s_{t+1} detached (states never move)",
           "planners/grasp.py", "targets = torch.cat([states, goal.unsqueeze(1)], dim=1)",
           "targets = torch.cat([states.detach(), goal.unsqueeze(1)], dim=1)"),
    Mutant("grasp_batch_mean", "GRASP: loss averaged over episodes (each episode's gradient scaled by 1/B)",
           "planners/grasp.py", "loss.sum().backward()  # episodes are independent",
           "loss.mean().backward()  # episodes are independent"),
    Mutant("grasp_sync_at_start", "GRASP: a sync already after the first iteration (k > 0 dropped)",
           "planners/grasp.py", "% cfg.sync_every == 0 and k > 0", "% cfg.sync_every == 0"),
    Mutant("cem_no_mean_sample", "CEM: the current mean not scored as sample 0", "planners/cem.py",
           "keep_mean=cfg.keep_mean", "keep_mean=False"),
]


def run_mutant(mutant: Mutant, tests: str) -> tuple[bool, list[str]]:
    """-> (caught, failing test ids) for one mutant applied to a copy of the tree."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        root = Path(tmp)
        for name in COPY:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, root / name)
        target = root / mutant.path
        text = target.read_text()
        if text.count(mutant.original) != 1:
            raise SystemExit(f"mutant {mutant.name}: the original text occurs {text.count(mutant.original)} times "
                             f"in {mutant.path} (the source changed; update the mutant)")
        target.write_text(text.replace(mutant.original, mutant.faulty))
        env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", tests,
                               "-m", "not slow"], cwd=root, env=env, capture_output=True, text=True)
        failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
        if proc.returncode not in (0, 1):
            failed = failed or [f"pytest exit {proc.returncode}: {proc.stdout[-300:]}"]
        return proc.returncode != 0, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument("--tests", default="tests/planners", help="pytest target run against each mutant")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if args.k in m.name]
    rows, missed = ["| mutant | fault | caught by (first failing test) |", "|---|---|---|"], []
    for mutant in chosen:
        caught, failed = run_mutant(mutant, args.tests)
        first = failed[0] if failed else "-"
        rows.append(f"| `{mutant.name}` | {mutant.fault} | {'`' + first + '`' if caught else '**missed**'} |")
        print(rows[-1], flush=True)
        if not caught:
            missed.append(mutant.name)
    print("\n" + "\n".join(rows))
    print(f"\n{len(chosen) - len(missed)}/{len(chosen)} mutants caught" + (f"; missed: {missed}" if missed else ""))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
