"""Per-symbol trade sequencing: dedupe, bounded reordering and gap detection by trade id (pure, synchronous).

Binance numbers the trades of a symbol ``t = 0, 1, 2, ...`` without holes, so the id alone says whether a
trade was already delivered, arrived early, or is missing. :class:`Sequencer` turns an arrival order
(duplicated, shuffled, with holes) into the delivery order: every id at most once, strictly increasing,
and each hole reported once as a :class:`Gap` at the place it occurs.

Holding policy
    A trade that arrives ahead of a missing id is *held*. The hole is declared a :class:`Gap` when more than
    ``window`` trades are held, or when the oldest held trade has waited ``hold_s`` seconds (checked on
    :meth:`Sequencer.push` and :meth:`Sequencer.expire`, with the caller's monotonic clock ``now_s``); the
    held trades after it are then released. So reordering within ``window`` trades and ``hold_s`` seconds is
    repaired exactly, and memory never exceeds ``window + 1`` items.

    Before the first release there is no expected id yet: the first trades are held the same way and the
    smallest of them starts the sequence (so a reordered start is repaired too), unless ``next_id`` is given.

Arrivals below the expected id are dropped: ``DUPLICATE`` when that id was delivered (or is already held),
``LATE`` when it lies in a hole already declared a gap (its place in the order has passed; the caller may
have backfilled it). Recent gaps are remembered for this (the last ``history``); an older one reads as
``DUPLICATE``.

The class is generic in the item it carries (a :class:`~rltrade.live.events.TradeEvent` in the feed, plain
ints in the property tests).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gap:
    """Trade ids ``first..last`` (inclusive) never arrived in time."""

    first: int
    last: int

    @property
    def size(self) -> int:
        """The number of trade ids missing."""
        return self.last - self.first + 1


class Arrival(StrEnum):
    """How one pushed trade was classified."""

    IN_ORDER = "in_order"
    """Accepted; no higher id had arrived before it."""
    REORDERED = "reordered"
    """Accepted although a higher id arrived before it (it fills a hole, or was held behind one)."""
    DUPLICATE = "duplicate"
    LATE = "late"


class Sequencer(Generic[T]):
    """Deliver one symbol's trades once each, in id order; report holes (see the module docstring)."""

    def __init__(self, window: int, hold_s: float, *, next_id: int | None = None, history: int = 256) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1 trade, got {window}")
        if not hold_s >= 0:
            raise ValueError(f"hold_s must be >= 0 seconds, got {hold_s}")
        self.window = window
        self.hold_s = hold_s
        self.next_id = next_id
        """The id the next delivered trade must have (``None`` until the sequence has started)."""
        self.max_seen: int | None = None
        self._held: dict[int, T] = {}
        # (arrival time, id) in arrival order; entries whose id has left _held are skipped lazily.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._gaps: deque[Gap] = deque(maxlen=history)

    @property
    def held(self) -> int:
        """Trades waiting behind a hole (at most ``window``)."""
        return len(self._held)

    def push(self, trade_id: int, item: T, now_s: float) -> tuple[Arrival, list[T | Gap]]:
        """Take one arrival; return its classification and what is now deliverable, in order."""
        nxt = self.next_id
        if nxt is not None and trade_id < nxt:
            late = any(g.first <= trade_id <= g.last for g in self._gaps)
            return (Arrival.LATE if late else Arrival.DUPLICATE), []
        if trade_id in self._held:
            return Arrival.DUPLICATE, []
        arrival = Arrival.REORDERED if self.max_seen is not None and trade_id < self.max_seen else Arrival.IN_ORDER
        if self.max_seen is None or trade_id > self.max_seen:
            self.max_seen = trade_id
        out: list[T | Gap] = []
        if trade_id == nxt and not self._held:
            # The common case, kept cheap: in order with nothing waiting.
            self.next_id = trade_id + 1
            out.append(item)
        else:
            self._held[trade_id] = item
            self._arrivals.append((now_s, trade_id))
            self._drain(out)
            while len(self._held) > self.window:
                self._flush(out)
        self._expire(now_s, out)
        return arrival, out

    def expire(self, now_s: float) -> list[T | Gap]:
        """Declare the holes whose oldest waiting trade has been held ``hold_s`` by ``now_s``; release after them.

        ``expire(math.inf)`` flushes everything (end of stream).
        """
        out: list[T | Gap] = []
        self._expire(now_s, out)
        return out

    def deadline(self) -> float | None:
        """Return the ``now_s`` at which :meth:`expire` will next have something to do (``None``: nothing held)."""
        self._skip_released()
        return self._arrivals[0][0] + self.hold_s if self._arrivals else None

    def _expire(self, now_s: float, out: list[T | Gap]) -> None:
        while True:
            self._skip_released()
            if not self._arrivals or self._arrivals[0][0] + self.hold_s > now_s:
                return
            self._flush(out)

    def _skip_released(self) -> None:
        while self._arrivals and self._arrivals[0][1] not in self._held:
            self._arrivals.popleft()

    def _flush(self, out: list[T | Gap]) -> None:
        lo = min(self._held)
        if self.next_id is not None and lo > self.next_id:
            gap = Gap(self.next_id, lo - 1)
            self._gaps.append(gap)
            out.append(gap)
        self.next_id = lo
        self._drain(out)

    def _drain(self, out: list[T | Gap]) -> None:
        nxt = self.next_id
        if nxt is None:
            return
        held = self._held
        while nxt in held:
            out.append(held.pop(nxt))
            nxt += 1
        self.next_id = nxt
