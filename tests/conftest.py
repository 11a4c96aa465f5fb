"""Shared pytest setup: one torch thread per test process; `make test` runs a process per core (-n auto)."""

import torch

torch.set_num_threads(1)
