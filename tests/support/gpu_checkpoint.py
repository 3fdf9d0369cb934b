"""A checkpoint file as a CUDA machine writes it, made on a CPU-only machine (for loading tests).

``torch.save`` records each tensor storage's device as a string in the archive's ``data.pkl``
(``'cpu'``, ``'cuda:0'``); reading a ``'cuda:0'`` storage without ``map_location`` on a machine without
a GPU fails. :func:`as_written_on_cuda` rewrites a checkpoint so that every storage says ``'cuda:0'``
and the learner's generator states are CUDA Philox states (seed and offset, 16 bytes): byte for byte
what a learner on a GPU saves, apart from the values.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

_CPU = b"X\x03\x00\x00\x00cpu"  # pickle protocol 2 BINUNICODE 'cpu' (memoised: one literal per file)
_CUDA = b"X\x06\x00\x00\x00cuda:0"


def cuda_generator_state(seed: int, offset: int = 0) -> torch.Tensor:
    """The state a CUDA ``torch.Generator`` returns from ``get_state``: uint64 seed, uint64 offset."""
    return torch.from_numpy(np.array([seed, offset], dtype="<u8").view(np.uint8).copy())


def as_written_on_cuda(src: Path, dst: Path) -> None:
    """Copy the rltrade checkpoint ``src`` to ``dst`` as a learner on ``cuda:0`` would have written it."""
    payload = torch.load(src, weights_only=True)
    learner = payload["learner"]
    learner["learn_generator"] = cuda_generator_state(11, 4)
    learner["act_generator"] = cuda_generator_state(12, 8)
    learner["device"] = "cuda"
    buf = io.BytesIO()
    torch.save(payload, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                if data.count(_CPU) != 1:
                    raise ValueError(f"{src}: expected one 'cpu' storage location in data.pkl")
                data = data.replace(_CPU, _CUDA)
            zout.writestr(info.filename, data)
