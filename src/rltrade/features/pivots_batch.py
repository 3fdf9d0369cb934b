"""Vectorised batch computation of Williams market-structure pivots (see :mod:`rltrade.features.pivots`).

Every level is computed with shifted numpy comparisons over its input sequence: level 0's input is the
bars (price = high for highs, low for lows), level k+1's input is the level-k pivots of the same kind.
The cost is O(n · M) vectorised work per level, M being the length of that level's input.

This module also holds the containers shared by the batch, streaming and reference implementations
(:class:`PivotSet`, :class:`PivotArrays`, :class:`Pivot`) and the input checks, so that the three agree on
what valid input is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]


class PivotInputError(ValueError):
    """Bars or parameters handed to the pivot code are unusable; the message says where and what to do."""


class PivotKind(enum.StrEnum):
    """Swing highs and swing lows form two separate pivot sequences at every level."""

    HIGH = "high"
    LOW = "low"


class Pivot(NamedTuple):
    """One pivot, as returned by :meth:`PivotTracker.update` and :meth:`PivotSet.records`."""

    level: int
    kind: PivotKind
    bar_index: int
    """Bar index of the pivot bar (row in the bar arrays)."""
    time_us: int
    """Open time of the pivot bar."""
    price: float
    """High (for a HIGH) or low (for a LOW) of the pivot bar."""
    confirm_us: int
    """First time the pivot is visible; see the module docstring of :mod:`rltrade.features.pivots`."""


class PivotArrays(NamedTuple):
    """The pivots of one level and kind, in bar order (so ``confirm_us_P`` is strictly increasing)."""

    index_P: I64
    time_us_P: I64
    price_P: F64
    confirm_us_P: I64

    @classmethod
    def empty(cls) -> PivotArrays:
        """Return arrays with no pivots."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))


class PackedPivots(NamedTuple):
    """A :class:`PivotSet`'s levels concatenated: level ``k`` is ``[off[k], off[k+1])`` of each array."""

    off_hi: I64
    hi_IP: I64
    """Highs: bar index, bar open time, confirm time (int64 ``[3, P]``)."""
    hi_price_P: F64
    off_lo: I64
    lo_IP: I64
    lo_price_P: F64
    off_prov_hi: I64
    prov_hi_M: BoolArr
    off_prov_lo: I64
    prov_lo_M: BoolArr


@dataclass(frozen=True, eq=False)
class PivotSet:
    """All pivots of a bar series, per level and kind, plus the provisional-flag tables.

    ``highs[k]`` / ``lows[k]`` are the level-k pivots. ``provisional_high[k][m]`` is the provisional flag
    of level k when exactly the first ``m`` elements of level k's input sequence are visible (bars closed
    for k = 0, level-(k-1) highs confirmed for k ≥ 1), for ``m = 0 .. len(input)``; likewise for lows.
    """

    n: int
    tf_us: int
    n_bars: int
    highs: tuple[PivotArrays, ...]
    lows: tuple[PivotArrays, ...]
    provisional_high: tuple[BoolArr, ...]
    provisional_low: tuple[BoolArr, ...]

    @property
    def levels(self) -> int:
        """The number of levels."""
        return len(self.highs)

    def of(self, kind: PivotKind, level: int) -> PivotArrays:
        """Return the confirmed pivots of ``kind`` at ``level``."""
        return (self.highs if kind is PivotKind.HIGH else self.lows)[level]

    @cached_property
    def packed(self) -> PackedPivots:
        """Every level's arrays concatenated with offsets, for the compiled gather (built once, on first use)."""

        def pack(arrays: tuple[PivotArrays, ...]) -> tuple[I64, I64, F64]:
            offsets = np.concatenate([[0], np.cumsum([len(a.price_P) for a in arrays])]).astype(np.int64)
            ints = np.zeros((3, int(offsets[-1])), dtype=np.int64)
            for a, lo, hi in zip(arrays, offsets[:-1], offsets[1:], strict=True):
                ints[:, lo:hi] = np.stack([a.index_P, a.time_us_P, a.confirm_us_P]).astype(np.int64)
            prices = np.concatenate([np.asarray(a.price_P, np.float64) for a in arrays]) if arrays else np.empty(0)
            return offsets, ints, prices

        def pack_flags(tables: tuple[BoolArr, ...]) -> tuple[I64, BoolArr]:
            offsets = np.concatenate([[0], np.cumsum([len(t) for t in tables])]).astype(np.int64)
            flags = np.concatenate(tables).astype(np.bool_) if tables else np.empty(0, np.bool_)
            return offsets, flags

        return PackedPivots(
            *pack(self.highs), *pack(self.lows), *pack_flags(self.provisional_high), *pack_flags(self.provisional_low)
        )

    def records(self, until_us: int | None = None) -> list[Pivot]:
        """Every pivot with ``confirm_us <= until_us`` (all when None) as sorted :class:`Pivot` tuples."""
        out: list[Pivot] = []
        for level in range(self.levels):
            for kind in PivotKind:
                arr = self.of(kind, level)
                for i, t, p, c in zip(
                    arr.index_P.tolist(),
                    arr.time_us_P.tolist(),
                    arr.price_P.tolist(),
                    arr.confirm_us_P.tolist(),
                    strict=True,
                ):
                    if until_us is None or c <= until_us:
                        out.append(Pivot(level, kind, i, t, p, c))
        out.sort(key=_record_key)
        return out


def _record_key(p: Pivot) -> tuple[int, int, str, int]:
    return (p.confirm_us, p.level, p.kind.value, p.bar_index)


def check_params(tf_us: int, n: int, levels: int) -> None:
    """Reject a non-positive bar length, neighbour count or level count."""
    for name, value in (("tf_us", tf_us), ("n", n), ("levels", levels)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise PivotInputError(f"{name} must be a positive integer, got {value!r}")


def check_bars(high_T: ArrayLike, low_T: ArrayLike, open_us_T: ArrayLike, tf_us: int) -> tuple[F64, F64, I64]:
    """Validate bar arrays and return them as contiguous float64 / int64 arrays.

    Requirements: 1-D, equal lengths; ``open_us_T`` integer microseconds with consecutive opens at least
    ``tf_us`` apart (bars sorted, not overlapping; gaps are allowed); highs and lows finite with
    ``high >= low > 0`` (prices enter log ratios).
    """
    high = np.ascontiguousarray(high_T, dtype=np.float64)
    low = np.ascontiguousarray(low_T, dtype=np.float64)
    opens = np.asarray(open_us_T)
    if opens.dtype.kind not in "iu":
        raise PivotInputError(
            f"open_us_T must hold integer microseconds since the epoch, got dtype {opens.dtype}; "
            "convert with .astype(np.int64) after scaling to µs"
        )
    opens = np.ascontiguousarray(opens, dtype=np.int64)
    for name, arr in (("high_T", high), ("low_T", low), ("open_us_T", opens)):
        if arr.ndim != 1:
            raise PivotInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if not len(high) == len(low) == len(opens):
        raise PivotInputError(
            f"bar arrays differ in length: high_T {len(high)}, low_T {len(low)}, open_us_T {len(opens)}"
        )
    check_prices("high_T", high)
    check_prices("low_T", low)
    bad = np.flatnonzero(high < low)
    if bad.size:
        r = int(bad[0])
        raise PivotInputError(
            f"{bad.size} bars have high < low, first at row {r} (high {high[r]}, low {low[r]}); fix the source"
        )
    check_opens(opens, tf_us)
    return high, low, opens


def check_opens(opens: I64, tf_us: int) -> None:
    """Reject bars that are unsorted or overlap (consecutive opens less than ``tf_us`` apart)."""
    steps = np.diff(opens)
    bad = np.flatnonzero(steps < tf_us)
    if bad.size:
        r = int(bad[0]) + 1
        raise PivotInputError(
            f"open_us_T must increase by at least tf_us={tf_us} per bar (sorted, non-overlapping bars); "
            f"row {r} opens {int(steps[r - 1])} µs after row {r - 1}; sort and de-duplicate the bars"
        )


def check_prices(name: str, x: F64) -> None:
    """Reject non-finite or non-positive prices, naming the first offending row."""
    bad = np.flatnonzero(~(np.isfinite(x) & (x > 0)))
    if bad.size:
        r = int(bad[0])
        raise PivotInputError(
            f"{name} has {bad.size} non-finite or non-positive values, first at row {r} ({float(x[r])!r}); "
            "drop or fill those bars before computing pivots"
        )


def strict_peaks(x_M: F64, n: int) -> BoolArr:
    """``out[j]`` is True when ``x[j]`` is strictly above each of ``x[j-n .. j+n]`` other than itself.

    Positions without n neighbours on both sides (the first and last n) are never peaks.
    """
    m = len(x_M)
    out = np.zeros(m, dtype=np.bool_)
    if m < 2 * n + 1:
        return out
    centre = x_M[n : m - n]
    ok = np.ones(m - 2 * n, dtype=np.bool_)
    for d in range(1, n + 1):
        ok &= centre > x_M[n - d : m - n - d]
        ok &= centre > x_M[n + d : m - n + d]
    out[n : m - n] = ok
    return out


def provisional_table(x_M: F64, n: int) -> BoolArr:
    """Provisional flag for every visible prefix of a level's input sequence.

    ``out[m]`` (``m = 0 .. M``) is True when, with only ``x[0 .. m-1]`` seen, one of the last n elements
    ``j ∈ [m-n, m-1]`` has n left neighbours, is strictly above all of them, and is strictly above every
    right neighbour seen so far (``x[j+1 .. m-1]``): it becomes a pivot if the next ``n-(m-1-j)``
    elements all come in strictly lower.
    """
    m_len = len(x_M)
    out = np.zeros(m_len + 1, dtype=np.bool_)
    left_ok = np.zeros(m_len, dtype=np.bool_)
    if m_len > n:
        ok = np.ones(m_len - n, dtype=np.bool_)
        for d in range(1, n + 1):
            ok &= x_M[n:] > x_M[n - d : m_len - d]
        left_ok[n:] = ok
    beats_right = np.ones(m_len, dtype=np.bool_)  # x[j] > x[j+1 .. j+d] for the current d
    for d in range(n):
        if d > 0:
            beats_right[: m_len - d] &= x_M[: m_len - d] > x_M[d:]
        cand = left_ok[: m_len - d] & beats_right[: m_len - d]
        # the candidate j = m-1-d with d right neighbours seen: prefix length m = j + 1 + d
        out[d + 1 :] |= cand
    return out


def compute_pivots(
    high_T: ArrayLike, low_T: ArrayLike, open_us_T: ArrayLike, tf_us: int, *, n: int = 2, levels: int = 5
) -> PivotSet:
    """All pivots of ``levels`` recursive levels over the bars (see :mod:`rltrade.features.pivots`).

    A level-0 pivot at bar i is confirmed at ``open_us[i+n] + tf_us``; a level-(k+1) pivot at position j
    of the level-k sequence is confirmed at the confirmation time of the level-k pivot at position j+n.
    """
    check_params(tf_us, n, levels)
    high, low, opens = check_bars(high_T, low_T, open_us_T, tf_us)
    close_us = opens + np.int64(tf_us)
    bar_index = np.arange(len(high), dtype=np.int64)
    per_kind: dict[PivotKind, tuple[list[PivotArrays], list[BoolArr]]] = {}
    for kind, prices in ((PivotKind.HIGH, high), (PivotKind.LOW, low)):
        # lows are peaks of the negated lows; negation is exact, so ties stay ties
        sign = 1.0 if kind is PivotKind.HIGH else -1.0
        seq = PivotArrays(bar_index, opens, prices, close_us)  # level 0 input: every bar, visible at close
        found: list[PivotArrays] = []
        tables: list[BoolArr] = []
        for _ in range(levels):
            key = sign * seq.price_P
            tables.append(provisional_table(key, n))
            pos = np.flatnonzero(strict_peaks(key, n))
            seq = PivotArrays(seq.index_P[pos], seq.time_us_P[pos], seq.price_P[pos], seq.confirm_us_P[pos + n])
            found.append(seq)
        per_kind[kind] = (found, tables)
    return PivotSet(
        n=int(n),
        tf_us=int(tf_us),
        n_bars=len(high),
        highs=tuple(per_kind[PivotKind.HIGH][0]),
        lows=tuple(per_kind[PivotKind.LOW][0]),
        provisional_high=tuple(per_kind[PivotKind.HIGH][1]),
        provisional_low=tuple(per_kind[PivotKind.LOW][1]),
    )
