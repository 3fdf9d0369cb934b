"""ccxt backfill: pages by fromId through ccxt's historicalTrades method, maps ccxt trades to TradeEvents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest

from rltrade.live.backfill import BackfillError, ccxt_backfill
from rltrade.live.events import TradeEvent


class FakeExchange:
    """Duck-typed sync ccxt exchange serving trade ids 100..399 of ETH/USDT in ccxt's unified trade shape."""

    id = "fakebinance"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, Any]]] = []

    def fetch_trades(self, symbol: str, since: int | None, limit: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert since is None and params["fetchTradesMethod"] == "publicGetHistoricalTrades"
        self.calls.append((symbol, limit, dict(params)))
        start = max(100, params["fromId"])
        return [
            {
                "id": str(i),
                "timestamp": 1_723_161_254_000 + i,
                "price": 2000.0 + i / 100,
                "amount": 0.5,
                "side": "sell" if i % 3 else "buy",
            }
            for i in range(start, min(400, start + limit))
        ]


def _run(pending: Awaitable[Sequence[TradeEvent]]) -> Sequence[TradeEvent]:
    async def main() -> Sequence[TradeEvent]:
        return await pending

    return asyncio.run(main())


def test_pages_follow_ids_and_map_fields() -> None:
    ex = FakeExchange()
    backfill = ccxt_backfill(ex, {"eth": "ETHUSDT"}, page_limit=40)
    got = _run(backfill("ETHUSDT", 150, 249))
    assert [t.trade_id for t in got] == list(range(150, 250))
    assert [(c[1], c[2]["fromId"]) for c in ex.calls] == [(40, 150), (40, 190), (20, 230)]
    assert {c[0] for c in ex.calls} == {"ETH/USDT"}
    t = got[0]
    assert (t.role, t.symbol, t.time_us, t.price, t.qty) == ("eth", "ETHUSDT", 1_723_161_254_150_000, 2001.5, 0.5)
    assert [t.side for t in got] == [1 if i % 3 == 0 else -1 for i in range(150, 250)]  # ccxt "buy" -> +1


def test_exchange_without_the_ids_raises() -> None:
    backfill = ccxt_backfill(FakeExchange(), {"eth": "ETHUSDT"})
    with pytest.raises(BackfillError, match="no ETHUSDT trades from id 400"):
        _run(backfill("ETHUSDT", 390, 420))
    with pytest.raises(BackfillError, match="configured for"):
        _run(backfill("BTCUSDT", 1, 2))


def test_non_usdt_symbol_needs_explicit_unified_name() -> None:
    with pytest.raises(ValueError, match="unified"):
        ccxt_backfill(FakeExchange(), {"eth": "ETHBTC"})
    ccxt_backfill(FakeExchange(), {"eth": "ETHBTC"}, unified={"ETHBTC": "ETH/BTC"})


class FakeKlines:
    """Duck-typed ccxt exchange answering ``fetch_ohlcv`` with one kline per call (or failing)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str, int, int]] = []

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
        self.calls.append((symbol, timeframe, since, limit))
        if self.fail:
            raise TimeoutError("read timed out")
        return [[since, 10.0, 12.0, 9.0, 11.0, 3.5]]


def test_kline_seed_returns_the_closed_kline_and_never_raises() -> None:
    from rltrade.features.bar_stream import ClosedBar
    from rltrade.live.backfill import ccxt_kline_seed, chain_seeds
    from rltrade.types import Timeframe

    ex = FakeKlines()
    seed = ccxt_kline_seed(ex, {"eth": "ETHUSDT"})
    assert seed("eth", Timeframe.M1, 1_723_161_240_000_000) == ClosedBar(
        1_723_161_240_000_000, 10.0, 12.0, 9.0, 11.0, 3.5, False
    )
    assert ex.calls == [("ETH/USDT", "1m", 1_723_161_240_000, 1)]
    errors: list[str] = []
    failing = ccxt_kline_seed(FakeKlines(fail=True), {"eth": "ETHUSDT"}, on_error=errors.append)
    assert failing("eth", Timeframe.M1, 1_723_161_240_000_000) is None
    assert errors and "TimeoutError: read timed out" in errors[0]
    stored = ClosedBar(5, 1.0, 1.0, 1.0, 1.0, 0.0, True)
    chained = chain_seeds(lambda *_: None, lambda *_: stored, failing)
    assert chained("eth", Timeframe.M1, 5) is stored
