"""Per-block input standardisation of the structured encoder, fitted once on training-range states.

Why fitted statistics and not a ``LayerNorm`` per block: the state's blocks hold quantities of very
different scales (raw 1 s log returns of ~1e-4 next to RSI, volume ratios and 128 CNN activations),
and a per-sample ``LayerNorm`` over a block would both mix a window's channels (a price ratio and a
volume in one mean) and erase the block's magnitude, which is what a return block's signal is made of.
A fixed standardiser keeps every sample's magnitudes comparable across time and costs one
multiply-add per value.

Statistics (:func:`block_statistics`), from states of the **training range only** (the caller picks the
rows; :func:`rltrade.training.loop.train` takes evenly spaced rows of the training clock, before the
first update):

    bars / ticks blocks  [W, C] windows: one mean and standard deviation per channel, pooled over the
                         window's rows and the sampled states (every row of a window is the same quantity
                         at another lag)
    flat blocks          one mean and standard deviation per column
    columns in no block  left as they are (mean 0, scale 1)

A standard deviation below ``min_std`` (a constant column, e.g. a masked block) keeps scale 1, so
the column is only centred. Standardised values are clipped to ±``clip``. The statistics are buffers of
the network: saved with every checkpoint, restored on load, never refitted after training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn


class _Block(Protocol):
    """What the statistics need of a block (``rltrade.agent.encoder.BlockSpec`` has it)."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def start(self) -> int: ...
    @property
    def stop(self) -> int: ...
    @property
    def kind(self) -> str: ...


def block_statistics(
    states_NF: npt.ArrayLike, blocks: Sequence[_Block], *, min_std: float = 1e-6
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return per-column ``(mean_F, std_F)`` of ``states_NF`` as the module docstring describes.

    ``states_NF`` are states of the training range only; nothing else is read. A standard deviation
    below ``min_std`` is returned as 1.
    """
    x = np.asarray(states_NF, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"block statistics need at least 2 states of shape [N, F], got {x.shape}")
    n, f = x.shape
    mean = np.zeros(f, dtype=np.float64)
    std = np.ones(f, dtype=np.float64)
    for b in blocks:
        if b.stop > f:
            raise ValueError(f"a block [{b.start}, {b.stop}) lies past the states' width {f}")
        part = x[:, b.start : b.stop]
        if b.kind in ("bars", "ticks"):
            rows, cols = b.shape
            per_channel = part.reshape(n * rows, cols)
            m, s = per_channel.mean(axis=0), per_channel.std(axis=0)
            mean[b.start : b.stop] = np.tile(m, rows)
            std[b.start : b.stop] = np.tile(s, rows)
        else:
            mean[b.start : b.stop] = part.mean(axis=0)
            std[b.start : b.stop] = part.std(axis=0)
    std[~(std >= min_std)] = 1.0  # also catches NaN
    return mean.astype(np.float32), std.astype(np.float32)


class InputStandardiser(nn.Module):
    """``clamp((x − mean) / std, ±clip)`` per column of the state, with fixed (fitted, not learnt) statistics.

    Until :meth:`fit` is called it is the identity (mean 0, scale 1) apart from the clip. Like every module
    with fitted buffers it has ``reset_statistics``, which ``QNetwork.reset_parameters`` calls (a network
    built on the meta device holds uninitialised memory in its buffers until then).
    """

    mean_F: Tensor
    inv_std_F: Tensor

    def __init__(self, width: int, *, clip: float = 10.0) -> None:
        super().__init__()
        if width < 1 or not clip > 0:
            raise ValueError(f"InputStandardiser needs width ≥ 1 and clip > 0, got {width} and {clip}")
        self.clip = clip
        self.register_buffer("mean_F", torch.zeros(width))
        self.register_buffer("inv_std_F", torch.ones(width))

    @torch.no_grad()
    def reset_statistics(self) -> None:
        """Back to the identity statistics (mean 0, scale 1)."""
        self.mean_F.zero_()
        self.inv_std_F.fill_(1.0)

    @torch.no_grad()
    def fit(self, mean_F: npt.ArrayLike, std_F: npt.ArrayLike) -> None:
        """Set the statistics (from :func:`block_statistics` on training-range states)."""
        mean = torch.as_tensor(np.asarray(mean_F, dtype=np.float32))
        std = torch.as_tensor(np.asarray(std_F, dtype=np.float32))
        if mean.shape != self.mean_F.shape or std.shape != self.mean_F.shape:
            raise ValueError(
                f"statistics of shapes {tuple(mean.shape)} and {tuple(std.shape)}, expected {tuple(self.mean_F.shape)}"
            )
        if not bool(torch.all(std > 0)):
            raise ValueError("every standard deviation must be positive")
        self.mean_F.copy_(mean)
        self.inv_std_F.copy_(1.0 / std)

    def forward(self, x_BF: Tensor) -> Tensor:
        """Return the standardised, clipped states ``[B, F]`` (a new tensor)."""
        return torch.addcmul(-self.mean_F * self.inv_std_F, x_BF, self.inv_std_F).clamp_(-self.clip, self.clip)

    @torch.no_grad()
    def standardise_(self, x_BF: Tensor) -> Tensor:
        """:meth:`forward` written into ``x_BF`` itself (the same values bit for bit); returns ``x_BF``.

        For a batch its caller owns, such as the learner's freshly gathered states: no second ``[B, F]``
        tensor is allocated and written (on the full layout that pass cost ~2 ms of an update's ~40).
        """
        torch.addcmul(-self.mean_F * self.inv_std_F, x_BF, self.inv_std_F, out=x_BF)
        return x_BF.clamp_(-self.clip, self.clip)

    def same_statistics(self, other: InputStandardiser) -> bool:
        """Whether ``other`` standardises exactly as this one does (equal statistics and clip)."""
        return (
            self.clip == other.clip
            and torch.equal(self.mean_F, other.mean_F)
            and torch.equal(self.inv_std_F, other.inv_std_F)
        )
