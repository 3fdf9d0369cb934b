"""Agent checkpoints: everything a run needs to continue bit for bit, written atomically.

A checkpoint holds the learner (online and target networks, Adam state, its torch generators and
update counter), the replay buffer (records, priorities, sum tree via its state dict, its numpy
generator), any further stateful parts the caller names (e.g. the n-step accumulator's pending
steps), named numpy and torch generators, and plain counters (env steps, episodes, ...).

Writing is atomic: the payload goes to a temporary file in the target's folder, is flushed and
fsync'ed, then ``os.replace``d over the target (and the folder fsync'ed), so a crash leaves either
the old checkpoint or the new one, never a torn file. Reading uses ``torch.load(weights_only=True)``:
only tensors and plain containers are unpickled, never arbitrary objects. numpy generator states are
stored as JSON strings (PCG64's state holds 128-bit integers).

Devices: tensors are read with ``map_location`` = the learner's device, so a checkpoint written on a GPU
loads on a CPU-only machine. Its torch generators' states are CUDA ones, which a CPU generator cannot take:
:func:`load_learner_state` (evaluation) loads it without them, :func:`load_checkpoint` (resuming
training, which must continue those streams) refuses it with a :class:`CheckpointError` that says so.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import torch

from rltrade.agent.learner import DQNLearner
from rltrade.agent.replay import PrioritizedReplay, generator_state, restore_generator
from rltrade.data.atomic import atomic_write

FORMAT: Final = "rltrade.agent.checkpoint"
VERSION: Final = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, read, or does not fit the objects it is loaded into."""


class Stateful(Protocol):
    """Anything with torch-style ``state_dict`` / ``load_state_dict`` (tensors and plain values)."""

    def state_dict(self) -> dict[str, Any]:
        """Return the object's state: tensors and plain values."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state :meth:`state_dict` returned."""


def save_checkpoint(
    path: Path,
    *,
    learner: DQNLearner,
    replay: PrioritizedReplay,
    extra: Mapping[str, Stateful] | None = None,
    rngs: Mapping[str, np.random.Generator] | None = None,
    torch_generators: Mapping[str, torch.Generator] | None = None,
    counters: Mapping[str, int | float] | None = None,
) -> None:
    """Write a checkpoint to ``path`` atomically (creating its folder if needed)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "learner": learner.state_dict(),
        "replay": replay.state_dict(),
        "extra": {name: obj.state_dict() for name, obj in (extra or {}).items()},
        "rngs": {name: generator_state(rng) for name, rng in (rngs or {}).items()},
        "torch_generators": {name: g.get_state() for name, g in (torch_generators or {}).items()},
        "counters": dict(counters or {}),
    }
    atomic_write(Path(path), lambda fh: torch.save(payload, fh))


def load_checkpoint(
    path: Path,
    *,
    learner: DQNLearner,
    replay: PrioritizedReplay,
    extra: Mapping[str, Stateful] | None = None,
    rngs: Mapping[str, np.random.Generator] | None = None,
    torch_generators: Mapping[str, torch.Generator] | None = None,
) -> dict[str, int | float]:
    """Restore a checkpoint into objects built like the saved ones; return its counters.

    The names in ``extra``, ``rngs`` and ``torch_generators`` must be exactly the saved ones.
    """
    payload = _read(Path(path), learner.device)
    extra, rngs, torch_generators = extra or {}, rngs or {}, torch_generators or {}
    for section, given in (("extra", extra), ("rngs", rngs), ("torch_generators", torch_generators)):
        saved = set(payload[section])
        if saved != set(given):
            raise CheckpointError(
                f"{path}: {section} saved as {sorted(saved)} but {sorted(given)} were given to restore"
            )
    try:
        learner.load_state_dict(payload["learner"])
        replay.load_state_dict(payload["replay"])
        for name, obj in extra.items():
            obj.load_state_dict(payload["extra"][name])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not fit this run: {exc}") from exc
    for name, rng in rngs.items():
        restore_generator(rng, payload["rngs"][name])
    for name, gen in torch_generators.items():
        gen.set_state(payload["torch_generators"][name])
    return dict(payload["counters"])


def _read(path: Path, device: torch.device) -> dict[str, Any]:
    """Read the payload of an rltrade checkpoint (weights-only unpickling), or a CheckpointError saying why not."""
    path = Path(path)
    if path.exists() and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else is truncated or foreign (and a legacy pickle
        # would only reach torch's weights-only unpickler with a warning).
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or not written by rltrade)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not written by rltrade): {exc}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rltrade agent checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('version')}; this rltrade reads version {VERSION}"
        )
    return payload


def load_learner_state(path: Path, learner: DQNLearner) -> None:
    """Restore only the learner (networks, optimiser, generators) from a checkpoint.

    This is for evaluation, where the replay, the episodes in flight and the run's generators are not needed.
    """
    payload = _read(Path(path), learner.device)
    try:
        # Evaluation draws nothing: a checkpoint written on a GPU loads on a CPU without its random streams.
        learner.load_state_dict(payload["learner"], random_streams=False)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not fit this learner: {exc}") from exc
