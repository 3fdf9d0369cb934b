"""``rltrade data download`` as a job: plan the archives, fetch and verify them all, import, top up.

Order of work, for every requested :class:`~rltrade.data.archives.DataSpec`:

1. plan monthly/daily archives for ``[start, end)`` (:func:`~rltrade.data.archives.plan_archives`) and
   drop those whose days the store already holds (probed at both ends of the archive);
2. fetch every archive (:func:`~rltrade.data.download.fetch_archives`); a monthly archive that is not
   published (404) is replaced by its daily archives, fetched in a second round;
3. if any archive was refused (checksum), stop **before importing anything**: the error lists them all;
4. import the verified archives oldest first through the store's public ``append``;
5. top up the days the archives do not have yet (from the first day of the trailing run of missing
   archives to ``min(end, now)``) through ccxt (:func:`rltrade.data.fetch.download`), which never hands
   out the bar still forming at ``now``. ccxt's path is spot only and gives aggregated trades, so only spot
   klines and spot aggTrades are topped up; anything else is reported as not covered yet.

``now_us`` is injectable (tests pin it); it decides which archives can exist and which bar is closed.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from rltrade.data.archives import Archive, ArchiveError, DataSpec, Market, day_us, plan_archives
from rltrade.data.cleaning import CleaningReport, Policy
from rltrade.data.download import Fetched, Retry, fetch_archives
from rltrade.data.fetch import download
from rltrade.data.importers import FileKind, ImportResult, import_file
from rltrade.data.pipeline import Progress, StoreSummary
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_HOUR, Kind


def _noop(done: int, total: int, what: str) -> None:
    del done, total, what


@dataclass
class DownloadReport:
    """What one download did, for the CLI to print."""

    summary: StoreSummary = field(default_factory=StoreSummary)
    fetched: list[Fetched] = field(default_factory=list)
    already_stored: int = 0
    """Archives skipped because the store already holds their days."""
    cleaning: list[CleaningReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def downloaded(self) -> int:
        """The number of archives downloaded and verified (not taken from the cache)."""
        return sum(1 for f in self.fetched if f.outcome == "verified" and not f.cached)

    @property
    def from_cache(self) -> int:
        """The number of archives taken from the cache."""
        return sum(1 for f in self.fetched if f.cached)

    @property
    def missing(self) -> list[Archive]:
        """The archives not published (HTTP 404), in order."""
        return [f.archive for f in self.fetched if f.outcome == "missing"]


def _is_stored(store: Store, key: DatasetKey, archive: Archive) -> bool:
    """Whether the store has rows at both ends of the archive's days (an archive is imported whole)."""
    probe = max(US_PER_HOUR, key.timeframe.us if key.timeframe is not None else 0)
    head = store.read(key, archive.start_us, archive.start_us + probe)
    return head.height > 0 and store.read(key, archive.end_us - probe, archive.end_us).height > 0


def _ccxt_symbol(exchange: Any, symbol: str) -> str:
    exchange.load_markets()
    markets = (exchange.markets_by_id or {}).get(symbol) or []
    spot = [m for m in markets if m.get("spot")]
    if not spot:
        raise ArchiveError(f"{exchange.id} has no spot market with id {symbol!r} to top up from")
    return str(spot[0]["symbol"])


def _top_up_kind(spec: DataSpec) -> str | None:
    """Why ``spec`` cannot be topped up through ccxt, or None when it can."""
    if spec.market is not Market.SPOT:
        return "the ccxt path downloads spot markets only"
    if spec.kind is FileKind.TRADES:
        return "ccxt gives aggregated trades, whose ids differ from raw trade ids"
    return None


def _tail_start(spec_fetched: Sequence[Fetched], default: dt.date) -> dt.date:
    """First day of the trailing run of missing archives (``default`` when the last archive was found)."""
    start = default
    for f in sorted(spec_fetched, key=lambda f: f.archive.first, reverse=True):
        if f.outcome != "missing":
            break
        start = f.archive.first
    return start


def download_to_store(
    specs: Sequence[DataSpec],
    start: dt.date,
    end: dt.date,
    store: Store,
    *,
    base_url: str,
    cache_dir: Path,
    concurrency: int = 8,
    retry: Retry = Retry(),
    accept_mismatch: Sequence[str] = (),
    strict: bool = False,
    exchange: Any | None = None,
    now_us: Callable[[], int],
    progress: Progress = _noop,
) -> DownloadReport:
    """Download ``specs`` for days ``start <= day < end`` into ``store``; see the module docstring.

    ``exchange`` is a ccxt exchange (:func:`rltrade.data.fetch.make_exchange`) for the top-up, or None to
    skip it. Raises :class:`ArchiveError` (nothing imported) when any archive failed its checksum.
    """
    report = DownloadReport()
    now = now_us()
    today = dt.datetime.fromtimestamp(now / 1e6, tz=dt.UTC).date()
    start_us, end_us = day_us(start), day_us(end)
    planned: dict[DataSpec, list[Archive]] = {}
    for spec in specs:
        archives = plan_archives(spec, start, end, today=today)
        todo = [a for a in archives if not _is_stored(store, spec.key(), a)]
        report.already_stored += len(archives) - len(todo)
        planned[spec] = todo

    total = sum(len(a) for a in planned.values())
    done = 0

    def tick(f: Fetched) -> None:
        nonlocal done
        done += 1
        progress(done, total, f"fetch {f.archive.name}")

    fetch = functools.partial(
        fetch_archives,
        base_url=base_url,
        cache_dir=cache_dir,
        concurrency=concurrency,
        retry=retry,
        accept_mismatch=accept_mismatch,
        on_done=tick,
    )
    first = fetch([a for todo in planned.values() for a in todo])
    # Months not published yet: their days, minus those already stored.
    fallback = [
        day
        for f in first
        if f.outcome == "missing" and f.archive.monthly
        for day in f.archive.days()
        if day.first < today and not _is_stored(store, day.spec.key(), day)
    ]
    total += len(fallback)
    second = fetch(fallback)
    report.fetched = [f for f in first if not (f.outcome == "missing" and f.archive.monthly)] + second
    refused = [f for f in report.fetched if f.outcome == "refused"]
    if refused:
        listing = "\n".join(f"  - {f.note}" for f in refused)
        raise ArchiveError(
            f"{len(refused)} archive(s) refused; nothing was imported (verified archives are kept in {cache_dir}, "
            f"so a re-run downloads only what is missing):\n{listing}"
        )
    for f in report.fetched:
        if f.note and f.outcome == "verified":  # missing archives are summarised per dataset below
            report.notes.append(f"{f.archive.name}: {f.note}")

    verified = sorted(
        (f for f in report.fetched if f.outcome == "verified"), key=lambda f: (str(f.archive.spec), f.archive.first)
    )
    policy: Policy = "strict" if strict else "repair"

    def parse(f: Fetched) -> ImportResult:
        spec = f.archive.spec
        assert f.path is not None
        return import_file(f.path, kind=spec.kind, symbol=spec.symbol, timeframe=spec.timeframe, policy=policy)

    # Parse the next archive while the store writes this one (parsing and fsync both release the GIL);
    # at most two archives' rows are in memory.
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: Future[ImportResult] | None = pool.submit(parse, verified[0]) if verified else None
        for i, f in enumerate(verified):
            progress(i, len(verified), f"import {f.archive.name}")
            assert ahead is not None
            result = ahead.result()
            ahead = pool.submit(parse, verified[i + 1]) if i + 1 < len(verified) else None
            key = f.archive.spec.key()
            frame = result.frame.filter((pl.col(key.time_col) >= start_us) & (pl.col(key.time_col) < end_us))
            report.summary.add(key, store.append(key, frame))
            if not result.report.is_clean:
                report.cleaning.append(result.report)
    progress(len(verified), len(verified), "imported")

    for spec in specs:
        _top_up(report, spec, store, end=end, today=today, now=now, exchange=exchange)
    return report


def _top_up(
    report: DownloadReport, spec: DataSpec, store: Store, *, end: dt.date, today: dt.date, now: int, exchange: Any
) -> None:
    """Fill the days the archives lack at the end of the range through ccxt (closed bars only)."""
    fetched = [f for f in report.fetched if f.archive.spec == spec]
    if fetched and all(f.outcome == "missing" for f in fetched):
        report.notes.append(
            f"{spec}: none of the {len(fetched)} archive(s) asked for exists on the server: check the symbol, "
            "--market and the dates (a symbol has no archives before its listing)"
        )
    tail = _tail_start(fetched, min(end, today))
    missing_inside = [f.archive.name for f in fetched if f.outcome == "missing" and f.archive.first < tail]
    if missing_inside:
        report.notes.append(
            f"{spec}: {len(missing_inside)} archive(s) not published, left as gaps: {', '.join(missing_inside[:5])}"
            + (" …" if len(missing_inside) > 5 else "")
        )
    lo, hi = day_us(tail), min(day_us(end), now)
    if lo >= hi:
        return
    span = f"{_iso(lo)} → {_iso(hi)}"
    why_not = _top_up_kind(spec) if exchange is not None else "no exchange given (--no-top-up)"
    if why_not is not None:
        report.notes.append(f"{spec}: {span} is not in the archives yet and was not topped up ({why_not})")
        return
    key = spec.key()
    kind = Kind.BARS if spec.kind is FileKind.KLINES else Kind.TRADES
    result = download(
        exchange,
        _ccxt_symbol(exchange, spec.symbol),
        kind,
        spec.timeframe,
        lo,
        hi,
        on_page=lambda page: report.summary.add(key, store.append(key, page)),
        resume_from_us=store.last_time(key),
        now_us=now,
    )
    report.notes.append(f"{spec}: topped up {result.rows:,} row(s) through {exchange.id} for {span}")


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
