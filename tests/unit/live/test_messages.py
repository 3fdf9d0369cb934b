"""Parsing of Binance combined-stream messages: real captured lines, and every malformed reason."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from rltrade.live.events import BookEvent, TradeEvent
from rltrade.live.messages import MalformedMessage, MalformedReason, MessageParser
from tests.support.real_data import REAL, require_real
from tests.support.ws_replay_server import MALFORMED_SAMPLES

SYMBOLS = {"eth": "ETHUSDT", "btc": "BTCUSDT"}
TRADE = {"e": "trade", "E": 1723161255308, "s": "ETHUSDT", "t": 1520000000, "p": "2683.81000000",
         "q": "0.05000000", "T": 1723161255307, "m": True, "M": True}  # fmt: skip
BOOK = {"u": 35346513501, "s": "ETHUSDT", "b": "2683.80000000", "B": "3.02920000", "a": "2683.81000000",
        "A": "31.43950000"}  # fmt: skip


def _msg(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data})


def test_trade_fields_and_side() -> None:
    ev = MessageParser(SYMBOLS).parse(_msg("ethusdt@trade", TRADE), recv_us=7)
    assert ev == TradeEvent("eth", "ETHUSDT", 1520000000, 1723161255307000, 2683.81, 0.05, -1, 7)
    buy = MessageParser(SYMBOLS).parse(_msg("ethusdt@trade", {**TRADE, "m": False}).encode(), recv_us=7)
    assert isinstance(buy, TradeEvent) and buy.side == 1


def test_book_fields() -> None:
    ev = MessageParser(SYMBOLS).parse(_msg("ethusdt@bookTicker", BOOK), recv_us=3)
    assert ev == BookEvent("eth", "ETHUSDT", 35346513501, 2683.8, 3.0292, 2683.81, 31.4395, 3)


def test_streams_follow_symbols_and_book_flag() -> None:
    assert MessageParser(SYMBOLS).streams == (
        "ethusdt@trade", "ethusdt@bookTicker", "btcusdt@trade", "btcusdt@bookTicker"
    )  # fmt: skip
    parser = MessageParser(SYMBOLS, book=False)
    assert parser.streams == ("ethusdt@trade", "btcusdt@trade")
    with pytest.raises(MalformedMessage) as e:
        parser.parse(_msg("ethusdt@bookTicker", BOOK), 0)
    assert e.value.reason is MalformedReason.UNKNOWN_STREAM


@pytest.mark.parametrize(
    ("raw", "reason", "where"),
    [
        ("not json", MalformedReason.BAD_JSON, "not json"),
        (b"\xff\xfe{", MalformedReason.BAD_JSON, ""),
        ("[1]", MalformedReason.BAD_JSON, "list"),
        ('{"result": null, "id": 1}', MalformedReason.NOT_STREAM, "envelope"),
        (_msg("ethusdt@trade", [1]), MalformedReason.NOT_STREAM, "envelope"),
        (_msg("ethusdt@depth@100ms", {}), MalformedReason.UNKNOWN_STREAM, "ethusdt@depth@100ms"),
        (_msg("ethusdt@trade", {**TRADE, "s": "BTCUSDT"}), MalformedReason.SYMBOL_MISMATCH, "'s'"),
        (_msg("ethusdt@trade", {**TRADE, "e": "aggTrade"}), MalformedReason.BAD_FIELD, "'e'"),
        (_msg("ethusdt@trade", {k: v for k, v in TRADE.items() if k != "q"}), MalformedReason.MISSING_FIELD, "'q'"),
        (_msg("ethusdt@trade", {k: v for k, v in TRADE.items() if k != "s"}), MalformedReason.MISSING_FIELD, "'s'"),
        (_msg("ethusdt@trade", {**TRADE, "t": "15"}), MalformedReason.BAD_FIELD, "'t'"),
        (_msg("ethusdt@trade", {**TRADE, "t": True}), MalformedReason.BAD_FIELD, "'t'"),
        (_msg("ethusdt@trade", {**TRADE, "t": -1}), MalformedReason.NON_POSITIVE, "'t'"),
        (_msg("ethusdt@trade", {**TRADE, "T": 0}), MalformedReason.NON_POSITIVE, "'T'"),
        (_msg("ethusdt@trade", {**TRADE, "m": "true"}), MalformedReason.BAD_FIELD, "'m'"),
        (_msg("ethusdt@trade", {**TRADE, "p": "abc"}), MalformedReason.BAD_FIELD, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "p": "NaN"}), MalformedReason.BAD_FIELD, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "p": "inf"}), MalformedReason.BAD_FIELD, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "p": None}), MalformedReason.BAD_FIELD, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "p": "0"}), MalformedReason.NON_POSITIVE, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "q": -0.5}), MalformedReason.NON_POSITIVE, "'q'"),
        (_msg("ethusdt@bookTicker", {**BOOK, "b": "2700"}), MalformedReason.CROSSED_BOOK, "bid 2700"),
        (_msg("ethusdt@bookTicker", {**BOOK, "A": "0"}), MalformedReason.NON_POSITIVE, "'A'"),
        (_msg("ethusdt@bookTicker", {**BOOK, "u": 1.5}), MalformedReason.BAD_FIELD, "'u'"),
        # Out of range (the audit's hostile fields): a trade in 2100, an id of 2**70, a price of 1e308.
        (_msg("ethusdt@trade", {**TRADE, "T": 4_102_444_800_000}), MalformedReason.OUT_OF_RANGE, "'T'"),
        (_msg("ethusdt@trade", {**TRADE, "T": 1_000_000_000_000}), MalformedReason.OUT_OF_RANGE, "'T'"),
        (_msg("ethusdt@trade", {**TRADE, "t": 2**70}), MalformedReason.OUT_OF_RANGE, "'t'"),
        (_msg("ethusdt@trade", {**TRADE, "t": 2**63}), MalformedReason.OUT_OF_RANGE, "'t'"),
        (_msg("ethusdt@trade", {**TRADE, "p": "1e308"}), MalformedReason.OUT_OF_RANGE, "'p'"),
        (_msg("ethusdt@trade", {**TRADE, "q": 1e16}), MalformedReason.OUT_OF_RANGE, "'q'"),
        (_msg("ethusdt@bookTicker", {**BOOK, "u": 2**64}), MalformedReason.OUT_OF_RANGE, "'u'"),
    ],
)
def test_malformed_reason_and_location(raw: str | bytes, reason: MalformedReason, where: str) -> None:
    with pytest.raises(MalformedMessage) as e:
        MessageParser(SYMBOLS).parse(raw, 0)
    assert e.value.reason is reason
    assert where in str(e.value)


@pytest.mark.parametrize(("reason", "raw"), MALFORMED_SAMPLES)
def test_replay_server_malformed_samples_have_the_reason_they_claim(reason: str, raw: str) -> None:
    with pytest.raises(MalformedMessage) as e:
        MessageParser(SYMBOLS).parse(raw, 0)
    assert e.value.reason.value == reason


def test_numbers_accepted_as_json_numbers() -> None:
    ev = MessageParser(SYMBOLS).parse(_msg("ethusdt@trade", {**TRADE, "p": 2683.81, "q": 1}), 0)
    assert isinstance(ev, TradeEvent) and (ev.price, ev.qty) == (2683.81, 1.0)


def test_bad_symbol_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="upper-case"):
        MessageParser({"eth": "eth/usdt"})
    with pytest.raises(ValueError, match="empty"):
        MessageParser({})


@pytest.mark.real
def test_real_capture_lines_parse_to_the_recorded_trades() -> None:
    """Every @trade line of the real ETH capture parses to the row of the recorded trades CSV, exactly."""
    root = require_real()
    parser = MessageParser(SYMBOLS)
    trades: list[TradeEvent] = []
    books = 0
    for path in sorted(root.glob("binance_spot_ETHUSDT_wsraw_*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            for line in fh:
                text = line.split(" ", 1)[1]
                if "@depth" in text[:40] or not text.startswith('{"stream"'):
                    continue
                ev = parser.parse(text, 0)
                if isinstance(ev, TradeEvent):
                    trades.append(ev)
                else:
                    books += 1
    csv = pl.read_csv(REAL / "binance_spot_ETHUSDT_trades_2024-08-08T2354_2024-08-09T0005.csv.gz")
    assert books > 50_000
    assert [t.trade_id for t in trades] == csv["trade_id"].to_list()
    assert [t.time_us for t in trades] == (csv["trade_time_ms"] * 1000).to_list()
    assert [t.price for t in trades] == csv["price"].to_list()
    assert [t.qty for t in trades] == csv["qty"].to_list()
    assert [t.side for t in trades] == [-1 if m else 1 for m in csv["is_buyer_maker"].to_list()]


def test_range_limits_are_inclusive_where_real_values_live() -> None:
    parser = MessageParser(SYMBOLS)
    last_ms = 4_102_444_800_000 - 1
    ev = parser.parse(_msg("ethusdt@trade", {**TRADE, "T": last_ms, "t": 2**63 - 1, "p": "1e15"}), 0)
    assert isinstance(ev, TradeEvent)
    assert (ev.time_us, ev.trade_id, ev.price) == (last_ms * 1000, 2**63 - 1, 1e15)
