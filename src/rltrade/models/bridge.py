"""The CNN–RL bridge: CNN hidden features and predictions for the state, once per (timeframe, bar close).

Reading the hidden layer (the original design's approach): a forward hook on the CNN's named ``hidden``
submodule (:class:`HiddenTap`) captures its output during an ordinary forward pass, in eval mode (no
dropout) and under ``torch.no_grad``; the captured tensor is detached and the hook removed when the tap
closes, whatever happens. :func:`run_cnn` returns ``(hidden_BH, preds_B4)`` as numpy arrays.

Caching by bar close: a window ending at a closed bar is the same all through the next bar (its prices
are relative to its own last close, :mod:`rltrade.features.bar_channels`), so a CNN runs once per bar
of its timeframe, never per tick or per state query:

* offline: :func:`compute_rows` runs the CNN once per bar, in fixed-size batches (a row never depends
  on which other rows share its batch, bit for bit), producing the rows of a
  :class:`~rltrade.features.cnn_blocks.CnnOutputs`; the state builder then gathers them for any number
  of query times without running a model;
* live: :class:`StreamingCnnBridge` runs each timeframe's CNN when (and only when) a new bar of that
  timeframe has closed, and appends the row to the streaming builder's
  :class:`~rltrade.features.cnn_blocks.CnnStreams` (``use_cache=False`` reruns every CNN on every call:
  the benchmark's baseline).

A row is filled by a model only where the model may serve (:meth:`TrainedCnn.may_serve`: every label it
was fitted on ended by ``close − embargo``) and the traded symbol's bar is past the indicator warm-up;
elsewhere its ``model_id`` is -1 and the state masks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from rltrade.features.cnn_blocks import NO_MODEL
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.models.cnn import TimeframeCnn, predictions
from rltrade.models.dataset import TimeframeData
from rltrade.models.train import TrainedCnn
from rltrade.types import Timeframe


class HiddenTap:
    """Context manager: a forward hook on ``model.hidden`` that keeps its latest output, detached."""

    def __init__(self, model: TimeframeCnn) -> None:
        self.module: nn.Module = model.hidden
        self.output: torch.Tensor | None = None
        self._handle: RemovableHandle | None = None

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.output = output.detach()

    def __enter__(self) -> HiddenTap:
        """Install the hook; the tap then keeps ``model.hidden``'s latest output."""
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Remove the hook."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


@torch.no_grad()
def run_cnn(
    model: TimeframeCnn, x_BWC: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``(hidden_BH, preds_B4)`` of ``model`` on windows ``x_BWC``: eval mode, no grad, hook removed after.

    ``preds_B4`` = P(down), P(flat), P(up), next-pivot distance (ATRs). A model in training mode is put
    in eval mode for the pass and back afterwards; one already in eval mode (the live bridge's) is left
    alone: switching walks every submodule twice, which cost as much as half the forward pass of a live
    1 s decision.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with HiddenTap(model) as tap:
            out_B4 = model(torch.from_numpy(np.ascontiguousarray(x_BWC, dtype=np.float32)))
        assert tap.output is not None, "the hidden layer's hook did not fire"
        return tap.output.numpy().copy(), predictions(out_B4).numpy().copy()
    finally:
        if was_training:
            model.train()


def compute_rows(
    trained: TrainedCnn, data: TimeframeData, rows: npt.ArrayLike, *, batch: int | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``(hidden_RH, preds_R4)`` for the windows ending at bars ``rows``: one CNN pass per bar, batched.

    Bit-causal: every forward pass has exactly ``batch`` windows (default ``inference_batch``). Bar
    ``r`` always runs in the pass of bars ``r // batch · batch …`` at position ``r % batch``; the slots
    of bars not asked for hold zero windows. So a row's output is the same to the last bit whichever
    other rows are computed with it: cutting the data at ``t`` (fewer later bars, a shorter last batch)
    changes no earlier row. Without the padding, a short batch (under 16 windows on a CPU build) takes
    other kernels and rounds differently (about 1e-7).
    """
    r = np.asarray(rows, dtype=np.int64).reshape(-1)
    step = batch or trained.config.inference_batch
    hidden = np.zeros((r.shape[0], trained.model.shape.hidden), np.float32)
    preds = np.zeros((r.shape[0], 4), np.float32)
    if r.size == 0:
        return hidden, preds
    chunk = r // step
    order = np.argsort(chunk, kind="stable")
    _, starts = np.unique(chunk[order], return_index=True)
    x = np.zeros((step, data.window, data.n_channels), np.float32)
    for a, b in zip(starts, [*starts[1:], r.size], strict=True):
        sel = order[a:b]
        slot = r[sel] % step
        x[:] = 0.0
        x[slot] = data.windows(r[sel])
        h, p = run_cnn(trained.model, x)
        hidden[sel], preds[sel] = h[slot], p[slot]
    return hidden, preds


def row_model_ids(
    trained: TrainedCnn, data: TimeframeData, rows: npt.NDArray[np.int64], model_id: int, embargo_us: int
) -> npt.NDArray[np.int32]:
    """``model_id`` where the model may serve the bar and the bar is past warm-up, else -1."""
    ok = trained.may_serve(data.close_us_T[rows], embargo_us) & data.valid_T[rows]
    return np.where(ok, model_id, NO_MODEL).astype(np.int32)


class StreamingCnnBridge:
    """Live CNN rows: each timeframe's CNN runs once per closed bar and feeds the streaming builder.

    ``models`` maps a timeframe to ``(trained model, model id)``. Call :meth:`refresh` before reading a
    state (``builder.blocks_at`` / ``state_at``) at ``t``: it moves the builder's clock to ``t`` and, for
    every timeframe whose newest closed bar has no row yet, runs the CNN on that bar's window and appends
    the row. ``runs`` counts CNN forward passes per timeframe.
    """

    def __init__(
        self,
        models: Mapping[Timeframe, tuple[TrainedCnn, int]],
        *,
        embargo_us: int,
        use_cache: bool = True,
    ) -> None:
        self.models = dict(models)
        for trained, _ in self.models.values():
            trained.model.eval()  # serving only: every pass in eval mode (no dropout), set once here
        self.embargo_us = embargo_us
        self.use_cache = use_cache
        self.runs: dict[Timeframe, int] = dict.fromkeys(self.models, 0)

    def refresh(self, builder: StreamingStateBuilder, t_us: int) -> None:
        """Bring every timeframe's CNN row up to the bars closed by ``t_us``."""
        builder.advance_to(t_us)
        for tf, (trained, model_id) in self.models.items():
            stream = builder.cnn[tf]
            close_us = builder.last_close_us("eth", tf)
            if close_us is None or (self.use_cache and close_us == stream.last_close_us):
                continue
            x_eth, mask, _ = builder.bar_window("eth", tf, trained.model.shape.window)
            x = x_eth
            if trained.config.use_reference:
                x_btc, _, _ = builder.bar_window("btc", tf, trained.model.shape.window)
                x = np.concatenate([x_eth, x_btc], axis=2)
                if builder.tainted("btc", tf):  # an incomplete BTC bar is in the window: serve nothing
                    mask = np.zeros_like(mask)
            hidden, preds = run_cnn(trained.model, x)
            self.runs[tf] += 1
            if close_us != stream.last_close_us:
                serve = bool(trained.may_serve(close_us, self.embargo_us)) and bool(mask[0, -1])
                stream.append(close_us, hidden[0], preds[0], model_id if serve else NO_MODEL)
