"""W&B set-up shared by training and planning: every W&B file of a run stays inside the run's
folder (DESIGN.md), and `online` without credentials or network falls back to `offline` with one
warning line, so logging never kills a run."""

from __future__ import annotations

import netrc
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

NETWORK_TIMEOUT_S = 5.0  # the longest a run waits to learn that W&B is unreachable


def keep_wandb_files_in(out: Path) -> None:
    """Point W&B's run, cache, config and data folders under `out` (unless the user set them)."""
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "wandb/.cache"),
                     ("WANDB_CONFIG_DIR", "wandb/.config"), ("WANDB_DATA_DIR", "wandb/.data")):
        os.environ.setdefault(var, str((out / sub).resolve()))


def online_problem(timeout: float = NETWORK_TIMEOUT_S) -> str | None:
    """Why W&B online logging cannot work here (no API key, host unreachable), or None."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    if not os.environ.get("WANDB_API_KEY"):
        try:
            found = netrc.netrc().authenticators(host)
        except (FileNotFoundError, netrc.NetrcParseError, OSError):
            found = None
        if not found:
            return f"no W&B API key (WANDB_API_KEY is unset and ~/.netrc has no entry for {host}; run `wandb login`)"
    try:
        socket.create_connection((host, url.port or (443 if url.scheme != "http" else 80)), timeout=timeout).close()
    except OSError as err:
        return f"{host} is unreachable ({err})"
    return None


def fallback_to_offline(reason: str) -> str:
    """Say in one line why W&B goes offline; returns the mode to use."""
    print(f"warning: W&B online logging is not possible: {reason}; logging offline instead "
          "(`wandb sync` the run folder later)", file=sys.stderr, flush=True)
    return "offline"


def usable_wandb_mode(mode: str) -> str:
    """`mode`, except that `online` becomes `offline` (with one warning) when it cannot work."""
    if mode != "online":
        return mode
    problem = online_problem()
    return mode if problem is None else fallback_to_offline(problem)
