"""Shared pytest setup: tests run on CPU beside other work, so torch uses one thread."""

import torch

torch.set_num_threads(1)
