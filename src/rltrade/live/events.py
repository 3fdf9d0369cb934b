"""The events the live feed hands to the live engine: normalised, validated, one per exchange message.

The feed (:mod:`rltrade.live.feed`) turns Binance combined-stream messages into these and guarantees, per
symbol, that trades arrive once each and in trade-id order; anything it could not guarantee (a gap it could
not backfill, a silent stream) is reported as a :class:`StreamStatus` event instead of being hidden.

Times are int64 microseconds since the epoch, UTC: ``time_us`` is the exchange's trade (or event) time,
``recv_us`` the local wall clock when the message was received (for latency figures only: features and
decisions never read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One exchange trade of ``symbol`` (``role`` ``"eth"`` traded, ``"btc"`` reference)."""

    role: str
    symbol: str
    trade_id: int
    time_us: int
    price: float
    qty: float
    side: int
    """+1 when the aggressor bought, −1 when it sold (Binance ``m`` true means the buyer was the maker)."""
    recv_us: int


@dataclass(frozen=True, slots=True)
class BookEvent:
    """A best bid / offer update of ``symbol``."""

    role: str
    symbol: str
    update_id: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    recv_us: int


class StreamHealth(StrEnum):
    """Health of the exchange stream, as the feed reports it."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    GAP = "gap"
    """Missing trade ids detected (``first_missing``..``last_missing``), backfill attempted."""
    BACKFILLED = "backfilled"
    STALE = "stale"
    """Data of ``role`` can no longer be trusted (gap not backfilled, or silent past the heartbeat timeout)."""
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A change of stream health, in band with the data so the engine sees it in order."""

    health: StreamHealth
    role: str | None
    detail: str
    recv_us: int
    first_missing: int | None = None
    last_missing: int | None = None


LiveEvent = TradeEvent | BookEvent | StreamStatus
