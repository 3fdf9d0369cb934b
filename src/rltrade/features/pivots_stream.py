"""Incremental (streaming) pivots: O(1) work and memory per closed bar, for live use.

:class:`PivotTracker` keeps, per level and kind, the last ``2n + 1`` elements of that level's input
sequence (bars at level 0, level-(k-1) pivots above) and the last two confirmed pivots. A new element
decides at most one new pivot (the element n places back), which may in turn feed the next level, so an
update costs O(levels · n) comparisons whatever the history length.

Agreement with the batch path (:func:`rltrade.features.pivots_batch.compute_pivots`): after the update
for bar i, the pivots returned so far are exactly the batch pivots with ``confirm_us <= open_us[i] + tf_us``,
and :meth:`PivotTracker.features` equals :func:`rltrade.features.pivots_features.pivot_features` at any
query time from that close up to (excluding) the next bar's close, bit for bit: both run the compiled
features (:func:`rltrade.features.gather_kernels.pivot_features_into`, :func:`level_features`' arithmetic)
on the same level state.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from rltrade.features import gather_kernels as kernels
from rltrade.features.pivots_batch import BoolArr, Pivot, PivotInputError, PivotKind, check_params
from rltrade.features.pivots_features import FEATURES_PER_LEVEL, LEVEL_STATE_DTYPES, LevelState

_FIELD = {name: i for i, name in enumerate(LevelState._fields)}
_INT_FIELDS = tuple(_FIELD[f] for f in ("hi1_time_us", "hi1_index", "lo1_time_us", "lo1_index"))
_FLOAT_FIELDS = tuple(_FIELD[f] for f in ("hi1_price", "hi2_price", "lo1_price", "lo2_price", "hi1_bar_close"))
_FLAG_FIELDS = tuple(_FIELD[f] for f in ("has_hi2", "has_lo2", "prov_high", "prov_low", "available"))
"""Positions in a :class:`LevelState` row of the fields the compiled pivot kernels read, in their order."""


class _Elem(NamedTuple):
    """An element of a level's input sequence; ``key`` is the price, negated for lows."""

    key: float
    bar_index: int
    time_us: int
    price: float
    confirm_us: int
    bar_close: float


class _Chain:
    """The recursive levels of one kind (highs or lows)."""

    def __init__(self, kind: PivotKind, n: int, levels: int) -> None:
        self.kind = kind
        self.n = n
        self.levels = levels
        self.window = [deque[_Elem](maxlen=2 * n + 1) for _ in range(levels)]
        self.seen = [0] * levels
        self.last2 = [deque[_Elem](maxlen=2) for _ in range(levels)]

    def push(self, level: int, elem: _Elem, out: list[Pivot]) -> None:
        """Append to level's input; emit (and cascade) the pivot it confirms, if any."""
        win = self.window[level]
        win.append(elem)
        self.seen[level] += 1
        n = self.n
        if len(win) < 2 * n + 1:
            return
        centre = win[n]
        ck = centre.key
        for i, e in enumerate(win):
            if i != n and not ck > e.key:
                return
        pivot = centre._replace(confirm_us=win[-1].confirm_us)
        self.last2[level].append(pivot)
        out.append(Pivot(level, self.kind, pivot.bar_index, pivot.time_us, pivot.price, pivot.confirm_us))
        if level + 1 < self.levels:
            self.push(level + 1, pivot, out)

    def provisional(self, level: int) -> bool:
        """Provisional flag of ``level`` (definition in :mod:`rltrade.features.pivots_features`)."""
        win = self.window[level]
        n = self.n
        for d in range(n):
            if self.seen[level] - 1 - d < n:  # no n left neighbours, nor for larger d
                return False
            p = len(win) - 1 - d
            ck = win[p].key
            if all(ck > win[p - i].key for i in range(1, n + 1)) and all(
                ck > win[q].key for q in range(p + 1, len(win))
            ):
                return True
        return False


class PivotTracker:
    """Williams pivots and their features, updated one closed bar at a time.

    >>> tr = PivotTracker(60_000_000, n=1, levels=1)
    >>> for i, h in enumerate([10.0, 12.0, 11.0]):
    ...     new = tr.update(i * 60_000_000, h, h - 1.0, h - 0.5)
    >>> [(p.kind.value, p.bar_index, p.price, p.confirm_us) for p in new]
    [('high', 1, 12.0, 180000000)]
    """

    def __init__(self, tf_us: int, *, n: int = 2, levels: int = 5) -> None:
        check_params(tf_us, n, levels)
        self.tf_us = int(tf_us)
        self.n = int(n)
        self.levels = int(levels)
        self._highs = _Chain(PivotKind.HIGH, self.n, self.levels)
        self._lows = _Chain(PivotKind.LOW, self.n, self.levels)
        self._bars = 0
        self._last_open_us: int | None = None
        self._last_close = 1.0
        self._packed: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]] | None = None
        """:meth:`level_state_arrays` at query time 0, kept until the next bar (only placeholder times move)."""

    @property
    def bars_seen(self) -> int:
        """The number of bars fed in."""
        return self._bars

    @property
    def last_close_us(self) -> int | None:
        """Close time of the last bar fed in, or None before the first."""
        return None if self._last_open_us is None else self._last_open_us + self.tf_us

    def update(self, open_us: int, high: float, low: float, close: float) -> list[Pivot]:
        """Feed the next closed bar; return the pivots it confirms (confirm_us = its close), lowest level first.

        Bars must arrive in order, at least ``tf_us`` apart; prices finite with high >= low > 0.
        """
        open_us = int(open_us)
        high, low, close = float(high), float(low), float(close)
        self._packed = None
        where = f"bar #{self._bars} (open_us={open_us})"
        if self._last_open_us is not None and open_us - self._last_open_us < self.tf_us:
            raise PivotInputError(
                f"{where} opens less than tf_us={self.tf_us} after the previous bar "
                f"(open_us={self._last_open_us}); feed closed bars in time order, once each"
            )
        if not all(math.isfinite(v) and v > 0 for v in (high, low, close)) or high < low:
            raise PivotInputError(
                f"{where} has invalid prices high={high}, low={low}, close={close}; "
                "need finite prices with high >= low > 0"
            )
        confirm = open_us + self.tf_us
        index = self._bars
        self._bars += 1
        self._last_open_us = open_us
        self._last_close = close
        out: list[Pivot] = []
        self._highs.push(0, _Elem(high, index, open_us, high, confirm, close), out)
        self._lows.push(0, _Elem(-low, index, open_us, low, confirm, close), out)
        out.sort(key=lambda p: (p.level, p.kind.value))
        return out

    def features(
        self, query_us: int | None = None, *, dtype: DTypeLike = np.float32
    ) -> tuple[NDArray[np.floating], BoolArr]:
        """Features ``[10 · levels]`` and availability ``[levels]`` at ``query_us``, as ``pivot_features``.

        ``query_us`` defaults to the last bar's close and may not precede it; it should also precede the
        next bar's close (that bar is not fed yet, so it is treated as not closed).
        """
        close_us = self.last_close_us
        t = close_us if query_us is None else int(query_us)
        if t is None:
            t = 0
        if close_us is not None and t < close_us:
            raise PivotInputError(
                f"query_us={t} precedes the last bar's close {close_us}; the tracker only answers for the "
                "present (use pivot_features on stored bars for past times)"
            )
        # The batch gather's compiled kernels on this one query (see level_state_arrays): the same
        # arithmetic as level_features, without its ~30 numpy calls on [levels] arrays.
        ints, floats, flags = self.level_state_arrays(t)
        query, price = np.array([t], dtype=np.int64), np.array([self._last_close], dtype=np.float64)
        log_args, log1p_args = kernels.pivot_log_args(query, price, self.tf_us, ints, floats)
        out = np.empty((1, self.levels, FEATURES_PER_LEVEL), dtype=dtype)
        kernels.pivot_features_into(query, self.tf_us, ints, floats, flags, np.log(log_args), np.log1p(log1p_args), out)
        return out.reshape(-1), flags[4, 0].copy()

    def level_state(self, query_us: int) -> LevelState:
        """Every level's :class:`LevelState` at ``query_us`` (shape ``[levels]``), for :func:`level_features`."""
        columns = zip(*(self._level_row(k, query_us) for k in range(self.levels)), strict=True)
        return LevelState(*(np.array(col, dtype=dt) for col, dt in zip(columns, LEVEL_STATE_DTYPES, strict=True)))

    def level_state_arrays(self, query_us: int) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
        """:meth:`level_state` packed as :func:`rltrade.features.gather_kernels.pivot_level_states` writes it.

        That is ``ints [6, 1, levels]`` (H1 time, H1 index, L1 time, L1 index, then two unused rows),
        ``floats [5, 1, levels]`` (H1, H2, L1, L2 prices, the close of H1's bar) and ``flags [5, 1,
        levels]`` (has H2, has L2, provisional high, provisional low, available).

        The state changes only with a new bar, apart from the placeholder time ``query_us - tf_us`` of a
        level with no H1 (L1) yet: the arrays are packed once per bar and that time is set per query.
        """
        if self._packed is None:
            rows = [self._level_row(k, 0) for k in range(self.levels)]
            ints = np.zeros((6, 1, self.levels), dtype=np.int64)
            ints[:4, 0] = [[row[i] for row in rows] for i in _INT_FIELDS]
            floats = np.array([[[row[i] for row in rows]] for i in _FLOAT_FIELDS], dtype=np.float64)
            flags = np.array([[[row[i] for row in rows]] for i in _FLAG_FIELDS], dtype=np.bool_)
            self._packed = (ints, floats, flags)
        ints, floats, flags = self._packed
        ints = ints.copy()
        for kind, row in ((self._highs, 0), (self._lows, 2)):
            for k in range(self.levels):
                if not kind.last2[k]:
                    ints[row, 0, k] = query_us - self.tf_us
        return ints, floats.copy(), flags.copy()  # the packed arrays stay the tracker's

    def _level_row(self, level: int, t: int) -> tuple[float | int | bool, ...]:
        """Return the :class:`LevelState` fields of one level, as Python values in field order."""
        his, los = self._highs.last2[level], self._lows.last2[level]
        placeholder = _Elem(0.0, 0, t - self.tf_us, 1.0, 0, 1.0)
        h1 = his[-1] if his else placeholder
        h2 = his[-2] if len(his) == 2 else placeholder
        l1 = los[-1] if los else placeholder
        l2 = los[-2] if len(los) == 2 else placeholder
        return (
            t,
            self._last_close,
            h1.price,
            h2.price,
            h1.time_us,
            h1.bar_index,
            l1.price,
            l2.price,
            l1.time_us,
            l1.bar_index,
            h1.bar_close,
            len(his) == 2,
            len(los) == 2,
            self._highs.provisional(level),
            self._lows.provisional(level),
            bool(his) and bool(los) and self._bars > 0,
        )
