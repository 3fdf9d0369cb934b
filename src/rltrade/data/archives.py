"""Binance public data archives: what to download (monthly vs daily), where it lives, and its checksum.

Layout, as Binance documents it for ``data.binance.vision``::

    data/spot/monthly/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08.zip        (+ .zip.CHECKSUM)
    data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08-09.zip
    data/spot/monthly/trades/ETHUSDT/ETHUSDT-trades-2024-08.zip
    data/futures/um/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2024-08-09.zip

A ``.CHECKSUM`` file is one line ``<sha256 hex>  <file name>``: :func:`parse_checksum` checks both the
name and the hash's form. A month's archive is published early in the next month, a day's a day or two
later; :func:`plan_archives` asks for a monthly archive only for a whole month that is over, and daily
ones for the rest (days from today on are never asked for: they are topped up through ccxt).

What is inside an archive (one CSV, header or not, ms or µs times, the Binance columns) is read by
:func:`rltrade.data.importers.import_file`, which detects the header and the time unit per file.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Final

from rltrade.data.fetch import FetchError
from rltrade.data.importers import FileKind
from rltrade.data.store import DatasetKey
from rltrade.types import US_PER_DAY, Timeframe

_EPOCH: Final = dt.date(1970, 1, 1)
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")


class ArchiveError(FetchError):
    """An archive could not be fetched, failed its checksum, or was asked for in a way that cannot work."""


class Market(enum.StrEnum):
    """Which Binance market: spot, or USDⓈ-M futures (``um``)."""

    SPOT = "spot"
    UM = "um"

    @property
    def url_part(self) -> str:
        """The market's path segment in archive URLs (``spot`` or ``futures/um``)."""
        return "spot" if self is Market.SPOT else "futures/um"

    @property
    def exchange(self) -> str:
        """The store's exchange folder: ccxt's ids, so spot and futures never share a dataset."""
        return "binance" if self is Market.SPOT else "binanceusdm"


@dataclass(frozen=True)
class DataSpec:
    """One downloadable dataset: a symbol's klines of one timeframe, its trades, or its aggTrades."""

    symbol: str
    market: Market
    kind: FileKind
    timeframe: Timeframe | None = None

    def __post_init__(self) -> None:
        """Check the kind/timeframe pairing and that 1s klines are asked of spot only."""
        if self.kind is FileKind.RECORDED_TRADES:
            raise ArchiveError("Binance archives hold klines, trades or aggTrades, not recorded trades")
        if (self.kind is FileKind.KLINES) != (self.timeframe is not None):
            raise ArchiveError("klines need a timeframe and trades must not have one")
        if self.timeframe is Timeframe.S1 and self.market is not Market.SPOT:
            raise ArchiveError(
                f"1s klines exist for spot only; Binance publishes no 1s klines for {self.market} futures. "
                "Download 1m klines, or aggTrades and resample them to 1s (rltrade data resample)"
            )

    @classmethod
    def parse(cls, symbol: str, market: Market, kind: str) -> DataSpec:
        """``kind``: a klines timeframe (1s, 1m, 1h, 1d), ``trades`` or ``aggTrades``."""
        if kind in ("trades", "aggTrades"):
            return cls(symbol, market, FileKind(kind))
        try:
            tf = Timeframe(kind)
        except ValueError:
            raise ArchiveError(
                f"unknown kind {kind!r}: use a klines timeframe (1s, 1m, 1h, 1d), trades or aggTrades"
            ) from None
        return cls(symbol, market, FileKind.KLINES, tf)

    @property
    def label(self) -> str:
        """``1m``, ``trades`` or ``aggTrades``: the token in archive names."""
        return self.timeframe.value if self.timeframe is not None else self.kind.value

    def key(self) -> DatasetKey:
        """Return the store dataset the archives go to (trades and aggTrades both go to the trades dataset)."""
        return DatasetKey(self.market.exchange, self.symbol, self.kind.data_kind, self.timeframe)

    def __str__(self) -> str:
        """Return ``market symbol label``."""
        return f"{self.market} {self.symbol} {self.label}"


@dataclass(frozen=True)
class Archive:
    """One zip of the public archives: a month or a day of one :class:`DataSpec`."""

    spec: DataSpec
    first: dt.date
    """First day the archive covers (the 1st for a monthly archive)."""
    monthly: bool

    @property
    def last(self) -> dt.date:
        """Last day covered (inclusive)."""
        if not self.monthly:
            return self.first
        return _next_month(self.first) - dt.timedelta(days=1)

    @property
    def name(self) -> str:
        """The archive's file name, as Binance publishes it."""
        when = self.first.strftime("%Y-%m") if self.monthly else self.first.isoformat()
        return f"{self.spec.symbol}-{self.spec.label}-{when}.zip"

    @property
    def url_path(self) -> str:
        """Path under the base URL, e.g. ``data/spot/monthly/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08.zip``."""
        spec = self.spec
        folder = "klines" if spec.kind is FileKind.KLINES else spec.kind.value
        parts = ["data", spec.market.url_part, "monthly" if self.monthly else "daily", folder, spec.symbol]
        if spec.timeframe is not None:
            parts.append(spec.timeframe.value)
        return "/".join([*parts, self.name])

    @property
    def start_us(self) -> int:
        """Midnight UTC of the first day, in µs."""
        return day_us(self.first)

    @property
    def end_us(self) -> int:
        """Exclusive end: midnight after the last day."""
        return day_us(self.last) + US_PER_DAY

    def days(self) -> list[Archive]:
        """Split into the daily archives of the same days (a monthly archive not published yet falls back to them)."""
        n = (self.last - self.first).days + 1
        return [Archive(self.spec, self.first + dt.timedelta(days=i), monthly=False) for i in range(n)]

    def __str__(self) -> str:
        """Return the archive's URL path."""
        return self.url_path


def day_us(day: dt.date) -> int:
    """Midnight UTC of ``day`` in µs since the epoch."""
    return (day - _EPOCH).days * US_PER_DAY


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def plan_archives(spec: DataSpec, start: dt.date, end: dt.date, *, today: dt.date) -> list[Archive]:
    """List the archives covering days ``start <= day < end`` that can exist on ``today`` (UTC), oldest first.

    A calendar month wholly inside the range and already over (``today`` is in a later month) is one
    monthly archive; every other day before ``today`` is a daily archive. Days from ``today`` on have no
    archive yet; the caller tops them up another way.
    """
    if end <= start:
        raise ArchiveError(f"empty date range: start {start} is not before end {end}")
    stop = min(end, today)
    out: list[Archive] = []
    day = start
    while day < stop:
        month_end = _next_month(day)
        if day.day == 1 and month_end <= stop:
            out.append(Archive(spec, day, monthly=True))
            day = month_end
        else:
            out.append(Archive(spec, day, monthly=False))
            day += dt.timedelta(days=1)
    return out


def parse_checksum(text: str, *, name: str, source: str) -> str:
    """Parse the SHA-256 hex of a ``.CHECKSUM`` file's text, which must name ``name``.

    The file is one line ``<64 hex digits><whitespace><file name>``; anything else, or another file's
    name, raises :class:`ArchiveError` (a checksum of the wrong file verifies nothing).
    """
    fields = text.strip().split()
    if len(fields) != 2 or not _SHA256.match(fields[0].lower()):
        raise ArchiveError(
            f"{source}: not a checksum file (expected one line '<sha256 hex>  <file name>', got {text[:120]!r}); "
            "the mirror may be serving an error page: check --base-url"
        )
    digest, named = fields[0].lower(), fields[1].lstrip("*")  # sha256sum writes '*' before binary-mode names
    if named != name:
        raise ArchiveError(
            f"{source}: the checksum is for {named!r}, not {name!r}; the mirror's files are mixed up: "
            "check --base-url or report it to the mirror"
        )
    return digest
