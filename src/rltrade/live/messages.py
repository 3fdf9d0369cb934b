"""Parse and validate one Binance combined-stream message into a :class:`TradeEvent` or :class:`BookEvent`.

A combined-stream message is ``{"stream": "<symbol>@<kind>", "data": {...}}``. Two kinds are understood:

``<sym>@trade``
    ``{"e": "trade", "E": event ms, "s": "ETHUSDT", "t": trade id, "p": "price", "q": "qty",
    "T": trade ms, "m": buyer is maker, "M": ignore}``. ``E`` and ``M`` are not read.
``<sym>@bookTicker``
    ``{"u": update id, "s": "ETHUSDT", "b": "bid", "B": "bid qty", "a": "ask", "A": "ask qty"}``.

Decimals may be JSON strings (as Binance sends them) or numbers; they must be finite, positive and at most
``MAX_DECIMAL`` (1e15: a price of 1e308 would overflow every sum it enters). Ids and times must be JSON
integers (``true`` is not one); ids fit the store's int64 (below 2**63) and trade times lie in
``[2009-01-03, 2100-01-01)`` UTC. Values outside those ranges are ``out_of_range``. A trade's ``s`` must
match its stream's symbol; a book with ``bid > ask`` is rejected. Anything else raises
:class:`MalformedMessage` whose ``reason`` (a :class:`MalformedReason`) the feed counts and whose message
says which stream and field was wrong.
Parsing is pure: no clock is read (the receive time is passed in) and nothing is logged here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from rltrade.live.events import BookEvent, TradeEvent

__all__ = ["MalformedMessage", "MalformedReason", "MessageParser"]

_US_PER_MS: Final = 1_000
MAX_ID: Final = 2**63 - 1
"""Largest id: the store keeps ids as int64."""
MIN_TIME_MS: Final = 1_230_940_800_000
"""2009-01-03 UTC: no exchange trade is older."""
MAX_TIME_MS: Final = 4_102_444_800_000
"""2100-01-01 UTC (excluded): a later trade time is a corrupt field, not a trade."""
MAX_DECIMAL: Final = 1e15
"""Largest price or quantity accepted: products and sums of such values stay finite."""


class MalformedReason(StrEnum):
    """Why a message was skipped as malformed."""

    BAD_JSON = "bad_json"
    """Not UTF-8, not JSON, or not a JSON object."""
    NOT_STREAM = "not_stream"
    """No ``stream`` / ``data`` envelope (not a combined-stream message)."""
    UNKNOWN_STREAM = "unknown_stream"
    """A stream this parser was not configured for."""
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    """Wrong JSON type, unparseable or non-finite number, or an unexpected event type ``e``."""
    NON_POSITIVE = "non_positive"
    """A price or quantity ``<= 0``, or a negative id/time."""
    OUT_OF_RANGE = "out_of_range"
    """An id at or above 2**63, a trade time outside 2009..2099, a price or quantity above ``MAX_DECIMAL``."""
    SYMBOL_MISMATCH = "symbol_mismatch"
    CROSSED_BOOK = "crossed_book"


class MalformedMessage(ValueError):
    """One message could not be used; ``reason`` classifies it, the text says where."""

    def __init__(self, reason: MalformedReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class MessageParser:
    """Parser for the trade (and optionally bookTicker) streams of ``symbols`` (``{"eth": "ETHUSDT", ...}``)."""

    def __init__(self, symbols: Mapping[str, str], *, book: bool = True) -> None:
        if not symbols:
            raise ValueError("symbols is empty: give at least one role -> symbol, e.g. {'eth': 'ETHUSDT'}")
        # stream name -> (is_trade, role, symbol)
        self._routes: dict[str, tuple[bool, str, str]] = {}
        for role, symbol in symbols.items():
            if not symbol.isalnum() or symbol.upper() != symbol:
                raise ValueError(f"symbol {symbol!r} of role {role!r} must be an upper-case Binance id like 'ETHUSDT'")
            self._routes[f"{symbol.lower()}@trade"] = (True, role, symbol)
            if book:
                self._routes[f"{symbol.lower()}@bookTicker"] = (False, role, symbol)

    @property
    def streams(self) -> tuple[str, ...]:
        """The stream names to subscribe to, e.g. ``("ethusdt@trade", "ethusdt@bookTicker", ...)``."""
        return tuple(self._routes)

    def parse(self, raw: str | bytes, recv_us: int) -> TradeEvent | BookEvent:
        """Parse the event in ``raw``, stamped with ``recv_us``; raises :class:`MalformedMessage`."""
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise MalformedMessage(MalformedReason.BAD_JSON, f"{e} in {_preview(raw)}") from None
        if not isinstance(msg, dict):
            raise MalformedMessage(MalformedReason.BAD_JSON, f"a JSON {type(msg).__name__}, not an object")
        stream = msg.get("stream")
        data = msg.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            raise MalformedMessage(MalformedReason.NOT_STREAM, f"no 'stream'/'data' envelope in {_preview(raw)}")
        route = self._routes.get(stream)
        if route is None:
            raise MalformedMessage(MalformedReason.UNKNOWN_STREAM, f"stream {stream!r} was not subscribed")
        is_trade, role, symbol = route
        if data.get("s", symbol) != symbol:
            raise MalformedMessage(MalformedReason.SYMBOL_MISMATCH, f"{stream}: field 's' = {data['s']!r}")
        if is_trade:
            if data.get("e", "trade") != "trade":
                raise MalformedMessage(MalformedReason.BAD_FIELD, f"{stream}: field 'e' = {data['e']!r}, not 'trade'")
            _field(data, "s", stream)
            buyer_maker = _field(data, "m", stream)
            if not isinstance(buyer_maker, bool):
                raise MalformedMessage(MalformedReason.BAD_FIELD, f"{stream}: field 'm' = {buyer_maker!r}, not a bool")
            return TradeEvent(
                role=role,
                symbol=symbol,
                trade_id=_int(data, "t", stream, minimum=0),
                time_us=_time_ms(data, "T", stream) * _US_PER_MS,
                price=_positive(data, "p", stream),
                qty=_positive(data, "q", stream),
                side=-1 if buyer_maker else 1,
                recv_us=recv_us,
            )
        _field(data, "s", stream)
        bid = _positive(data, "b", stream)
        ask = _positive(data, "a", stream)
        if bid > ask:
            raise MalformedMessage(MalformedReason.CROSSED_BOOK, f"{stream}: bid {bid} > ask {ask}")
        return BookEvent(
            role=role,
            symbol=symbol,
            update_id=_int(data, "u", stream, minimum=0),
            bid=bid,
            bid_qty=_positive(data, "B", stream),
            ask=ask,
            ask_qty=_positive(data, "A", stream),
            recv_us=recv_us,
        )


def _preview(raw: str | bytes, n: int = 120) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return repr(text[:n] + ("..." if len(text) > n else ""))


def _field(data: dict[str, Any], key: str, stream: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise MalformedMessage(MalformedReason.MISSING_FIELD, f"{stream}: field {key!r} is missing") from None


def _int(data: dict[str, Any], key: str, stream: str, *, minimum: int) -> int:
    value = _field(data, key, stream)
    if type(value) is not int:  # bool is an int subclass and must not pass
        raise MalformedMessage(MalformedReason.BAD_FIELD, f"{stream}: field {key!r} = {value!r}, not an integer")
    if value < minimum:
        raise MalformedMessage(MalformedReason.NON_POSITIVE, f"{stream}: field {key!r} = {value} < {minimum}")
    if value > MAX_ID:
        raise MalformedMessage(MalformedReason.OUT_OF_RANGE, f"{stream}: field {key!r} = {value} is above 2**63 - 1")
    return value


def _time_ms(data: dict[str, Any], key: str, stream: str) -> int:
    value = _int(data, key, stream, minimum=1)
    if not MIN_TIME_MS <= value < MAX_TIME_MS:
        raise MalformedMessage(
            MalformedReason.OUT_OF_RANGE,
            f"{stream}: field {key!r} = {value} ms is outside 2009-01-03..2100-01-01 UTC",
        )
    return value


def _positive(data: dict[str, Any], key: str, stream: str) -> float:
    value = _field(data, key, stream)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedMessage(MalformedReason.BAD_FIELD, f"{stream}: field {key!r} = {value!r}, not a decimal")
    try:
        x = float(value)
    except ValueError:
        detail = f"{stream}: field {key!r} = {value!r}, not a decimal"
        raise MalformedMessage(MalformedReason.BAD_FIELD, detail) from None
    if not math.isfinite(x):
        raise MalformedMessage(MalformedReason.BAD_FIELD, f"{stream}: field {key!r} = {value!r} is not finite")
    if x <= 0.0:
        raise MalformedMessage(MalformedReason.NON_POSITIVE, f"{stream}: field {key!r} = {value!r} is not > 0")
    if x > MAX_DECIMAL:
        raise MalformedMessage(MalformedReason.OUT_OF_RANGE, f"{stream}: field {key!r} = {value!r} is above 1e15")
    return x
