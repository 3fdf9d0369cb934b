"""``rltrade data ...``: synthesise, import, fetch, resample and inspect market data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console, load, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.data.pipeline import (
    StoreSummary,
    data_report,
    import_to_store,
    resample_in_store,
    synthesize_to_store,
)
from rltrade.data.store import DatasetCoverage, DatasetKey, Store, StoreError
from rltrade.types import Kind, Timeframe

data_app = typer.Typer(help="Market data: synthesise, import, fetch, resample, inspect.", no_args_is_help=True)
app.add_typer(data_app, name="data")

BINANCE_ARCHIVES = "https://data.binance.vision"
"""Binance's public data archives (``rltrade data download --base-url`` points elsewhere)."""

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store root (default: data.store of the config).")]


def _store(config: Path | None, store: Path | None) -> Store:
    return Store(store if store is not None else load(config).data.store)


def print_summary(summary: StoreSummary) -> None:
    """Print what an import appended (rows in, new, duplicates, files written per dataset), then its notes."""
    table = Table(title="appended to the store")
    for col in ("dataset", "rows in", "new", "duplicates", "files written"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, res in summary.appended.items():
        table.add_row(name, f"{res.rows_in:,}", f"{res.rows_new:,}", f"{res.rows_duplicate:,}", str(res.days_written))
    console.print(table)
    for note in summary.notes:
        console.print(note)


def _fmt_us(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_span(us: int) -> str:
    days, rest = divmod(us, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes = rest // 60_000_000
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m {rest // 10**6 % 60}s"


def print_report(reports: list[DatasetCoverage], *, per_partition: bool = False) -> None:
    """Build the data report: one row per dataset (and per partition file with ``per_partition``).

    ``missing`` counts absent bars between the first and the last stored bar, inside files and between
    them (a month never imported is missing bars too); ``holes`` counts the runs of them (for trades:
    silences over an hour). Below the table, each dataset with holes names its longest one.
    """
    if not reports:
        console.print("the store is empty")
        return
    table = Table(title="store coverage")
    for col in ("dataset", "files", "rows", "first", "last", "missing", "holes", "filled"):
        table.add_column(col, justify="left" if col in ("dataset", "first", "last") else "right")
    for rep in reports:
        is_bars = rep.key.kind is Kind.BARS
        table.add_row(
            str(rep.key),
            str(len(rep.partitions)),
            f"{rep.rows:,}",
            _fmt_us(rep.first_us),
            _fmt_us(rep.last_us),
            f"{rep.missing:,}" if is_bars else "-",
            f"{rep.holes:,}",
            f"{rep.filled:,}" if is_bars else "-",
        )
        if per_partition:
            for label, e in rep.partitions:
                table.add_row(
                    f"  {label}",
                    "",
                    f"{e.rows:,}",
                    _fmt_us(e.first_us),
                    _fmt_us(e.last_us),
                    f"{e.missing:,}" if is_bars else "-",
                    f"{e.holes:,}",
                    f"{e.filled:,}" if is_bars else "-",
                )
    console.print(table)
    for rep in reports:
        if rep.longest is not None:
            a, b = rep.longest.after_us, rep.longest.before_us
            console.print(
                f"{rep.key}: {rep.holes:,} hole(s); the longest has nothing between {_fmt_us(a)} and {_fmt_us(b)} "
                f"({_fmt_span(b - a)})"
            )


@data_app.command("synth")
def synth(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Generate the synthetic ETH/BTC market of the config into the store."""
    cfg = load(config)
    target = _store(config, store)
    with progress_bar() as bar:
        task = bar.add_task("synthesising", total=None)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        summary = synthesize_to_store(cfg.data, target, progress=report)
    print_summary(summary)
    print_report(data_report(target))


@data_app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(help="Dump files of one symbol/kind/timeframe (csv, gz, zip), or freqtrade files/folders."),
    ],
    symbol: Annotated[str | None, typer.Option(help="Symbol, when the file names do not say.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Klines timeframe (1s/1m/1h/1d), when not inferable.")] = None,
    exchange: Annotated[str, typer.Option(help="Exchange folder in the store.")] = "binance",
    strict: Annotated[bool, typer.Option(help="Refuse any bad row instead of repairing and counting it.")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Import Binance klines, trades, aggTrades or recorded-trades files, or freqtrade files and folders.

    freqtrade files (``ETH_USDT-1m.feather``, ``futures/ETH_USDT_USDT-1h-futures.feather``, ``ETH_USDT-trades.json``,
    …) and folders of them are recognised by name; symbol, market and timeframe come from the names.
    """
    from rltrade.data.freqtrade import parse_name

    freqtrade = [p.is_dir() or parse_name(p) is not None for p in files]
    if any(freqtrade):
        if not all(freqtrade):
            dumps = [str(p) for p, ft in zip(files, freqtrade, strict=True) if not ft]
            raise UsageError(f"import freqtrade files and Binance dump files separately; dump files: {dumps}")
        if symbol is not None or timeframe is not None:
            raise UsageError("freqtrade file names give the symbol and timeframe; drop --symbol / --timeframe")
        _import_freqtrade(files, config=config, store=store, exchange=exchange, strict=strict)
        return
    tf = Timeframe.parse(timeframe) if timeframe else None
    summary, cleaning = import_to_store(
        files, _store(config, store), exchange=exchange, symbol=symbol, timeframe=tf, strict=strict
    )
    print_summary(summary)
    console.print(f"cleaning: {cleaning}")


def _import_freqtrade(
    paths: list[Path], *, config: Path | None, store: Path | None, exchange: str, strict: bool
) -> None:
    from rltrade.data.freqtrade_job import import_freqtrade

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"not found: {', '.join(missing)}")
    cfg = load(config)
    target = _store(config, store)
    with progress_bar() as bar:
        task = bar.add_task("freqtrade", total=None)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        result = import_freqtrade(
            paths, target, exchange=exchange, timeframes=cfg.data.timeframes, strict=strict, progress=report
        )
    print_summary(result.summary)
    for rep in result.cleaning:
        console.print(f"cleaning: {rep.summary()}")
    for note in result.notes:
        console.print(note)
    for why, skipped in result.skipped.items():
        shown = ", ".join(p.name for p in skipped[:4]) + (" …" if len(skipped) > 4 else "")
        console.print(f"skipped {len(skipped)} file(s): {why}: {shown}")


def _parse_time(value: str, what: str) -> int:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what}: {value!r} is not a date/time; write e.g. 2024-08-01 or 2024-08-01T12:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


@data_app.command("fetch")
def fetch(
    symbol: Annotated[str, typer.Option(help="ccxt symbol, e.g. ETH/USDT.")] = "ETH/USDT",
    kind: Annotated[str, typer.Option(help="bars or trades.")] = "bars",
    timeframe: Annotated[str, typer.Option(help="Bar timeframe (1s/1m/1h/1d) for bars.")] = "1m",
    start: Annotated[str, typer.Option(help="UTC start, e.g. 2024-08-01.")] = "2024-08-01",
    end: Annotated[str | None, typer.Option(help="UTC end (exclusive); default now.")] = None,
    exchange: Annotated[str, typer.Option(help="ccxt exchange id.")] = "binance",
    api_url: Annotated[
        list[str] | None, typer.Option(help="Override a urls['api'] entry, KEY=URL (e.g. a local mirror).")
    ] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Download OHLCV bars or trades through ccxt, resuming where the store ends."""
    from rltrade.data.fetch import DownloadProgress, download, make_exchange

    data_kind = Kind(kind) if kind in ("bars", "trades") else None
    if data_kind is None:
        raise UsageError(f"--kind must be bars or trades, got {kind!r}")
    tf = Timeframe.parse(timeframe) if data_kind is Kind.BARS else None
    start_us = _parse_time(start, "--start")
    end_us = _parse_time(end, "--end") if end else int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    target = _store(config, store)
    key = DatasetKey(exchange, symbol.replace("/", ""), data_kind, tf)
    ex = make_exchange(exchange, api_urls=_api_urls(api_url))
    summary = StoreSummary()
    with progress_bar() as bar:
        task = bar.add_task(f"fetch {key}", total=1000)

        def on_progress(p: DownloadProgress) -> None:
            bar.update(task, completed=int(p.fraction * 1000), description=f"fetch {key}: {p.rows:,} rows")

        result = download(
            ex,
            symbol,
            data_kind,
            tf,
            start_us,
            end_us,
            on_page=lambda page: summary.add(key, target.append(key, page)),
            resume_from_us=target.last_time(key),
            progress=on_progress,
        )
    console.print(
        f"{key}: {result.rows:,} rows in {result.pages} page(s), {result.retries} retr(ies), "
        f"from {_fmt_us(result.start_us)}"
    )
    print_report([r for r in data_report(target) if r.key == key])


@data_app.command("resample")
def resample(
    symbol: Annotated[str, typer.Option(help="Store symbol, e.g. ETHUSDT.")] = "ETHUSDT",
    src: Annotated[str, typer.Option("--from", help="Source: trades, 1s, 1m or 1h.")] = "trades",
    dst: Annotated[str, typer.Option("--to", help="Target timeframe: 1s, 1m, 1h or 1d.")] = "1s",
    exchange: Annotated[str, typer.Option(help="Exchange folder in the store.")] = "binance",
    keep_incomplete: Annotated[bool, typer.Option(help="Keep coarse bars with missing source bars.")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Build coarser bars from stored trades or bars and store them."""
    source = None if src == "trades" else Timeframe.parse(src)
    summary, note = resample_in_store(
        _store(config, store),
        exchange=exchange,
        symbol=symbol,
        src=source,
        dst=Timeframe.parse(dst),
        complete_only=not keep_incomplete,
    )
    print_summary(summary)
    console.print(note)


@data_app.command("info")
def info(
    per_partition: Annotated[
        bool, typer.Option("--per-partition", "--per-day", help="One row per stored file (day, month or year).")
    ] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Coverage per dataset: rows, missing bars and holes (inside and between files), filled bars."""
    print_report(data_report(_store(config, store)), per_partition=per_partition)


@data_app.command("download")
def download_archives(
    start: Annotated[str, typer.Option(help="First UTC day, e.g. 2024-01-01.")],
    end: Annotated[str | None, typer.Option(help="UTC day after the last one (exclusive); default: up to now.")] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", "-s", help="Binance symbol, repeatable (default: the config's).")
    ] = None,
    market: Annotated[str, typer.Option(help="spot or um (USDⓈ-M futures).")] = "spot",
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="1s, 1m, 1h, 1d (klines), trades or aggTrades; repeatable.")
    ] = None,
    base_url: Annotated[str, typer.Option(help="Archive server (a mirror or a local copy).")] = BINANCE_ARCHIVES,
    cache: Annotated[
        Path | None, typer.Option(help="Folder of verified archives (default: <store>-archives beside the store).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Downloads in flight at once.")] = 8,
    accept_checksum_mismatch: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-checksum-mismatch",
            help="Import this archive (file name) although its SHA-256 differs from its published .CHECKSUM "
            "(Binance has stale checksums for some re-uploaded files); repeatable.",
        ),
    ] = None,
    top_up: Annotated[
        bool, typer.Option(help="Fetch the days the archives do not have yet through ccxt (closed bars only).")
    ] = True,
    api_url: Annotated[
        list[str] | None, typer.Option(help="For the top-up: override a ccxt urls['api'] entry, KEY=URL.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Refuse any bad row instead of repairing and counting it.")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Download Binance public data archives (checksum-verified), import them, top up the last days."""
    from rltrade.data.archives import DataSpec, Market
    from rltrade.data.download_job import download_to_store
    from rltrade.data.fetch import make_exchange

    cfg = load(config)
    try:
        mkt = Market(market)
    except ValueError:
        raise UsageError(f"--market must be spot or um, got {market!r}") from None
    symbols = [s.replace("/", "").upper() for s in symbol] if symbol else [cfg.data.symbol, cfg.data.reference]
    specs = [DataSpec.parse(s, mkt, k) for s in symbols for k in (kind or ["1m"])]
    if {"trades", "aggTrades"} <= set(kind or []):
        raise UsageError("trades and aggTrades share one trades dataset per symbol (their ids differ): pick one")
    first = dt.date.fromisoformat(_iso_day(start, "--start"))
    now_us = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    last = (
        dt.date.fromisoformat(_iso_day(end, "--end"))
        if end
        else dt.datetime.fromtimestamp(now_us / 1e6, tz=dt.UTC).date() + dt.timedelta(days=1)
    )
    target = _store(config, store)
    cache_dir = cache if cache is not None else target.root.parent / f"{target.root.name}-archives"
    exchange = make_exchange(mkt.exchange, api_urls=_api_urls(api_url)) if top_up else None
    with progress_bar() as bar:
        task = bar.add_task("archives", total=None)

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        result = download_to_store(
            specs,
            first,
            last,
            target,
            base_url=base_url,
            cache_dir=cache_dir,
            concurrency=concurrency,
            accept_mismatch=accept_checksum_mismatch or (),
            strict=strict,
            exchange=exchange,
            now_us=lambda: now_us,
            progress=report,
        )
    console.print(
        f"archives: {result.downloaded} downloaded, {result.from_cache} from the cache ({cache_dir}), "
        f"{result.already_stored} already stored, {len(result.missing)} not published"
    )
    print_summary(result.summary)
    for rep in result.cleaning:
        console.print(f"cleaning: {rep.summary()}")
    for note in result.notes:
        console.print(note)
    keys = {str(s.key()) for s in specs}
    print_report([r for r in data_report(target) if str(r.key) in keys])


def _iso_day(value: str, what: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{what}: {value!r} is not a date; write e.g. 2024-08-01") from None


def _api_urls(items: list[str] | None) -> dict[str, str] | None:
    urls = {}
    for item in items or []:
        name, sep, url = item.partition("=")
        if not sep:
            raise UsageError(f"--api-url must be KEY=URL, got {item!r}")
        urls[name] = url
    return urls or None


@data_app.command("check")
def check(
    drop_bad: Annotated[bool, typer.Option(help="Take damaged files out of the store (one transaction).")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Read every stored file whole and list the damaged ones (exit 3 if any and not dropped)."""
    target = _store(config, store)
    bad = target.drop_bad() if drop_bad else target.check()
    for key, label, why in bad:
        console.print(f"{key} {label}: {why}")
    if not bad:
        console.print(f"{target.root}: every stored file reads back whole")
    elif drop_bad:
        console.print(f"took {len(bad)} damaged file(s) out of the store; re-import those ranges")
    else:
        raise StoreError(
            f"{len(bad)} damaged file(s) in {target.root}; run `rltrade data check --drop-bad` to take them out, "
            "then re-import those ranges"
        )


@data_app.command("migrate")
def migrate_(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Convert a store in the old layout (one file per day) to partitions sized to the timeframe."""
    from rltrade.data.store_legacy import migrate

    target = _store(config, store)
    done = migrate(target)
    if not done:
        console.print(f"{target.root}: nothing to migrate")
    for key, rows in done.items():
        console.print(f"{key}: {rows:,} rows migrated")
    if done:
        print_report(data_report(target))
