"""The machines are shared: torch uses at most 2 CPU threads in the models tests."""

from __future__ import annotations

import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
