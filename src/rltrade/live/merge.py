"""Merge the per-symbol trade streams into one time-ordered stream, by watermark.

The feed guarantees order *per symbol* only: the two symbols come on separate streams, so a BTC trade may
arrive after an ETH trade that is newer than it. The state builder needs one stream in time order across
both. :class:`TradeMerger` queues trades per role and hands on those no future trade can precede: with
``last_us[r]`` the newest trade time seen of role ``r`` (each role's stream is in time order), every trade
with ``time_us ≤ min_r last_us[r]`` (the *watermark*) is final. Trades at equal times keep their role's
order; between roles, ties go in ``roles`` order (features do not depend on it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Sequence

from rltrade.live.events import TradeEvent


class TradeMerger:
    """Per-role queues of trades not yet handed on (module docstring)."""

    def __init__(self, roles: Sequence[str] = ("eth", "btc")) -> None:
        self.roles = tuple(roles)
        self._queues: dict[str, deque[TradeEvent]] = {r: deque() for r in self.roles}
        self.last_us: dict[str, int | None] = dict.fromkeys(self.roles)
        """Newest trade time received per role (queued or handed on)."""

    def push(self, trade: TradeEvent) -> None:
        """Queue ``trade``; its time must not be older than the newest of its role already pushed."""
        last = self.last_us[trade.role]
        if last is not None and trade.time_us < last:
            raise ValueError(
                f"{trade.role} trade {trade.trade_id} at {trade.time_us} µs is older than the role's newest "
                f"({last} µs): each role's trades must come in time order"
            )
        self._queues[trade.role].append(trade)
        self.last_us[trade.role] = trade.time_us

    def watermark(self, ignore: Collection[str] = ()) -> int | None:
        """Return the ``min`` of ``last_us`` over the roles not in ``ignore``.

        None while one of them has no trade yet, or when every role is ignored.
        """
        times = [self.last_us[r] for r in self.roles if r not in ignore]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    @property
    def newest_us(self) -> int | None:
        """The newest trade time of any role."""
        times = [t for t in self.last_us.values() if t is not None]
        return max(times) if times else None

    def pop_until(self, t_us: int) -> Iterator[TradeEvent]:
        """Queued trades with ``time_us ≤ t_us``, all roles merged in time order."""
        queues = [self._queues[r] for r in self.roles]
        while True:
            best: deque[TradeEvent] | None = None
            for q in queues:
                if q and q[0].time_us <= t_us and (best is None or q[0].time_us < best[0].time_us):
                    best = q
            if best is None:
                return
            yield best.popleft()

    def pending(self) -> int:
        """Trades queued, not yet handed on."""
        return sum(len(q) for q in self._queues.values())
