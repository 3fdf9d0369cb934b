"""``data download``: the real aiohttp client against a local archive server on 127.0.0.1.

Archives are built on the fly (from ``../shared/data/real`` where a test says so, else synthetic) and served
with their checksums; faults are scripted: a month not published (404), a wrong checksum, a truncated zip,
a 5xx or a dropped connection followed by success. The ccxt top-up runs against the fake Binance REST API
with a pinned clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rltrade.data.archives import Archive, ArchiveError, DataSpec, Market, day_us, parse_checksum, plan_archives
from rltrade.data.cleaning import CorruptFileError
from rltrade.data.download import Retry, fetch_archives
from rltrade.data.download_job import download_to_store
from rltrade.data.fetch import make_exchange
from rltrade.data.importers import FileKind, import_file
from rltrade.data.store import DatasetKey, Store
from rltrade.types import US_PER_MINUTE, Kind, Timeframe
from tests.support.archive_server import (
    DAY_MS,
    SHORT,
    ArchiveServer,
    kline_csv,
    kline_rows,
    real_kline_days,
    sha256,
    trades_csv,
    zip_one,
)
from tests.support.fake_binance import FakeBinance, guard_local_only, make_klines
from tests.support.real_data import FILES, require_real

ETH_1M = DataSpec("ETHUSDT", Market.SPOT, FileKind.KLINES, Timeframe.M1)
Rows = list[list[Any]]
NO_WAIT = Retry(max_retries=3, backoff_s=0.0, timeout_s=20.0)
D0 = dt.date(2024, 8, 8)
D0_MS = day_us(D0) // 1000


def _now(day: dt.date, hour: int = 12) -> int:
    return day_us(day) + hour * 3_600_000_000


def _serve_days(server: ArchiveServer, spec: DataSpec, days: dict[dt.date, list[list[Any]]], **kw: Any) -> None:
    for day, rows in days.items():
        server.add_csv(Archive(spec, day, monthly=False).url_path, kline_csv(rows, **kw))


def _synthetic_days(
    first: dt.date, n_days: int, step_ms: int = 60_000, *, seed: int = 3
) -> dict[dt.date, list[list[Any]]]:
    per_day = DAY_MS // step_ms
    rows = kline_rows(day_us(first) // 1000, n_days * per_day, step_ms, seed=seed)
    return {first + dt.timedelta(days=i): rows[i * per_day : (i + 1) * per_day] for i in range(n_days)}


def _job(
    server: ArchiveServer, store: Store, tmp: Path, specs: list[DataSpec], start: dt.date, end: dt.date, **kw: Any
) -> Any:
    kw.setdefault("now_us", lambda: _now(end + dt.timedelta(days=30)))
    kw.setdefault("retry", NO_WAIT)
    return download_to_store(specs, start, end, store, base_url=server.base_url, cache_dir=tmp / "cache", **kw)


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    with ArchiveServer() as s:
        yield s


# ------------------------------------------------------------------------------------------ planning


def test_plan_uses_monthly_archives_for_whole_finished_months_only() -> None:
    plan = plan_archives(ETH_1M, dt.date(2024, 7, 30), dt.date(2024, 10, 3), today=dt.date(2024, 10, 2))
    names = [a.name for a in plan]
    assert names == [
        "ETHUSDT-1m-2024-07-30.zip",
        "ETHUSDT-1m-2024-07-31.zip",
        "ETHUSDT-1m-2024-08.zip",
        "ETHUSDT-1m-2024-09.zip",
        "ETHUSDT-1m-2024-10-01.zip",  # October is not over; the 2nd is today: no archive yet
    ]
    assert plan[2].url_path == "data/spot/monthly/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08.zip"
    assert (plan[2].start_us, plan[2].end_us) == (day_us(dt.date(2024, 8, 1)), day_us(dt.date(2024, 9, 1)))
    # A month that has just ended but whose range stops before its end stays daily.
    short = plan_archives(ETH_1M, dt.date(2024, 8, 1), dt.date(2024, 8, 31), today=dt.date(2024, 10, 2))
    assert all(not a.monthly for a in short) and len(short) == 30


def test_archive_paths_follow_binance_layout() -> None:
    trades = Archive(DataSpec("BTCUSDT", Market.SPOT, FileKind.TRADES), dt.date(2024, 8, 1), monthly=True)
    agg = Archive(DataSpec("ETHUSDT", Market.UM, FileKind.AGG_TRADES), dt.date(2024, 8, 9), monthly=False)
    assert trades.url_path == "data/spot/monthly/trades/BTCUSDT/BTCUSDT-trades-2024-08.zip"
    assert agg.url_path == "data/futures/um/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2024-08-09.zip"
    assert agg.spec.key() == DatasetKey("binanceusdm", "ETHUSDT", Kind.TRADES)


def test_1s_klines_are_spot_only() -> None:
    DataSpec.parse("ETHUSDT", Market.SPOT, "1s")
    with pytest.raises(ArchiveError, match="1s klines exist for spot only"):
        DataSpec.parse("ETHUSDT", Market.UM, "1s")
    with pytest.raises(ArchiveError, match="unknown kind '5m'"):
        DataSpec.parse("ETHUSDT", Market.SPOT, "5m")


def test_checksum_file_must_name_the_archive() -> None:
    digest = "ab" * 32
    assert (
        parse_checksum(f"{digest.upper()}  ETHUSDT-1m-2024-08.zip\n", name="ETHUSDT-1m-2024-08.zip", source="x")
        == digest
    )
    with pytest.raises(ArchiveError, match=r"the checksum is for 'BTCUSDT-1m-2024-08\.zip'"):
        parse_checksum(f"{digest}  BTCUSDT-1m-2024-08.zip", name="ETHUSDT-1m-2024-08.zip", source="x")
    with pytest.raises(ArchiveError, match="not a checksum file"):
        parse_checksum("<html>Not Found</html>", name="ETHUSDT-1m-2024-08.zip", source="x")


# --------------------------------------------------------------------------------------- real archives


def test_real_month_missing_falls_back_to_daily_and_equals_the_real_file(server: ArchiveServer, tmp_path: Path) -> None:
    real = require_real()
    days = real_kline_days(real / FILES[("eth", Timeframe.M1)])
    # Only daily archives are served: the monthly 2024-08 answers 404, as before Binance publishes it.
    _serve_days(server, ETH_1M, days)
    store = Store(tmp_path / "store")
    start, end = dt.date(2024, 7, 28), dt.date(2024, 9, 1)
    report = _job(server, store, tmp_path, [ETH_1M], start, end)

    assert server.hits("data/spot/monthly/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08.zip.CHECKSUM") == 1
    assert server.hits("data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2024-08-10.zip") == 1
    missing = sorted(a.name for a in report.missing)
    assert missing == [f"ETHUSDT-1m-2024-08-{d}.zip" for d in range(26, 32)]  # the real file ends on the 25th
    assert any("not topped up" in n and "2024-08-26" in n for n in report.notes)
    stored = store.read(ETH_1M.key())
    expected = import_file(real / FILES[("eth", Timeframe.M1)]).frame.filter(
        pl.col("open_us") >= day_us(start), pl.col("open_us") < day_us(end)
    )
    ohlcv = ["open_us", "open", "high", "low", "close", "volume"]
    assert_frame_equal(stored.select(ohlcv), expected.select(ohlcv))
    assert stored.height == report.summary.appended[str(ETH_1M.key())].rows_new


def test_real_trades_archives_import_the_same_trades(server: ArchiveServer, tmp_path: Path) -> None:
    real = require_real()
    spec = DataSpec("ETHUSDT", Market.SPOT, FileKind.TRADES)
    by_day: dict[dt.date, list[list[Any]]] = {}
    with gzip.open(real / FILES[("eth", "trades")], "rt") as fh:
        for r in csv.DictReader(fh):
            t = int(r["trade_time_ms"])
            quote = f"{float(r['price']) * float(r['qty']):.8f}"
            row = [r["trade_id"], r["price"], r["qty"], quote, t, r["is_buyer_maker"], "True"]
            by_day.setdefault(dt.datetime.fromtimestamp(t / 1000, tz=dt.UTC).date(), []).append(row)
    assert len(by_day) == 2  # the 11 minutes straddle midnight
    for day, rows in by_day.items():
        server.add_csv(Archive(spec, day, monthly=False).url_path, trades_csv(rows))
    store = Store(tmp_path / "store")
    _job(server, store, tmp_path, [spec], dt.date(2024, 8, 8), dt.date(2024, 8, 10))

    cols = ["ts_us", "trade_id", "price", "qty", "side"]
    expected = import_file(real / FILES[("eth", "trades")]).frame.sort("ts_us", "trade_id")
    assert_frame_equal(store.read(spec.key()).select(cols), expected.select(cols))


# ------------------------------------------------------------------------------------- faults


def test_wrong_checksum_is_refused_and_nothing_is_imported(server: ArchiveServer, tmp_path: Path) -> None:
    days = _synthetic_days(D0, 3)
    _serve_days(server, ETH_1M, days)
    bad = Archive(ETH_1M, D0 + dt.timedelta(days=1), monthly=False)
    server.add(bad.url_path, zip_one("x.csv", kline_csv(days[bad.first])), checksum="0" * 64)
    store = Store(tmp_path / "store")

    with pytest.raises(ArchiveError, match=r"1 archive\(s\) refused; nothing was imported") as err:
        _job(server, store, tmp_path, [ETH_1M], D0, D0 + dt.timedelta(days=3))
    assert "same bytes twice" in str(err.value) and f"--accept-checksum-mismatch {bad.name}" in str(err.value)
    assert server.hits(bad.url_path) == 2, "a mismatch is downloaded again once"
    assert store.datasets() == []
    assert not (tmp_path / "cache" / bad.url_path).exists(), "a refused zip is not kept"

    # The explicit override imports it, with a note; the verified neighbours come from the cache.
    report = _job(server, store, tmp_path, [ETH_1M], D0, D0 + dt.timedelta(days=3), accept_mismatch=[bad.name])
    assert report.from_cache == 2 and report.downloaded == 1
    assert any("mismatch accepted" in n for n in report.notes)
    assert store.read(ETH_1M.key()).height == 3 * 1440


def test_truncated_zip_is_refused_and_a_torn_cache_is_not_trusted(server: ArchiveServer, tmp_path: Path) -> None:
    days = _synthetic_days(D0, 1)
    archive = Archive(ETH_1M, D0, monthly=False)
    full = zip_one("a.csv", kline_csv(days[D0]))
    server.add(archive.url_path, full[: len(full) // 2], checksum=sha256(full))
    store = Store(tmp_path / "store")
    with pytest.raises(ArchiveError, match="refused"):
        _job(server, store, tmp_path, [ETH_1M], D0, D0 + dt.timedelta(days=1))
    assert store.datasets() == []

    # A truncated zip whose checksum matches (a broken upload) passes the hash but not the import.
    server.add(archive.url_path, full[: len(full) // 2])
    with pytest.raises(CorruptFileError, match="zip archive is damaged or truncated"):
        _job(server, store, tmp_path, [ETH_1M], D0, D0 + dt.timedelta(days=1))
    assert store.datasets() == []


def test_5xx_and_dropped_connections_are_retried(server: ArchiveServer, tmp_path: Path) -> None:
    days = _synthetic_days(D0, 2)
    _serve_days(server, ETH_1M, days)
    first, second = (Archive(ETH_1M, d, monthly=False) for d in days)
    server.inject(first.url_path, 503, 502)
    server.inject(second.url_path + ".CHECKSUM", 500)
    server.inject(second.url_path, SHORT)
    waits: list[float] = []

    async def record(s: float) -> None:
        waits.append(s)

    retry = Retry(max_retries=3, backoff_s=0.25, max_backoff_s=1.0, timeout_s=20.0, sleep=record)
    fetched = fetch_archives([first, second], base_url=server.base_url, cache_dir=tmp_path, retry=retry)

    assert [f.outcome for f in fetched] == ["verified", "verified"]
    assert [f.retries for f in fetched] == [2, 2]
    assert sorted(waits) == [0.25, 0.25, 0.25, 0.5]
    assert fetched[1].path is not None and fetched[1].path.read_bytes() == server._files[second.url_path]
    assert not list(tmp_path.rglob("*.part")), "no partial download is left behind"


def test_persistent_5xx_fails_with_the_url(server: ArchiveServer, tmp_path: Path) -> None:
    archive = Archive(ETH_1M, D0, monthly=False)
    server.add_csv(archive.url_path, kline_csv(_synthetic_days(D0, 1)[D0]))
    server.inject(archive.url_path + ".CHECKSUM", *([503] * 4))
    fetched = fetch_archives([archive], base_url=server.base_url, cache_dir=tmp_path, retry=NO_WAIT)
    assert fetched[0].outcome == "refused"
    assert "failed after 4 tries" in fetched[0].note and archive.url_path in fetched[0].note


def test_rerun_skips_stored_days_and_reuses_the_cache(server: ArchiveServer, tmp_path: Path) -> None:
    _serve_days(server, ETH_1M, _synthetic_days(D0, 2))
    store = Store(tmp_path / "store")
    end = D0 + dt.timedelta(days=2)
    _job(server, store, tmp_path, [ETH_1M], D0, end)
    n_requests = len(server.requests)

    again = _job(server, store, tmp_path, [ETH_1M], D0, end)
    assert again.already_stored == 2 and len(server.requests) == n_requests, "stored days: no request at all"

    fresh = Store(tmp_path / "other")
    third = _job(server, fresh, tmp_path, [ETH_1M], D0, end)
    assert third.from_cache == 2 and len(server.requests) == n_requests, "verified archives: no download"
    assert_frame_equal(fresh.read(ETH_1M.key()), store.read(ETH_1M.key()))


def test_headers_and_microseconds_are_detected_per_file(server: ArchiveServer, tmp_path: Path) -> None:
    day = dt.date(2025, 1, 2)
    days = _synthetic_days(day - dt.timedelta(days=1), 2)
    spot_old, spot_new = (Archive(ETH_1M, d, monthly=False) for d in days)
    server.add_csv(spot_old.url_path, kline_csv(days[spot_old.first]))  # 2025-01-01: ms, no header
    server.add_csv(spot_new.url_path, kline_csv(days[day], micros=True, header=True))  # µs with a header
    um = DataSpec("ETHUSDT", Market.UM, FileKind.KLINES, Timeframe.M1)
    _serve_days(server, um, days, header=True)
    store = Store(tmp_path / "store")
    _job(server, store, tmp_path, [ETH_1M, um], day - dt.timedelta(days=1), day + dt.timedelta(days=1))

    for spec in (ETH_1M, um):
        bars = store.read(spec.key())
        assert bars.height == 2 * 1440
        assert bars["open_us"].diff().drop_nulls().unique().to_list() == [US_PER_MINUTE]
        assert bars.item(0, "open_us") == day_us(day - dt.timedelta(days=1))
    assert_frame_equal(store.read(ETH_1M.key()), store.read(um.key()))


# ------------------------------------------------------------------------------------------ top-up


def test_top_up_through_ccxt_stops_before_the_forming_bar(server: ArchiveServer, tmp_path: Path) -> None:
    """Now is 2024-08-10 12:34:56: the 8th is archived, the 9th not yet (404), the 10th is today."""
    now_ms = D0_MS + 2 * DAY_MS + (12 * 60 + 34) * 60_000 + 56_000
    rows = make_klines("1m", D0_MS, 3 * 1440, seed=5, quiet_every=0)
    server.add_csv(Archive(ETH_1M, D0, monthly=False).url_path, kline_csv(rows[:1440]))
    store = Store(tmp_path / "store")
    with FakeBinance(now_ms=now_ms, klines={("ETHUSDT", "1m"): rows}) as fake:
        ex = make_exchange("binance", api_urls=fake.api_urls(), rate_limit_ms=1)
        with guard_local_only(ex) as guard:
            report = _job(
                server,
                store,
                tmp_path,
                [ETH_1M],
                D0,
                D0 + dt.timedelta(days=5),
                exchange=ex,
                now_us=lambda: now_ms * 1000,
            )
        assert guard.refused == []
    bars = store.read(ETH_1M.key())
    last_closed = now_ms // 60_000 * 60_000 - 60_000  # 12:33; the 12:34 bar is still forming
    assert bars.item(-1, "open_us") == last_closed * 1000
    assert bars.height == (last_closed - D0_MS) // 60_000 + 1
    assert bars["open_us"].diff().drop_nulls().unique().to_list() == [US_PER_MINUTE]
    assert [a.name for a in report.missing] == ["ETHUSDT-1m-2024-08-09.zip"]
    assert any("topped up" in n and "2024-08-09 00:00" in n for n in report.notes)


def test_agg_trades_with_spot_header_names_and_microseconds(server: ArchiveServer, tmp_path: Path) -> None:
    spec = DataSpec("ETHUSDT", Market.SPOT, FileKind.AGG_TRADES)
    day = dt.date(2025, 2, 3)
    t0 = day_us(day)
    lines = ["agg_trade_id,price,qty,first_trade_id,last_trade_id,time,is_buyer_maker,is_best_match"]
    lines += [
        f"{100 + i},{3000 + i}.5,0.{i + 1},{10 * i},{10 * i + 3},{t0 + i * 1_500_000},{i % 2 == 0},True"
        for i in range(5)
    ]
    server.add_csv(Archive(spec, day, monthly=False).url_path, "\n".join(lines) + "\n")
    store = Store(tmp_path / "store")
    _job(server, store, tmp_path, [spec], day, day + dt.timedelta(days=1))

    trades = store.read(spec.key())
    assert trades["ts_us"].to_list() == [t0 + i * 1_500_000 for i in range(5)]
    assert trades["side"].to_list() == [-1, 1, -1, 1, -1] and trades["is_agg"].all()
    assert trades["qty"].to_list() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (DataSpec("ETHUSDT", Market.SPOT, FileKind.TRADES), "raw trade ids"),
        (DataSpec("ETHUSDT", Market.UM, FileKind.KLINES, Timeframe.M1), "spot markets only"),
    ],
)
def test_what_ccxt_cannot_top_up_is_reported(server: ArchiveServer, tmp_path: Path, spec: DataSpec, why: str) -> None:
    now_us = day_us(D0) + 5 * 3_600_000_000
    unused_exchange = object()  # never called: these datasets cannot be topped up through ccxt
    report = _job(server, Store(tmp_path / "s"), tmp_path, [spec], D0 - dt.timedelta(days=1), D0, now_us=lambda: now_us)
    assert report.missing and not report.summary.appended
    assert any("none of the 1 archive(s) asked for exists" in n for n in report.notes)
    report = _job(
        server, Store(tmp_path / "s"), tmp_path, [spec], D0 - dt.timedelta(days=1), D0 + dt.timedelta(days=1),
        exchange=unused_exchange, now_us=lambda: now_us,
    )  # fmt: skip
    assert any(why in n and "2024-08-07 00:00 → 2024-08-08 05:00" in n for n in report.notes), report.notes
