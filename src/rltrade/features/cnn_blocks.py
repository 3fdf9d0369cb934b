"""CNN outputs as the state sees them: per timeframe, one row per bar close, read "as of t".

The per-timeframe CNNs (:mod:`rltrade.models`) run once per closed bar, on the window that ends at that
bar. Their outputs reach the features layer as plain arrays, so this layer never imports a model:

* :class:`CnnOutputs`: one timeframe's rows, batch form. Row ``k`` belongs to the bar closing at
  ``close_us_T[k]``; it was computed on the window ending at that bar (bars closed by ``close_us_T[k]``)
  and is visible from that close on. ``model_id_T[k]`` says which walk-forward model (fold) filled it;
  ``-1`` means no model may be used there (none trained early enough, or the bar is in the indicator
  warm-up): such a row is masked.
* :class:`CnnBlocks`: the rows of every timeframe of :data:`CNN_TIMEFRAMES`, gathered together into the
  state's ``cnn_hidden [4, 128]`` and ``cnn_predictions [4, 4]`` blocks.
* :class:`CnnStream` / :class:`CnnStreams`: the streaming counterpart; the live bridge appends one row
  per bar close and the streaming state builder reads the latest.

Gather rule (both forms): at query time ``t`` a timeframe's row is the last one with
``close_us <= t`` (:func:`rltrade.data.align.last_closed_index` semantics): a 1h CNN row of the bar
opened 14:00 is used from 15:00 until 16:00. A timeframe is *present* at ``t`` when that row exists and
its ``model_id >= 0``; otherwise its hidden and prediction rows are zero.

Flags (:func:`cnn_flags`): ``has_cnn_hidden`` and ``has_cnn_predictions`` are 1 when at least one
timeframe is present, ``cnn_model_present`` when all of them are. A present prediction row's three
probabilities sum to 1, so which timeframes are present can also be read from the block itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rltrade.features.layout import CNN_HIDDEN, CNN_OUTPUTS, CNN_TIMEFRAMES
from rltrade.types import Timeframe

NO_MODEL = -1
"""``model_id`` of a row that no model may fill: masked in the state."""


class CnnOutputsError(ValueError):
    """CNN output arrays are malformed (shape, order, dtype) or do not fit the state layout."""


@dataclass(frozen=True, eq=False)
class CnnOutputs:
    """One timeframe's CNN rows, one per bar close (see the module docstring)."""

    tf: Timeframe
    close_us_T: npt.NDArray[np.int64]
    """Close time of the bar each row belongs to; strictly increasing."""
    hidden_TH: npt.NDArray[np.float32]
    """The CNN's last hidden layer on the window ending at that bar."""
    preds_T4: npt.NDArray[np.float32]
    """P(down), P(flat), P(up) over the timeframe's horizon, predicted next-pivot distance."""
    model_id_T: npt.NDArray[np.int32]
    """Walk-forward model (fold) that filled the row; :data:`NO_MODEL` where masked."""

    def __post_init__(self) -> None:
        """Make the arrays contiguous, typed and read-only; check their shapes, finiteness and close-time order."""
        close = np.ascontiguousarray(self.close_us_T, dtype=np.int64)
        hidden = np.ascontiguousarray(self.hidden_TH, dtype=np.float32)
        preds = np.ascontiguousarray(self.preds_T4, dtype=np.float32)
        model = np.ascontiguousarray(self.model_id_T, dtype=np.int32)
        n = close.shape[0]
        what = f"{self.tf.value} CNN outputs"
        if close.ndim != 1 or hidden.ndim != 2 or preds.shape != (n, CNN_OUTPUTS) or model.shape != (n,):
            raise CnnOutputsError(
                f"{what}: expected close_us [T], hidden [T, H], preds [T, {CNN_OUTPUTS}], model_id [T]; got "
                f"{close.shape}, {hidden.shape}, {preds.shape}, {model.shape}"
            )
        if hidden.shape[0] != n:
            raise CnnOutputsError(f"{what}: hidden has {hidden.shape[0]} rows for {n} bar closes")
        back = np.flatnonzero(np.diff(close) <= 0)
        if back.size:
            raise CnnOutputsError(
                f"{what}: close_us must be strictly increasing; row {back[0] + 1} ({close[back[0] + 1]}) is not "
                f"after row {back[0]} ({close[back[0]]})"
            )
        if not (np.isfinite(hidden).all() and np.isfinite(preds).all()):
            raise CnnOutputsError(f"{what}: hidden and preds must be finite")
        for name, arr in (("close_us_T", close), ("hidden_TH", hidden), ("preds_T4", preds), ("model_id_T", model)):
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @classmethod
    def empty(cls, tf: Timeframe, hidden: int = CNN_HIDDEN) -> CnnOutputs:
        """Return outputs with no rows (every query is masked)."""
        return cls(
            tf,
            np.empty(0, np.int64),
            np.empty((0, hidden), np.float32),
            np.empty((0, CNN_OUTPUTS), np.float32),
            np.empty(0, np.int32),
        )

    def __len__(self) -> int:
        """Return the number of rows (closed bars with CNN outputs)."""
        return int(self.close_us_T.shape[0])

    @property
    def hidden_size(self) -> int:
        """The width H of the hidden features."""
        return int(self.hidden_TH.shape[1])

    def row_index(self, t_us_B: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Per query, the index of the last row with ``close_us <= t``, or -1 before the first."""
        t_B = np.asarray(t_us_B, dtype=np.int64).reshape(-1)
        return np.searchsorted(self.close_us_T, t_B, side="right").astype(np.int64) - 1

    def gather(
        self, t_us_B: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """``(hidden_BH, preds_B4, has_B)`` at each query time; rows not present are zero."""
        k_B = self.row_index(t_us_B)
        safe_B = np.maximum(k_B, 0)
        has_B = k_B >= 0
        if len(self):
            has_B &= self.model_id_T[safe_B] >= 0
            hidden_BH = np.where(has_B[:, None], self.hidden_TH[safe_B], 0.0).astype(np.float32)
            preds_B4 = np.where(has_B[:, None], self.preds_T4[safe_B], 0.0).astype(np.float32)
        else:
            hidden_BH = np.zeros((k_B.shape[0], self.hidden_size), np.float32)
            preds_B4 = np.zeros((k_B.shape[0], CNN_OUTPUTS), np.float32)
        return hidden_BH, preds_B4, has_B

    def model_ids(self, t_us_B: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Return the model (fold) id behind each query's row, :data:`NO_MODEL` where masked."""
        k_B = self.row_index(t_us_B)
        if not len(self):
            return np.full(k_B.shape[0], NO_MODEL, np.int32)
        return np.where(k_B >= 0, self.model_id_T[np.maximum(k_B, 0)], NO_MODEL).astype(np.int32)


def _check_width(tf: Timeframe, width: int, hidden: int) -> None:
    if width != hidden:
        raise CnnOutputsError(
            f"{tf.value} CNN has a {width}-unit hidden layer but the state's cnn_hidden block holds {hidden} "
            "per timeframe; train the CNN with hidden = the layout's width"
        )


@dataclass(frozen=True, eq=False)
class CnnBlocks:
    """CNN rows of several timeframes, gathered into the state's two CNN blocks (order: ``CNN_TIMEFRAMES``)."""

    outputs: Mapping[Timeframe, CnnOutputs] = field(default_factory=dict)
    hidden: int = CNN_HIDDEN

    def __post_init__(self) -> None:
        """Check that each timeframe's outputs are filed under their own timeframe, at the configured width."""
        for tf, out in self.outputs.items():
            if out.tf is not tf:
                raise CnnOutputsError(f"CNN outputs of {out.tf.value} filed under {tf.value}")
            _check_width(tf, out.hidden_size, self.hidden)

    def gather(
        self, t_us_B: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """``(hidden_B4H, preds_B44, has_B4)`` at each query time (absent timeframes: zero, not present)."""
        t_B = np.asarray(t_us_B, dtype=np.int64).reshape(-1)
        n, k = t_B.shape[0], len(CNN_TIMEFRAMES)
        hidden = np.zeros((n, k, self.hidden), np.float32)
        preds = np.zeros((n, k, CNN_OUTPUTS), np.float32)
        has = np.zeros((n, k), bool)
        for j, tf in enumerate(CNN_TIMEFRAMES):
            out = self.outputs.get(tf)
            if out is not None:
                hidden[:, j], preds[:, j], has[:, j] = out.gather(t_B)
        return hidden, preds, has

    def model_ids(self, t_us_B: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """``[B, 4]`` model (fold) ids behind each timeframe's row, :data:`NO_MODEL` where masked or absent."""
        t_B = np.asarray(t_us_B, dtype=np.int64).reshape(-1)
        ids = np.full((t_B.shape[0], len(CNN_TIMEFRAMES)), NO_MODEL, np.int32)
        for j, tf in enumerate(CNN_TIMEFRAMES):
            out = self.outputs.get(tf)
            if out is not None:
                ids[:, j] = out.model_ids(t_B)
        return ids


def cnn_flags(has_B4: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``(any present, all present)`` per query: the block flags and ``cnn_model_present``."""
    return np.asarray(has_B4.any(axis=-1)), np.asarray(has_B4.all(axis=-1))


class CnnStream:
    """One timeframe's CNN rows in a live process: one appended per bar close, the newest few kept."""

    def __init__(self, tf: Timeframe, hidden: int = CNN_HIDDEN, keep: int = 4) -> None:
        self.tf = tf
        self.hidden = hidden
        self.keep = max(1, keep)
        self._close_us: list[int] = []
        self._rows: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]] = []
        self.n_appended = 0
        """Rows appended since creation (trimming does not reduce it)."""

    @property
    def last_close_us(self) -> int | None:
        """The close time of the newest row, or None when empty."""
        return self._close_us[-1] if self._close_us else None

    def append(self, close_us: int, hidden_H: npt.ArrayLike, preds_4: npt.ArrayLike, model_id: int) -> None:
        """Add the row of the bar closing at ``close_us`` (after every earlier one)."""
        last = self.last_close_us
        if last is not None and close_us <= last:
            raise CnnOutputsError(f"{self.tf.value} CNN row at {close_us} is not after the previous one ({last})")
        h = np.asarray(hidden_H, dtype=np.float32).reshape(-1)
        p = np.asarray(preds_4, dtype=np.float32).reshape(-1)
        _check_width(self.tf, h.shape[0], self.hidden)
        if p.shape != (CNN_OUTPUTS,) or not (np.isfinite(h).all() and np.isfinite(p).all()):
            raise CnnOutputsError(f"{self.tf.value} CNN row at {close_us}: preds must be {CNN_OUTPUTS} finite values")
        self._close_us.append(int(close_us))
        self._rows.append((h, p, int(model_id)))
        if len(self._close_us) > self.keep:
            del self._close_us[0], self._rows[0]
        self.n_appended += 1

    def latest(self, t_us: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], bool]:
        """``(hidden_H, preds_4, present)`` of the last row with ``close_us <= t_us`` (zeros when none)."""
        for close_us, (h, p, model_id) in zip(reversed(self._close_us), reversed(self._rows), strict=True):
            if close_us <= t_us:
                if model_id < 0:
                    break
                return h, p, True
        return np.zeros(self.hidden, np.float32), np.zeros(CNN_OUTPUTS, np.float32), False


class CnnStreams:
    """A :class:`CnnStream` per timeframe of :data:`CNN_TIMEFRAMES` (what the streaming builder reads)."""

    def __init__(self, hidden: int = CNN_HIDDEN) -> None:
        self.hidden = hidden
        self.streams = {tf: CnnStream(tf, hidden) for tf in CNN_TIMEFRAMES}

    def __getitem__(self, tf: Timeframe) -> CnnStream:
        """Return the stream of timeframe ``tf``."""
        return self.streams[tf]

    def rows_at(self, t_us: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """``(hidden_4H, preds_44, has_4)`` at ``t_us``: the streaming form of :meth:`CnnBlocks.gather`."""
        rows = [self.streams[tf].latest(t_us) for tf in CNN_TIMEFRAMES]
        return (
            np.stack([r[0] for r in rows]),
            np.stack([r[1] for r in rows]),
            np.array([r[2] for r in rows], dtype=bool),
        )
