"""A local Binance combined-stream websocket server that replays recorded or synthetic messages, with faults.

:class:`ReplayServer` binds ``127.0.0.1`` on a free port (never another interface) and serves
``/stream?streams=a/b/...`` like ``wss://stream.binance.com:9443``: it sends, in order, the messages of its
script whose stream was requested (injected malformed messages go to everyone). The script is one session
in time: a client that reconnects resumes where the previous connection stopped, and what the fault plan
says was sent while nobody was connected is lost, as on the exchange. When the script is exhausted the
connection stays open and silent and :attr:`ReplayServer.finished` is set.

Sources
    :func:`load_capture`: the real ``*_wsraw_*.jsonl.gz`` files of ``../shared/data/real`` (ETH and BTC
    merged by their ``local_ts_ns``; the REST snapshot line skipped, depth updates skipped unless asked).
    :func:`synthetic_trades` + :func:`trade_messages`: any number of seeded trades (long soak runs).

Faults (:class:`FaultPlan`, applied by :func:`build_script`, seeded): remove trade-id ranges (gaps),
duplicate, swap within ``k`` (reorder), move ``k`` later (late), drop the connection after message ``i``
losing the next ``lost_on_drop``, go silent after message ``i``, inject raw (malformed) text, send bursts.

Pacing: ``speed=0`` sends as fast as the client reads; ``speed=s`` replays ``s`` times faster than recorded
(``ts_ns`` gaps divided by ``s``; the clock restarts after a silence or a reconnect).

Use from async tests and benchmarks::

    async with ReplayServer(build_script(load_capture(root), FaultPlan(duplicate_prob=0.01))) as server:
        feed = LiveFeed(LiveFeedConfig(url=server.url, ...))

or from synchronous code: ``with replay_server_thread(script) as server: server.url``.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import json
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rltrade.live.events import TradeEvent

HOST = "127.0.0.1"
MALFORMED_SAMPLES: tuple[tuple[str, str], ...] = (
    # (MalformedReason value the feed must count, raw text)
    ("bad_json", '{"stream": "ethusdt@trade", "data": {'),
    ("bad_json", "[1, 2, 3]"),
    ("not_stream", '{"result": null, "id": 1}'),
    ("unknown_stream", '{"stream": "dogeusdt@trade", "data": {}}'),
    ("missing_field", '{"stream": "ethusdt@trade", "data": {"e": "trade", "s": "ETHUSDT", "t": 1}}'),
    (
        "non_positive",
        '{"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 5, "p": "-1", '
        '"q": "0.1", "T": 1723161255307, "m": true, "M": true}}',
    ),
    (
        "bad_field",
        '{"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": "5", "p": "1", '
        '"q": "0.1", "T": 1723161255307, "m": true, "M": true}}',
    ),
)


@dataclass(frozen=True, slots=True)
class WsMessage:
    """One message to send: its pacing clock, its stream (``None``: sent to every client) and raw text."""

    ts_ns: int
    stream: str | None
    text: str

    def trade_id(self) -> int | None:
        """The trade id of an ``@trade`` message (``None`` for other streams)."""
        if self.stream is None or not self.stream.endswith("@trade"):
            return None
        return int(json.loads(self.text)["data"]["t"])


# ---------------------------------------------------------------------------------------------- sources


@cache
def load_capture(
    root: Path, symbols: tuple[str, ...] = ("ETHUSDT", "BTCUSDT"), *, depth: bool = False
) -> tuple[WsMessage, ...]:
    """The real raw captures of ``symbols`` under ``root``, merged by local receive time.

    Lines are ``<local_ts_ns> <json>``; lines without a ``"stream"`` envelope (the REST depth snapshot) are
    skipped, and ``@depth`` streams too unless ``depth``. Ties keep file order.
    """
    per_file: list[list[WsMessage]] = []
    for symbol in symbols:
        paths = sorted(root.glob(f"binance_spot_{symbol}_wsraw_*.jsonl.gz"))
        if not paths:
            raise FileNotFoundError(f"no binance_spot_{symbol}_wsraw_*.jsonl.gz under {root}")
        for path in paths:
            rows: list[WsMessage] = []
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    ts, _, text = line.rstrip("\n").partition(" ")
                    if not text.startswith('{"stream":"'):
                        continue
                    stream = text[11 : text.index('"', 11)]
                    if not depth and "@depth" in stream:
                        continue
                    if not ts.isdigit():
                        raise ValueError(f"{path}:{lineno}: local_ts_ns {ts!r} is not an integer")
                    rows.append(WsMessage(int(ts), stream, text))
            per_file.append(rows)
    return tuple(heapq.merge(*per_file, key=lambda m: m.ts_ns))


def synthetic_trades(
    n: int,
    *,
    seed: int,
    symbols: Mapping[str, str] | None = None,
    start_us: int = 1_723_161_254_000_000,
    rate_hz: float = 50.0,
) -> list[TradeEvent]:
    """``n`` seeded trades over ``symbols`` (role -> symbol), ids ``1000, 1001, ...`` per symbol, time order.

    Prices follow a multiplicative random walk per symbol on a 0.01 tick; inter-arrival times are exponential
    with mean ``1 / rate_hz`` seconds, rounded to milliseconds as Binance reports them.
    """
    symbols = dict(symbols or {"eth": "ETHUSDT", "btc": "BTCUSDT"})
    rng = np.random.default_rng(seed)
    roles = list(symbols)
    role_idx = rng.integers(0, len(roles), n)
    times_us = start_us + np.cumsum(rng.exponential(1e6 / rate_hz, n)).astype(np.int64) // 1000 * 1000
    steps = rng.normal(0.0, 2e-4, n)
    qty = rng.exponential(0.2, n)
    buyer_maker = rng.random(n) < 0.5
    price = {role: 2000.0 * (20.0 if role == "btc" else 1.0) for role in roles}
    next_id = dict.fromkeys(roles, 1000)
    out: list[TradeEvent] = []
    for i in range(n):
        role = roles[int(role_idx[i])]
        price[role] = max(0.01, round(price[role] * (1.0 + float(steps[i])), 2))
        size = round(float(qty[i]) + 0.0001, 4)
        side = -1 if buyer_maker[i] else 1
        out.append(TradeEvent(role, symbols[role], next_id[role], int(times_us[i]), price[role], size, side, 0))
        next_id[role] += 1
    return out


def trade_messages(trades: Iterable[TradeEvent]) -> list[WsMessage]:
    """Binance ``@trade`` combined-stream messages for ``trades`` (``recv_us`` ignored), paced by trade time."""
    out = []
    for t in trades:
        ms = t.time_us // 1000
        data = {"e": "trade", "E": ms, "s": t.symbol, "t": t.trade_id, "p": f"{t.price:.8f}", "q": f"{t.qty:.8f}",
                "T": ms, "m": t.side < 0, "M": True}  # fmt: skip
        stream = f"{t.symbol.lower()}@trade"
        out.append(WsMessage(t.time_us * 1000, stream, json.dumps({"stream": stream, "data": data})))
    return out


# ---------------------------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong, and where. Indices ``i`` are positions in the message list given to :func:`build_script`."""

    gaps: tuple[tuple[str, int, int], ...] = ()
    """``(symbol, first_id, last_id)``: those trades are never sent."""
    duplicate_prob: float = 0.0
    """Each message is sent twice (the copy right after it, or up to ``reorder_k`` later) with this chance."""
    reorder_prob: float = 0.0
    reorder_k: int = 3
    """A message is swapped with one 1..``reorder_k`` places later."""
    delay_prob: float = 0.0
    delay_k: int = 50
    """A message is moved exactly ``delay_k`` places later (past the client's reorder window: late)."""
    drops: tuple[int, ...] = ()
    """Abort the connection (no close frame) right after message ``i``."""
    lost_on_drop: int = 0
    """Messages following each drop that are never sent (the exchange sent them while nobody listened)."""
    silences: tuple[tuple[int, float], ...] = ()
    """``(i, seconds)``: after message ``i`` send nothing for that long (the connection stays open)."""
    inject: tuple[tuple[int, str], ...] = ()
    """``(i, raw)``: send ``raw`` (e.g. one of :data:`MALFORMED_SAMPLES`) right after message ``i``."""
    bursts: tuple[tuple[int, int], ...] = ()
    """``(i, n)``: messages ``i+1..i+n`` are sent back to back with message ``i`` (only matters if paced)."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    message: WsMessage


@dataclass(frozen=True, slots=True)
class Drop:
    pass


@dataclass(frozen=True, slots=True)
class Silence:
    seconds: float


Step = Send | Drop | Silence


def build_script(messages: Sequence[WsMessage], plan: FaultPlan | None = None) -> list[Step]:
    """The steps the server plays: ``messages`` transformed by ``plan`` (deterministic for a given seed).

    Order of application: gaps, bursts, duplicates, reorders, delays; then drops / silences / injections are
    placed after the (possibly moved) message they name, and ``lost_on_drop`` messages after a drop removed.
    """
    plan = plan or FaultPlan()
    rng = np.random.default_rng(plan.seed)
    gap_ranges: dict[str, list[tuple[int, int]]] = {}
    for symbol, first, last in plan.gaps:
        gap_ranges.setdefault(f"{symbol.lower()}@trade", []).append((first, last))
    items: list[tuple[int, WsMessage]] = []
    for i, m in enumerate(messages):
        if m.stream in gap_ranges and any(a <= (m.trade_id() or -1) <= b for a, b in gap_ranges[m.stream]):
            continue
        items.append((i, m))
    burst_ts: dict[int, int] = {}
    for i, n in plan.bursts:
        for j in range(i + 1, i + n + 1):
            burst_ts[j] = messages[i].ts_ns
    items = [(i, WsMessage(burst_ts[i], m.stream, m.text)) if i in burst_ts else (i, m) for i, m in items]
    if plan.duplicate_prob > 0:
        for pos in np.flatnonzero(rng.random(len(items)) < plan.duplicate_prob)[::-1]:
            at = min(len(items), int(pos) + 1 + int(rng.integers(0, plan.reorder_k + 1)))
            items.insert(at, (-1, items[int(pos)][1]))  # a copy carries no positional action
    if plan.reorder_prob > 0:
        for pos in np.flatnonzero(rng.random(len(items)) < plan.reorder_prob):
            other = min(len(items) - 1, int(pos) + int(rng.integers(1, plan.reorder_k + 1)))
            items[pos], items[other] = items[other], items[pos]
    if plan.delay_prob > 0:
        for pos in np.flatnonzero(rng.random(len(items)) < plan.delay_prob)[::-1]:
            item = items.pop(int(pos))
            items.insert(min(len(items), int(pos) + plan.delay_k), item)
    after: dict[int, list[Step | str]] = {}
    for i in plan.drops:
        after.setdefault(i, []).append(Drop())
    for i, seconds in plan.silences:
        after.setdefault(i, []).append(Silence(seconds))
    for i, raw in plan.inject:
        after.setdefault(i, []).append(raw)
    steps: list[Step] = []
    skip = 0
    for i, m in items:
        if skip:
            skip -= 1
            continue
        steps.append(Send(m))
        for action in after.get(i, ()):
            if isinstance(action, str):
                steps.append(Send(WsMessage(m.ts_ns, None, action)))
            else:
                steps.append(action)
                if isinstance(action, Drop):
                    skip = plan.lost_on_drop
    return steps


# ---------------------------------------------------------------------------------------------- server


@dataclass
class ReplayServer:
    """Serves ``script`` on ``127.0.0.1`` (see the module docstring). Use as an async context manager."""

    script: Sequence[Step]
    speed: float = 0.0
    cursor: int = 0
    """Index of the next step to play (shared by successive connections)."""
    connections: int = 0
    requested: list[tuple[str, ...]] = field(default_factory=list)
    """The streams each connection asked for."""
    sent: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    _server: Server | None = None
    _generation: int = 0

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>``: the endpoint base to put in ``LiveFeedConfig.url``."""
        if self._server is None:
            raise RuntimeError("ReplayServer is not running: use `async with ReplayServer(...) as server`")
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://{HOST}:{port}"

    async def __aenter__(self) -> ReplayServer:
        # No permessage-deflate: on loopback it only costs CPU (the feed accepts either).
        self._server = await serve(self._handle, HOST, 0, close_timeout=1.0, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        self._generation += 1
        generation = self._generation
        self.connections += 1
        assert ws.request is not None
        url = urllib.parse.urlsplit(ws.request.path)
        streams = tuple(s for part in urllib.parse.parse_qs(url.query).get("streams", []) for s in part.split("/"))
        self.requested.append(streams)
        if url.path != "/stream" or not streams:
            await ws.close(1008, "expected /stream?streams=<a>/<b>")
            return
        wanted = set(streams)
        loop = asyncio.get_running_loop()
        clock: tuple[float, int] | None = None  # (loop time, ts_ns) of the pacing reference
        try:
            while self.cursor < len(self.script) and generation == self._generation:
                step = self.script[self.cursor]
                if isinstance(step, Drop):
                    self.cursor += 1
                    ws.transport.abort()
                    return
                if isinstance(step, Silence):
                    self.cursor += 1
                    await asyncio.sleep(step.seconds)
                    clock = None
                    continue
                m = step.message
                if m.stream is None or m.stream in wanted:
                    if self.speed > 0:
                        if clock is None:
                            clock = (loop.time(), m.ts_ns)
                        wait = clock[0] + (m.ts_ns - clock[1]) / 1e9 / self.speed - loop.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    await ws.send(m.text)
                    self.sent += 1
                self.cursor += 1
            if generation == self._generation:
                self.finished.set()
            await ws.wait_closed()
        except ConnectionClosed:
            return


@asynccontextmanager
async def replay(
    messages: Sequence[WsMessage], plan: FaultPlan | None = None, *, speed: float = 0.0
) -> AsyncIterator[ReplayServer]:
    """``ReplayServer(build_script(messages, plan), speed)``, running for the ``async with`` block."""
    async with ReplayServer(build_script(messages, plan), speed=speed) as server:
        yield server


@contextmanager
def replay_server_thread(script: Sequence[Step], *, speed: float = 0.0) -> Iterator[ReplayServer]:
    """Run a :class:`ReplayServer` on its own event loop in a daemon thread (for synchronous callers).

    Its attributes are written by that thread; read them (``url``, ``sent``, ``finished.is_set()``) only.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ws-replay-server", daemon=True)
    thread.start()

    async def make() -> ReplayServer:
        return await ReplayServer(script, speed=speed).__aenter__()

    server = asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
