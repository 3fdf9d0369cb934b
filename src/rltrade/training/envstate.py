"""Checkpointable state of the vector env (positions, accounts, episode starts, start-draw generators).

Resuming bit for bit needs the episodes in flight exactly as they were, not only the agent: this
adapter gives :class:`~rltrade.env.vector_env.VectorTradingEnv` the ``state_dict`` /
``load_state_dict`` pair the agent checkpoint stores (tensors and strings only, weights-only safe).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from rltrade.agent.replay import generator_state, restore_generator
from rltrade.env.vector_env import VectorTradingEnv


class VectorEnvState:
    """``state_dict`` / ``load_state_dict`` for a :class:`VectorTradingEnv`."""

    def __init__(self, venv: VectorTradingEnv) -> None:
        self.venv = venv

    def state_dict(self) -> dict[str, Any]:
        """Return the env's episode state (clock index, starts, positions, account books) as tensors."""
        core = self.venv.core
        book = {f.name: torch.from_numpy(np.array(getattr(core.book, f.name))) for f in dataclasses.fields(core.book)}
        return {
            "t_idx": torch.from_numpy(core.t_idx.copy()),
            "start": torch.from_numpy(core.start.copy()),
            "positions": torch.from_numpy(core.positions_EL.copy()),
            "book": book,
            "rngs": [generator_state(r) for r in self.venv._rngs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state :meth:`state_dict` returned."""
        core = self.venv.core
        core.t_idx = state["t_idx"].numpy().copy()
        core.start = state["start"].numpy().copy()
        core.positions_EL = state["positions"].numpy().copy()
        for name, value in state["book"].items():
            setattr(core.book, name, value.numpy().copy())
        for rng, saved in zip(self.venv._rngs, state["rngs"], strict=True):
            restore_generator(rng, saved)
