"""The live market-data feed: Binance combined websocket streams in, ordered and checked :data:`LiveEvent` s out.

Usage (inside a running asyncio loop)::

    from rltrade.live.feed import LiveFeed, LiveFeedConfig
    from rltrade.live.events import TradeEvent, BookEvent, StreamStatus, StreamHealth

    config = LiveFeedConfig(url="wss://stream.binance.com:9443", symbols={"eth": "ETHUSDT", "btc": "BTCUSDT"})
    async with LiveFeed(config, backfill=my_backfill) as feed:   # backfill: optional, see ``Backfill``
        async for event in feed.events():                      # runs until ``await feed.aclose()``
            match event:
                case TradeEvent(): ...       # once each, in trade-id order per symbol
                case BookEvent(): ...        # best bid/offer, as received (not sequenced)
                case StreamStatus(health=StreamHealth.STALE, role=role): ...  # stop trusting ``role``
    print(feed.stats)                                          # FeedStats counters, live at any time

``config.url`` is the endpoint *base* (``ws://127.0.0.1:PORT`` for the test replay server); the feed appends
``/stream?streams=ethusdt@trade/ethusdt@bookTicker/...``. The test server
(``tests.support.ws_replay_server``) returns such a base URL.

Guarantees (per symbol)
    Every :class:`TradeEvent` is delivered at most once and in strictly increasing ``trade_id``; trade ids
    it could not deliver are announced, in band, before the next trade of that symbol:
    ``StreamStatus(GAP, first_missing, last_missing)`` then either ``BACKFILLED`` (the missing trades follow,
    fetched through ``backfill``) or ``STALE`` (no backfill, or it failed: the range is lost). After a
    ``STALE`` the first trade of that role is preceded by ``RECOVERED``: trades flow contiguously again
    from there; the engine decides how long the hole poisons its windows.

Events of the connection (``role=None``): ``CONNECTED`` on each successful (re)connect, ``DISCONNECTED``
with the reason when it is lost. A silent socket (no message for ``heartbeat_timeout_s``, although the
websocket's own pings may still be answered) gives ``STALE`` for every role, ``DISCONNECTED``, and a
reconnect.

Faults and policies
    - Disconnect / refused connect: reconnect after ``min(cap, base·2^n)·U(0.5, 1)`` seconds (``n``
      consecutive failures, ``U`` from a generator seeded by ``config.seed``); ``n`` resets once a
      connection delivers a valid message. After ``max_connect_failures`` consecutive failures (if set), or
      ``max_initial_failures`` before any connection delivered data (a wrong URL, nothing listening),
      :meth:`LiveFeed.events` raises :class:`FeedGaveUp` saying why (``connection refused``...).
      ``FeedStats.connect_failures`` / ``last_error`` show the current streak meanwhile.
    - Duplicates, reordering, late messages: the per-symbol :class:`~rltrade.live.sequencer.Sequencer`
      holds trades that arrive ahead of a missing id (at most ``reorder_window`` of them, at most
      ``reorder_hold_s`` seconds); a hole still open then is a gap. An id already delivered is a duplicate,
      an id arriving after its hole was declared a gap is *late*: both are counted and dropped.
    - Malformed messages are counted per reason (:class:`~rltrade.live.messages.MalformedReason`), logged
      once each at WARNING on the ``rltrade.live.feed`` logger, and skipped.
    - Slow consumer: the output queue holds ``queue_size`` events. When it is full the feed waits
      (backpressure): it stops reading the socket, so memory stays bounded and nothing is dropped on our side;
      the kernel buffers, then the exchange, absorb the lag (Binance drops a client that lags too far, which
      becomes a reconnect and a backfilled gap). ``FeedStats.queue_full_waits`` counts those waits and
      ``queue_high_water`` the fullest the queue has been.

Book tickers are passed through as received (Binance's ``u`` is shared with the depth stream and is not
contiguous per stream), so they are neither deduplicated nor gap-checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Literal

import numpy as np
import websockets
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from websockets.asyncio.client import ClientConnection, connect

from rltrade.live.events import BookEvent, LiveEvent, StreamHealth, StreamStatus, TradeEvent
from rltrade.live.messages import MalformedMessage, MessageParser
from rltrade.live.sequencer import Arrival, Gap, Sequencer

__all__ = ["Backfill", "FeedGaveUp", "FeedStats", "LiveFeed", "LiveFeedConfig", "describe_connect_error"]

logger = logging.getLogger(__name__)

Backfill = Callable[[str, int, int], Awaitable[Sequence[TradeEvent]]]
"""``await backfill(symbol, first_id, last_id)``: the trades ``first_id..last_id`` (inclusive) of ``symbol``
(``"ETHUSDT"``), any order; may raise. Production: :func:`rltrade.live.backfill.ccxt_backfill`."""


class FeedGaveUp(ConnectionError):
    """Too many consecutive connections failed or delivered nothing; the feed stopped.

    ``url``: the endpoint; ``attempts``: consecutive failed attempts; ``reason``: the last failure in words
    (``"connection refused"``); ``ever_connected``: whether any connection delivered data before.
    """

    def __init__(self, message: str, *, url: str, attempts: int, reason: str, ever_connected: bool) -> None:
        super().__init__(message)
        self.url, self.attempts, self.reason, self.ever_connected = url, attempts, reason, ever_connected


def describe_connect_error(e: BaseException) -> str:
    """Say in words why a connection failed: ``connection refused``, ``name not resolved``, ``timed out``..."""
    import socket

    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"host name not resolved ({e.strerror or e})"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, websockets.InvalidStatus):
        return f"the server answered HTTP {e.response.status_code}, not a websocket"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    return f"{type(e).__name__}: {e}"


class LiveFeedConfig(BaseModel):
    """Where to connect, what to subscribe, and the fault-handling knobs of :class:`LiveFeed`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    url: str = "wss://stream.binance.com:9443"
    """Endpoint base, ``ws://`` or ``wss://`` with no path or query; ``/stream?streams=...`` is appended."""
    symbols: dict[str, str] = Field(default_factory=lambda: {"eth": "ETHUSDT", "btc": "BTCUSDT"})
    """Role -> Binance symbol. ``eth`` is the traded symbol, ``btc`` the reference."""
    book: bool = True
    """Also subscribe ``<sym>@bookTicker`` (best bid/offer) for every symbol."""
    heartbeat_timeout_s: float = Field(10.0, gt=0)
    """No message for this long (while waiting to read) means the stream is silent: STALE and reconnect."""
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_cap_s: float = Field(30.0, gt=0)
    max_connect_failures: int | None = Field(None, ge=1)
    """Give up (``FeedGaveUp``) after this many consecutive useless connections; ``None``: never."""
    max_initial_failures: int | None = Field(None, ge=1)
    """Give up after this many consecutive failures *before any connection delivered data* (a wrong URL,
    nothing listening); once data has flowed only ``max_connect_failures`` applies. ``None``: never."""
    open_timeout_s: float = Field(10.0, gt=0)
    """Websocket opening handshake timeout."""
    reorder_window: int = Field(256, ge=1)
    """Most trades held per symbol behind a missing id before the hole is declared a gap."""
    reorder_hold_s: float = Field(0.5, ge=0)
    """Longest a trade is held behind a missing id before the hole is declared a gap."""
    backfill_timeout_s: float = Field(30.0, gt=0)
    max_backfill: int = Field(100_000, ge=1)
    """Gaps larger than this many trades are not backfilled (STALE instead)."""
    queue_size: int = Field(10_000, ge=1)
    """Capacity of the output queue; when full the feed stops reading the socket (backpressure)."""
    seed: int = 0
    """Seeds the reconnect jitter."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("ws://", "wss://")) or "?" in url or url.rstrip("/").count("/") > 2:
            raise ValueError(
                f"url {url!r} must be a ws:// or wss:// endpoint base like 'wss://stream.binance.com:9443'"
            )
        return url.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> LiveFeedConfig:
        if not self.symbols:
            raise ValueError("symbols is empty: give role -> symbol, e.g. {'eth': 'ETHUSDT', 'btc': 'BTCUSDT'}")
        if len(set(self.symbols.values())) != len(self.symbols):
            raise ValueError(f"symbols {self.symbols} maps two roles to one symbol")
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError(f"backoff_cap_s {self.backoff_cap_s} < backoff_base_s {self.backoff_base_s}")
        return self


@dataclasses.dataclass
class FeedStats:
    """Counters of one :class:`LiveFeed`, updated as it runs (read :meth:`LiveFeed.stats`; copy to keep)."""

    messages: int = 0
    """Websocket messages received, valid or not."""
    trades: int = 0
    """Trades delivered (from the stream and from backfill)."""
    books: int = 0
    """Book tickers delivered."""
    duplicates: int = 0
    reordered: int = 0
    """Trades accepted although a higher id of their symbol had arrived first."""
    late_dropped: int = 0
    """Trades dropped because they arrived after their hole had been declared a gap."""
    gaps: int = 0
    missing_trades: int = 0
    """Trade ids covered by gaps (backfilled or not)."""
    backfilled_trades: int = 0
    backfill_failures: int = 0
    malformed: Counter[str] = dataclasses.field(default_factory=Counter)
    """Malformed messages by :class:`~rltrade.live.messages.MalformedReason` value."""
    connects: int = 0
    """Connections opened."""
    reconnects: int = 0
    """Connection attempts after the first."""
    heartbeat_timeouts: int = 0
    queue_full_waits: int = 0
    """Times the feed found the output queue full and waited for the consumer."""
    queue_high_water: int = 0
    connect_failures: int = 0
    """Consecutive failed or useless connection attempts (0 once a connection delivers data)."""
    last_error: str | None = None
    """Why the last connection attempt failed or ended, in words (None before any failure)."""
    ever_connected: bool = False
    """Whether any connection delivered data."""

    def copy(self) -> FeedStats:
        """Return a copy whose ``malformed`` counter is not shared."""
        return dataclasses.replace(self, malformed=Counter(self.malformed))


class LiveFeed:
    """Binance combined-stream client with sequencing, backfill and reconnects; see the module docstring."""

    def __init__(self, config: LiveFeedConfig, backfill: Backfill | None = None) -> None:
        self.config = config
        self._backfill = backfill
        self._stats = FeedStats()
        self._parser = MessageParser(config.symbols, book=config.book)
        self._seq: dict[str, Sequencer[TradeEvent]] = {
            role: Sequencer(config.reorder_window, config.reorder_hold_s) for role in config.symbols
        }
        self._queue: asyncio.Queue[LiveEvent] = asyncio.Queue(config.queue_size)
        self._rng = np.random.default_rng(config.seed)
        self._stale: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._got_data = False
        self._last_data_s: float | None = None
        # The system proxy (websockets' default) for the exchange, never for a local test server.
        host = urllib.parse.urlsplit(config.url).hostname or ""
        self._proxy: Literal[True] | None = None if host in ("127.0.0.1", "localhost", "::1") else True

    @property
    def stats(self) -> FeedStats:
        """The live counters (mutated as the feed runs)."""
        return self._stats

    @property
    def stream_url(self) -> str:
        """The full combined-stream URL the feed connects to."""
        return f"{self.config.url}/stream?streams={'/'.join(self._parser.streams)}"

    async def __aenter__(self) -> LiveFeed:
        """Start the feed; the context closes it on exit."""
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the feed (:meth:`aclose`)."""
        await self.aclose()

    def start(self) -> None:
        """Start connecting and reading in a background task of the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rltrade-live-feed")

    async def aclose(self) -> None:
        """Stop the feed and close the connection; events already queued stay readable."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Every event in order, until :meth:`aclose` (then it ends) or the feed gives up (``FeedGaveUp``)."""
        self.start()
        task = self._task
        assert task is not None
        queue = self._queue
        while True:
            if not queue.empty():
                yield queue.get_nowait()
                continue
            if task.done():
                break
            getter = asyncio.ensure_future(queue.get())
            try:
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                yield getter.result()
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error

    # ------------------------------------------------------------------------------------------ connection

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        failures = 0
        attempt = 0
        while True:
            if attempt:
                self._stats.reconnects += 1
            attempt += 1
            self._got_data = False
            try:
                async with connect(
                    self.stream_url, open_timeout=cfg.open_timeout_s, close_timeout=1.0, proxy=self._proxy
                ) as ws:
                    self._stats.connects += 1
                    await self._emit(StreamStatus(StreamHealth.CONNECTED, None, self.stream_url, _now_us()))
                    reason = await self._read(ws)
                await self._emit(StreamStatus(StreamHealth.DISCONNECTED, None, reason, _now_us()))
            except (OSError, TimeoutError, websockets.WebSocketException) as e:
                reason = describe_connect_error(e)
                if self._stats.connects and self._got_data:
                    await self._emit(StreamStatus(StreamHealth.DISCONNECTED, None, reason, _now_us()))
            failures = 0 if self._got_data else failures + 1
            st = self._stats
            st.ever_connected = st.ever_connected or self._got_data
            st.connect_failures, st.last_error = failures, reason
            logger.warning("live feed: %s: %s; %d consecutive failures", cfg.url, reason, failures)
            limit = cfg.max_connect_failures
            if not st.ever_connected and cfg.max_initial_failures is not None:
                limit = cfg.max_initial_failures if limit is None else min(limit, cfg.max_initial_failures)
            if limit is not None and failures >= limit:
                raise FeedGaveUp(
                    f"cannot connect to {cfg.url}: {reason} ({failures} consecutive attempts failed or stayed "
                    f"silent); check the URL and that the server is up",
                    url=cfg.url,
                    attempts=failures,
                    reason=reason,
                    ever_connected=st.ever_connected,
                )
            last = self._last_data_s
            if last is None or loop.time() - last >= cfg.heartbeat_timeout_s:
                await self._mark_stale(f"no data for {cfg.heartbeat_timeout_s:g} s while disconnected")
            delay = min(cfg.backoff_cap_s, cfg.backoff_base_s * 2.0 ** min(failures, 60))
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))

    async def _read(self, ws: ClientConnection) -> str:
        """Read until the stream goes silent (returns why); connection errors propagate."""
        loop = asyncio.get_running_loop()
        heartbeat = self.config.heartbeat_timeout_s
        ready = loop.time()
        while True:
            hold = self._hold_deadline()
            if hold is not None and loop.time() >= hold:
                await self._expire(loop.time())
                hold = self._hold_deadline()
            silent_at = ready + heartbeat
            try:
                async with asyncio.timeout_at(silent_at if hold is None else min(silent_at, hold)):
                    raw = await ws.recv()
            except TimeoutError:
                now = loop.time()
                if now < silent_at:
                    continue  # a hold deadline: expired at the top of the loop
                self._stats.heartbeat_timeouts += 1
                await self._mark_stale(f"no message for {heartbeat:g} s")
                return f"heartbeat timeout: no message for {heartbeat:g} s"
            await self._on_message(raw, loop.time())
            # Silence is measured from when the feed is ready to read again, so time spent waiting on a
            # slow consumer or a backfill is never mistaken for a silent exchange.
            ready = loop.time()

    # ------------------------------------------------------------------------------------------ messages

    async def _on_message(self, raw: str | bytes, now_s: float) -> None:
        stats = self._stats
        stats.messages += 1
        try:
            event = self._parser.parse(raw, _now_us())
        except MalformedMessage as e:
            stats.malformed[e.reason.value] += 1
            logger.warning("live feed: malformed message skipped: %s", e)
            return
        self._got_data = True
        self._last_data_s = now_s
        if isinstance(event, BookEvent):
            stats.books += 1
            await self._emit(event)
            return
        arrival, out = self._seq[event.role].push(event.trade_id, event, now_s)
        if arrival is Arrival.DUPLICATE:
            stats.duplicates += 1
        elif arrival is Arrival.LATE:
            stats.late_dropped += 1
        elif arrival is Arrival.REORDERED:
            stats.reordered += 1
        if out:
            await self._deliver(event.role, event.symbol, out)

    def _hold_deadline(self) -> float | None:
        deadlines = [d for seq in self._seq.values() if (d := seq.deadline()) is not None]
        return min(deadlines) if deadlines else None

    async def _expire(self, now_s: float) -> None:
        for role, seq in self._seq.items():
            out = seq.expire(now_s)
            if out:
                await self._deliver(role, self.config.symbols[role], out)

    async def _deliver(self, role: str, symbol: str, out: list[TradeEvent | Gap]) -> None:
        for item in out:
            if isinstance(item, Gap):
                await self._on_gap(role, symbol, item)
            else:
                await self._emit_trade(item)

    async def _emit_trade(self, trade: TradeEvent) -> None:
        if trade.role in self._stale:
            self._stale.discard(trade.role)
            detail = f"trades of {trade.symbol} flow again from id {trade.trade_id}"
            await self._emit(StreamStatus(StreamHealth.RECOVERED, trade.role, detail, _now_us()))
        self._stats.trades += 1
        await self._emit(trade)

    async def _on_gap(self, role: str, symbol: str, gap: Gap) -> None:
        stats = self._stats
        stats.gaps += 1
        stats.missing_trades += gap.size
        gap_ids = {"first_missing": gap.first, "last_missing": gap.last}
        where = f"{symbol} trade ids {gap.first}..{gap.last} ({gap.size} trades)"
        await self._emit(StreamStatus(StreamHealth.GAP, role, f"missing {where}", _now_us(), **gap_ids))
        trades, failure = await self._fetch_gap(role, symbol, gap)
        if trades is None:
            stats.backfill_failures += self._backfill is not None
            logger.warning("live feed: %s lost: %s", where, failure)
            self._stale.add(role)
            await self._emit(StreamStatus(StreamHealth.STALE, role, f"{where} lost: {failure}", _now_us(), **gap_ids))
            return
        stats.backfilled_trades += len(trades)
        await self._emit(StreamStatus(StreamHealth.BACKFILLED, role, f"backfilled {where}", _now_us(), **gap_ids))
        for trade in trades:
            await self._emit_trade(trade)

    async def _fetch_gap(self, role: str, symbol: str, gap: Gap) -> tuple[list[TradeEvent] | None, str]:
        """Backfill a gap: its trades in id order, or ``None`` and why not. A backfill is used whole or not at all."""
        if self._backfill is None:
            return None, "no backfill configured"
        if gap.size > self.config.max_backfill:
            return None, f"larger than max_backfill={self.config.max_backfill}"
        try:
            async with asyncio.timeout(self.config.backfill_timeout_s):
                got = await self._backfill(symbol, gap.first, gap.last)
        except Exception as e:  # any failure of the callback means "not backfilled", never a crash
            return None, f"backfill failed: {type(e).__name__}: {e}"
        by_id: dict[int, TradeEvent] = {}
        for t in got:
            if t.symbol != symbol or t.role != role:
                return None, f"backfill returned a trade of {t.role}/{t.symbol}, expected {role}/{symbol}"
            if gap.first <= t.trade_id <= gap.last:
                by_id[t.trade_id] = t
        if len(by_id) != gap.size:
            return None, f"backfill returned {len(by_id)} of the {gap.size} missing trades"
        return [by_id[i] for i in range(gap.first, gap.last + 1)], ""

    async def _mark_stale(self, why: str) -> None:
        for role in self.config.symbols:
            if role not in self._stale:
                self._stale.add(role)
                await self._emit(StreamStatus(StreamHealth.STALE, role, why, _now_us()))

    async def _emit(self, event: LiveEvent) -> None:
        queue = self._queue
        if queue.full():
            self._stats.queue_full_waits += 1
        await queue.put(event)
        size = queue.qsize()
        if size > self._stats.queue_high_water:
            self._stats.queue_high_water = size


def _now_us() -> int:
    return time.time_ns() // 1_000
