"""Backfill of missing trade ids from the exchange's REST API through ccxt (the feed's production ``backfill``).

Binance's ``GET /api/v3/historicalTrades?symbol=..&fromId=..&limit=1000`` returns raw trades (the same ids as
the ``@trade`` stream) from ``fromId`` on; ccxt reaches it with ``fetch_trades(symbol, None, limit,
{"fetchTradesMethod": "publicGetHistoricalTrades", "fromId": id})``. ccxt sends an API key with that endpoint
and refuses to call it without one: give the exchange a read-only key (from the environment, never from a
file in the repository). Aggregate trades (``aggTrades``, no key needed) cannot be used: they merge trades
and lose their individual ids and quantities.

The sync ccxt client runs in a worker thread (``asyncio.to_thread``) so the event loop keeps serving the
websocket; ccxt's own rate limiter spaces the pages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from rltrade.features.bar_stream import BarSeed, ClosedBar
from rltrade.live.events import TradeEvent
from rltrade.live.feed import Backfill

__all__ = ["BackfillError", "ccxt_backfill", "ccxt_kline_seed", "chain_seeds"]


class BackfillError(RuntimeError):
    """The exchange did not return every trade id asked for."""


def ccxt_backfill(
    exchange: Any, symbols: Mapping[str, str], *, unified: Mapping[str, str] | None = None, page_limit: int = 1000
) -> Backfill:
    """Make a :data:`~rltrade.live.feed.Backfill` over a sync ccxt ``exchange`` (e.g. ``ccxt.binance({...})``).

    ``symbols`` is the feed's role -> Binance id map (``{"eth": "ETHUSDT"}``); ``unified`` maps each id to its
    ccxt symbol (default: ``"ETHUSDT"`` -> ``"ETH/USDT"`` for USDT-quoted ids). Pages of ``page_limit``
    follow ids (``fromId = last received + 1``) until ``last_id``; an empty page raises
    :class:`BackfillError` (the feed then marks the role STALE).
    """
    roles = {symbol: role for role, symbol in symbols.items()}
    names = dict(unified) if unified is not None else {s: _usdt_unified(s) for s in roles}

    def fetch(symbol: str, first_id: int, last_id: int) -> list[TradeEvent]:
        role = roles[symbol]
        out: list[TradeEvent] = []
        cursor = first_id
        while cursor <= last_id:
            limit = min(page_limit, last_id - cursor + 1)
            params = {"fetchTradesMethod": "publicGetHistoricalTrades", "fromId": cursor}
            page = exchange.fetch_trades(names[symbol], None, limit, params)
            ids = [int(t["id"]) for t in page]
            if not page or max(ids) < cursor:
                raise BackfillError(
                    f"{exchange.id} returned no {symbol} trades from id {cursor} (asked {first_id}..{last_id})"
                )
            recv_us = time.time_ns() // 1_000
            for tid, t in zip(ids, page, strict=True):
                if cursor <= tid <= last_id:
                    side = 1 if t["side"] == "buy" else -1
                    out.append(TradeEvent(role, symbol, tid, int(t["timestamp"]) * 1_000, float(t["price"]),
                                          float(t["amount"]), side, recv_us))  # fmt: skip
            cursor = max(ids) + 1
        return out

    async def backfill(symbol: str, first_id: int, last_id: int) -> list[TradeEvent]:
        if symbol not in roles:
            raise BackfillError(f"backfill asked for {symbol!r}, configured for {sorted(roles)}")
        return await asyncio.to_thread(fetch, symbol, first_id, last_id)

    return backfill


def _usdt_unified(symbol: str) -> str:
    if not symbol.endswith("USDT") or len(symbol) <= 4:
        raise ValueError(f"cannot derive the ccxt symbol of {symbol!r}: pass unified={{{symbol!r}: 'BASE/QUOTE'}}")
    return f"{symbol[:-4]}/USDT"


def ccxt_kline_seed(
    exchange: Any,
    symbols: Mapping[str, str],
    *,
    unified: Mapping[str, str] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> BarSeed:
    """Make a :data:`~rltrade.features.bar_stream.BarSeed` over a sync ccxt ``exchange``: the closed kline.

    ``symbols`` maps a role to its Binance id (``{"eth": "ETHUSDT"}``). Asked at most once per timeframe and
    role, when the bar that formed across the session's start closes: ``fetch_ohlcv(symbol, tf, since=open,
    limit=1)``, called in the engine's thread (a short pause, once). Any failure, or a kline that does not
    open at ``open_us``, answers None (the builder then masks the bar) and is reported to ``on_error``.
    """
    names = dict(unified) if unified is not None else {s: _usdt_unified(s) for s in symbols.values()}

    def seed(role: str, tf: Any, open_us: int) -> ClosedBar | None:
        symbol = symbols[role]
        try:
            rows = exchange.fetch_ohlcv(names[symbol], tf.value, open_us // 1000, 1)
            ms, o, h, lo, c, v = rows[0][:6]
            if int(ms) * 1000 != open_us:
                raise ValueError(f"kline opens at {int(ms)} ms, asked {open_us // 1000} ms")
        except Exception as exc:  # a seed never stops the session: the bar is masked instead
            if on_error is not None:
                on_error(f"no {tf.value} kline of {symbol} at {open_us} µs: {type(exc).__name__}: {exc}")
            return None
        return ClosedBar(open_us, float(o), float(h), float(lo), float(c), float(v), float(v) == 0.0)

    return seed


def chain_seeds(*seeds: BarSeed) -> BarSeed:
    """Chain bar seeds: the first answer of ``seeds`` in order (None when none answers)."""

    def seed(role: str, tf: Any, open_us: int) -> ClosedBar | None:
        for s in seeds:
            bar = s(role, tf, open_us)
            if bar is not None:
                return bar
        return None

    return seed
