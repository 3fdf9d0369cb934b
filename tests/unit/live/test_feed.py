"""LiveFeed against the local replay server: each fault injected, the trades still come out once and in order.

Synthetic tests (always run) replay a few hundred seeded trades; real tests replay the recorded Binance
capture (``../shared/data/real``) and compare with the recorded trades CSVs. Every test replays at speed 0
and runs under a hard ``asyncio`` timeout, so a feed that loses a trade fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import polars as pl
import pytest
from pydantic import ValidationError

from rltrade.live.events import LiveEvent, StreamHealth, StreamStatus, TradeEvent
from rltrade.live.feed import Backfill, FeedGaveUp, LiveFeed, LiveFeedConfig
from tests.support.real_data import require_real
from tests.support.ws_replay_server import (
    MALFORMED_SAMPLES,
    FaultPlan,
    ReplayServer,
    Send,
    build_script,
    load_capture,
    replay,
    replay_server_thread,
    synthetic_trades,
    trade_messages,
)

SYMBOLS = {"eth": "ETHUSDT", "btc": "BTCUSDT"}
TIMEOUT_S = 20.0


def _key(t: TradeEvent) -> tuple[str, int, int, float, float, int]:
    return (t.symbol, t.trade_id, t.time_us, t.price, t.qty, t.side)


def _by_role(trades: Iterable[TradeEvent]) -> dict[str, list[tuple[str, int, int, float, float, int]]]:
    out: dict[str, list[tuple[str, int, int, float, float, int]]] = {role: [] for role in SYMBOLS}
    for t in trades:
        out[t.role].append(_key(t))
    return out


def _backfill_from(trades: Sequence[TradeEvent], calls: list[tuple[str, int, int]] | None = None) -> Backfill:
    by_id = {(t.symbol, t.trade_id): t for t in trades}

    async def backfill(symbol: str, first: int, last: int) -> list[TradeEvent]:
        if calls is not None:
            calls.append((symbol, first, last))
        return [by_id[(symbol, i)] for i in range(first, last + 1)]

    return backfill


def _config(url: str, **kw: object) -> LiveFeedConfig:
    base: dict[str, object] = {"url": url, "symbols": SYMBOLS, "book": False, "heartbeat_timeout_s": 5.0,
                               "backoff_base_s": 0.01, "backoff_cap_s": 0.05, "reorder_window": 16}  # fmt: skip
    return LiveFeedConfig.model_validate(base | kw)


async def _collect(feed: LiveFeed, last_ids: dict[str, int]) -> list[LiveEvent]:
    """Events until every role delivered its last expected trade id (or the test times out)."""
    events: list[LiveEvent] = []
    todo = dict(last_ids)
    async with asyncio.timeout(TIMEOUT_S):
        async for ev in feed.events():
            events.append(ev)
            if isinstance(ev, TradeEvent) and todo.get(ev.role) == ev.trade_id:
                del todo[ev.role]
                if not todo:
                    break
    return events


def _run_feed(
    trades: Sequence[TradeEvent],
    plan: FaultPlan,
    backfill: Backfill | None = None,
    *,
    messages: Sequence[object] | None = None,
    **config: object,
) -> tuple[list[LiveEvent], LiveFeed, ReplayServer]:
    last_ids = {role: max(t.trade_id for t in trades if t.role == role) for role in SYMBOLS}

    async def main() -> tuple[list[LiveEvent], LiveFeed, ReplayServer]:
        async with replay(messages or trade_messages(trades), plan) as server:  # type: ignore[arg-type]
            feed = LiveFeed(_config(server.url, **config), backfill)
            async with feed:
                events = await _collect(feed, last_ids)
            return events, feed, server

    return asyncio.run(main())


def _trades(events: Iterable[LiveEvent]) -> list[TradeEvent]:
    return [e for e in events if isinstance(e, TradeEvent)]


def _status(events: Iterable[LiveEvent], health: StreamHealth) -> list[StreamStatus]:
    return [e for e in events if isinstance(e, StreamStatus) and e.health is health]


def _assert_order(events: Sequence[LiveEvent]) -> None:
    """Per role: ids strictly increase; every jump is announced by a GAP naming exactly the missing range."""
    last: dict[str, int] = {}
    announced: dict[str, tuple[int, int]] = {}
    for e in events:
        if isinstance(e, StreamStatus) and e.health is StreamHealth.GAP:
            assert e.role is not None and e.first_missing is not None and e.last_missing is not None
            announced[e.role] = (e.first_missing, e.last_missing)
        elif isinstance(e, TradeEvent):
            prev = last.get(e.role)
            if prev is not None and e.trade_id != prev + 1:
                assert e.trade_id > prev + 1
                assert announced.get(e.role) == (prev + 1, e.trade_id - 1), (e.role, prev, e.trade_id)
            last[e.role] = e.trade_id


@pytest.fixture(scope="module")
def trades() -> list[TradeEvent]:
    return synthetic_trades(400, seed=7)


# ------------------------------------------------------------------------------------------- synthetic


def test_clean_replay_delivers_every_trade_once_in_order(trades: list[TradeEvent]) -> None:
    events, feed, server = _run_feed(trades, FaultPlan())
    assert isinstance(events[0], StreamStatus) and events[0].health is StreamHealth.CONNECTED
    assert _by_role(_trades(events)) == _by_role(trades)
    assert server.requested == [("ethusdt@trade", "btcusdt@trade")]
    s = feed.stats
    assert (s.messages, s.trades, s.duplicates, s.gaps, s.connects, s.reconnects) == (400, 400, 0, 0, 1, 0)


def test_duplicates_and_reorders_are_repaired_and_counted(trades: list[TradeEvent]) -> None:
    plan = FaultPlan(duplicate_prob=0.1, reorder_prob=0.1, reorder_k=3, seed=1)
    script = build_script(trade_messages(trades), plan)
    events, feed, _ = _run_feed(trades, plan)
    _assert_order(events)
    assert _by_role(_trades(events)) == _by_role(trades)
    sends = sum(isinstance(s, Send) for s in script)
    assert feed.stats.duplicates == sends - len(trades) > 10
    assert feed.stats.reordered > 10
    assert feed.stats.gaps == 0


def test_late_messages_are_backfilled_then_dropped(trades: list[TradeEvent]) -> None:
    plan = FaultPlan(delay_prob=0.02, delay_k=60, seed=3)
    events, feed, _ = _run_feed(trades, plan, _backfill_from(trades), reorder_hold_s=30.0)
    _assert_order(events)
    assert _by_role(_trades(events)) == _by_role(trades)
    s = feed.stats
    assert s.gaps >= 1 and s.backfilled_trades == s.missing_trades == s.late_dropped >= 3
    assert len(_status(events, StreamHealth.BACKFILLED)) == s.gaps
    assert not _status(events, StreamHealth.STALE)


def test_gap_is_backfilled_in_band(trades: list[TradeEvent]) -> None:
    eth = [t.trade_id for t in trades if t.role == "eth"]
    first, last = eth[50], eth[59]
    calls: list[tuple[str, int, int]] = []
    events, feed, _ = _run_feed(trades, FaultPlan(gaps=(("ETHUSDT", first, last),)), _backfill_from(trades, calls))
    assert calls == [("ETHUSDT", first, last)]
    assert _by_role(_trades(events)) == _by_role(trades)
    gap = _status(events, StreamHealth.GAP)
    assert [(g.role, g.first_missing, g.last_missing) for g in gap] == [("eth", first, last)]
    i = events.index(gap[0])
    assert events[i + 1] == _status(events, StreamHealth.BACKFILLED)[0]
    first_filled = events[i + 2]
    assert isinstance(first_filled, TradeEvent) and first_filled.trade_id == first
    assert (feed.stats.gaps, feed.stats.backfilled_trades) == (1, 10)


@pytest.mark.parametrize("how", ["absent", "raises", "partial", "wrong_symbol"])
def test_gap_not_backfilled_goes_stale_then_recovers(trades: list[TradeEvent], how: str) -> None:
    eth = [t.trade_id for t in trades if t.role == "eth"]
    first, last = eth[50], eth[52]
    good = _backfill_from(trades)

    async def raises(symbol: str, a: int, b: int) -> list[TradeEvent]:
        raise ConnectionError("exchange unreachable")

    async def partial(symbol: str, a: int, b: int) -> list[TradeEvent]:
        return list(await good(symbol, a, b))[1:]

    async def wrong_symbol(symbol: str, a: int, b: int) -> list[TradeEvent]:
        btc_first = min(t.trade_id for t in trades if t.role == "btc")
        return list(await good("BTCUSDT", btc_first, btc_first + b - a))

    backfill = {"absent": None, "raises": raises, "partial": partial, "wrong_symbol": wrong_symbol}[how]
    events, feed, _ = _run_feed(trades, FaultPlan(gaps=(("ETHUSDT", first, last),)), backfill)
    expected = [t for t in trades if not (t.role == "eth" and first <= t.trade_id <= last)]
    assert _by_role(_trades(events)) == _by_role(expected)
    _assert_order(events)
    stale = _status(events, StreamHealth.STALE)
    assert [(s.role, s.first_missing, s.last_missing) for s in stale] == [("eth", first, last)]
    recovered = _status(events, StreamHealth.RECOVERED)
    assert [r.role for r in recovered] == ["eth"]
    after = events[events.index(recovered[0]) + 1]
    assert isinstance(after, TradeEvent) and after.trade_id == last + 1
    assert feed.stats.backfill_failures == (how != "absent")
    assert feed.stats.missing_trades == 3


def test_disconnects_reconnect_and_backfill_what_was_lost(trades: list[TradeEvent]) -> None:
    plan = FaultPlan(drops=(100, 250), lost_on_drop=6)
    events, feed, server = _run_feed(trades, plan, _backfill_from(trades))
    _assert_order(events)
    assert _by_role(_trades(events)) == _by_role(trades)
    assert server.connections == 3
    s = feed.stats
    assert (s.connects, s.reconnects, s.missing_trades, s.backfilled_trades) == (3, 2, 12, 12)
    assert len(_status(events, StreamHealth.DISCONNECTED)) == 2
    assert len(_status(events, StreamHealth.CONNECTED)) == 3


def test_silent_stream_goes_stale_reconnects_and_recovers(trades: list[TradeEvent]) -> None:
    plan = FaultPlan(silences=((150, 1.5),))
    events, feed, server = _run_feed(trades, plan, heartbeat_timeout_s=0.4)
    assert _by_role(_trades(events)) == _by_role(trades)
    assert feed.stats.heartbeat_timeouts == 1 and server.connections == 2
    health = [(e.health, e.role) for e in events if isinstance(e, StreamStatus)]
    assert health[:5] == [
        (StreamHealth.CONNECTED, None),
        (StreamHealth.STALE, "eth"),
        (StreamHealth.STALE, "btc"),
        (StreamHealth.DISCONNECTED, None),
        (StreamHealth.CONNECTED, None),
    ]
    assert sorted(r for h, r in health if h is StreamHealth.RECOVERED) == ["btc", "eth"]  # type: ignore[type-var]


def test_malformed_messages_are_counted_logged_and_skipped(
    trades: list[TradeEvent], caplog: pytest.LogCaptureFixture
) -> None:
    plan = FaultPlan(inject=tuple((10 + 7 * i, raw) for i, (_, raw) in enumerate(MALFORMED_SAMPLES)))
    with caplog.at_level(logging.WARNING, logger="rltrade.live.feed"):
        events, feed, _ = _run_feed(trades, plan)
    assert _by_role(_trades(events)) == _by_role(trades)
    assert feed.stats.malformed == Counter(reason for reason, _ in MALFORMED_SAMPLES)
    assert feed.stats.messages == len(trades) + len(MALFORMED_SAMPLES)
    assert sum("malformed message skipped" in r.message for r in caplog.records) == len(MALFORMED_SAMPLES)


def test_slow_consumer_gets_backpressure_not_unbounded_memory(trades: list[TradeEvent]) -> None:
    async def main() -> tuple[list[TradeEvent], LiveFeed]:
        async with replay(trade_messages(trades)) as server:
            got: list[TradeEvent] = []
            async with LiveFeed(_config(server.url, queue_size=8)) as feed, asyncio.timeout(TIMEOUT_S):
                async for ev in feed.events():
                    if isinstance(ev, TradeEvent):
                        got.append(ev)
                        if len(got) % 50 == 0:
                            await asyncio.sleep(0.01)  # a consumer busier than the stream
                        if len(got) == len(trades):
                            break
            return got, feed

    got, feed = asyncio.run(main())
    assert _by_role(got) == _by_role(trades)
    assert feed.stats.queue_high_water == 8
    assert feed.stats.queue_full_waits > 0


def test_gives_up_after_max_connect_failures() -> None:
    async def main() -> LiveFeed:
        async with replay(trade_messages(synthetic_trades(5, seed=0))) as server:
            url = server.url
        feed = LiveFeed(_config(url, max_connect_failures=3))  # the server is gone: connections are refused
        refused = r"cannot connect to ws://127\.0\.0\.1:\d+: connection refused \(3 consecutive"
        with pytest.raises(FeedGaveUp, match=refused):
            async with feed, asyncio.timeout(TIMEOUT_S):
                async for _ in feed.events():
                    pass
        return feed

    feed = asyncio.run(main())
    assert (feed.stats.connects, feed.stats.reconnects) == (0, 2)
    assert (feed.stats.connect_failures, feed.stats.last_error, feed.stats.ever_connected) == (
        3,
        "connection refused",
        False,
    )


def test_initial_limit_gives_up_before_any_data_only() -> None:
    async def main() -> FeedGaveUp:
        async with replay(trade_messages(synthetic_trades(5, seed=0))) as server:
            url = server.url
        feed = LiveFeed(_config(url, max_initial_failures=2))
        with pytest.raises(FeedGaveUp) as info:
            async with feed, asyncio.timeout(TIMEOUT_S):
                async for _ in feed.events():
                    pass
        return info.value

    err = asyncio.run(main())
    assert (err.attempts, err.reason, err.ever_connected) == (2, "connection refused", False)


def test_aclose_ends_the_iteration_cleanly(trades: list[TradeEvent]) -> None:
    async def main() -> int:
        async with replay(trade_messages(trades)) as server:
            feed = LiveFeed(_config(server.url))
            n = 0
            async with asyncio.timeout(TIMEOUT_S):
                async for ev in feed.events():
                    n += isinstance(ev, TradeEvent)
                    if n == 20:
                        await feed.aclose()
            return n

    assert asyncio.run(main()) >= 20


def test_replay_server_thread_serves_synchronous_callers(trades: list[TradeEvent]) -> None:
    with replay_server_thread(build_script(trade_messages(trades[:50]))) as server:
        assert server.url.startswith("ws://127.0.0.1:")

        async def main() -> list[LiveEvent]:
            async with LiveFeed(_config(server.url)) as feed:
                return await _collect(feed, {r: max(t.trade_id for t in trades[:50] if t.role == r) for r in SYMBOLS})

        events = asyncio.run(main())
    assert _by_role(_trades(events)) == _by_role(trades[:50])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("url", "http://x", "ws://"),
        ("url", "ws://x/stream?streams=a", "endpoint base"),
        ("symbols", {}, "empty"),
        ("symbols", {"eth": "ETHUSDT", "btc": "ETHUSDT"}, "two roles"),
        ("backoff_cap_s", 0.001, "backoff_cap_s"),
        ("reorder_window", 0, "reorder_window"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        LiveFeedConfig.model_validate(_config("ws://127.0.0.1:1").model_dump() | {field: value})


# ------------------------------------------------------------------------------------------- real data


def _real_trades() -> list[TradeEvent]:
    root = require_real()
    out: list[TradeEvent] = []
    for role, symbol in SYMBOLS.items():
        csv = pl.read_csv(root / f"binance_spot_{symbol}_trades_2024-08-08T2354_2024-08-09T0005.csv.gz")
        for tid, ms, p, q, m in csv.select("trade_id", "trade_time_ms", "price", "qty", "is_buyer_maker").iter_rows():
            out.append(TradeEvent(role, symbol, tid, ms * 1000, p, q, -1 if m else 1, 0))
    return out


@pytest.mark.real
def test_real_capture_with_every_fault_equals_the_recorded_trades() -> None:
    """ETH + BTC trades of the capture, duplicated, reordered, late, cut twice (backfilled), malformed."""
    truth = _real_trades()
    root = require_real()
    messages = [m for m in load_capture(root) if m.stream is not None and m.stream.endswith("@trade")]
    plan = FaultPlan(
        duplicate_prob=0.02, reorder_prob=0.02, delay_prob=0.0005, delay_k=400, drops=(5_000, 20_000),
        lost_on_drop=300, inject=((2_000, MALFORMED_SAMPLES[0][1]), (15_000, MALFORMED_SAMPLES[4][1])), seed=11,
    )  # fmt: skip
    events, feed, _ = _run_feed(truth, plan, _backfill_from(truth), messages=messages, reorder_window=64)
    _assert_order(events)
    assert _by_role(_trades(events)) == _by_role(truth)
    s = feed.stats
    assert s.trades == len(truth) == 34_419
    assert s.duplicates > 500 and s.reordered > 500
    assert s.late_dropped > 0 and s.backfilled_trades == s.missing_trades > 0
    assert s.connects == 3 and sum(s.malformed.values()) == 2
    assert not _status(events, StreamHealth.STALE)


@pytest.mark.real
def test_real_capture_gap_without_backfill_goes_stale_for_that_role_only() -> None:
    truth = _real_trades()
    btc = [t.trade_id for t in truth if t.role == "btc"]
    first, last = btc[1000], btc[1099]
    trade_msgs = [m for m in load_capture(require_real()) if m.stream is not None and m.stream.endswith("@trade")]
    events, feed, _ = _run_feed(truth, FaultPlan(gaps=(("BTCUSDT", first, last),)), messages=trade_msgs)
    expected = [t for t in truth if not (t.role == "btc" and first <= t.trade_id <= last)]
    assert _by_role(_trades(events)) == _by_role(expected)
    stale = _status(events, StreamHealth.STALE)
    assert [(e.role, e.first_missing, e.last_missing) for e in stale] == [("btc", first, last)]
    assert feed.stats.missing_trades == 100
