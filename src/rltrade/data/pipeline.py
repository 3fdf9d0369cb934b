"""Data-layer jobs the CLI runs: synthesise into the store, import files, resample, report coverage.

Each function does one job on a :class:`~rltrade.data.store.Store` and returns a small summary that
the caller prints; none of them prints. Long jobs take an optional ``progress(done, total, what)``
callback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from rltrade.config import DataConfig
from rltrade.data.cleaning import CleaningReport, FileFormatError, Policy
from rltrade.data.importers import FileKind, import_files
from rltrade.data.importers_stream import CHUNK_BYTES, iter_trade_chunks, sniff_kind
from rltrade.data.resample import resample_bars_with_report, trades_to_bars
from rltrade.data.store import AppendResult, DatasetCoverage, DatasetKey, Store
from rltrade.data.synthetic import SyntheticMarket, generate_market
from rltrade.types import US_PER_DAY, Kind, Timeframe, ceil_to_grid

Progress = Callable[[int, int, str], None]

TRUTH_DIR = "truth"
"""Store sub-folder holding what only the synthetic market knows (true regimes, the planted signal)."""


def _noop(done: int, total: int, what: str) -> None:
    del done, total, what


@dataclass
class StoreSummary:
    """Rows appended per dataset by one job."""

    appended: dict[str, AppendResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: DatasetKey, result: AppendResult) -> None:
        """Record an append; several appends to one dataset (pages of a download) add up."""
        old = self.appended.get(str(key))
        self.appended[str(key)] = result if old is None else old + result


def synthesize_to_store(cfg: DataConfig, store: Store, *, progress: Progress = _noop) -> StoreSummary:
    """Generate the synthetic market of ``cfg.synthetic`` and append every dataset to ``store``.

    The true regimes and the planted signal are written beside the data under ``<store>/truth/``
    (they are what an oracle may know, never features).
    """
    market = generate_market(cfg.synthetic, exchange=cfg.exchange, symbols=(cfg.symbol, cfg.reference))
    summary = StoreSummary()
    jobs: list[tuple[DatasetKey, pl.DataFrame]] = []
    for symbol, data in market.symbols.items():
        if data.trades.height:
            jobs.append((DatasetKey(cfg.exchange, symbol, Kind.TRADES), data.trades))
        for tf, bars in data.bars.items():
            if tf in cfg.timeframes:
                jobs.append((DatasetKey(cfg.exchange, symbol, Kind.BARS, tf), bars))
    with store.transaction() as tx:  # every dataset or none
        for i, (key, frame) in enumerate(jobs):
            progress(i, len(jobs), f"store {key}")
            summary.add(key, tx.append(key, frame))
    progress(len(jobs), len(jobs), "truth")
    write_truth(market, store.root / TRUTH_DIR / cfg.exchange)
    summary.notes.append(
        f"synthetic market seed {cfg.synthetic.seed}: {cfg.synthetic.history_days} days of history, "
        f"{cfg.synthetic.tick_days} tick day(s), signal "
        + (
            f"BTC leads ETH by {cfg.synthetic.signal.lag_s} s (strength {cfg.synthetic.signal.strength})"
            if cfg.synthetic.signal is not None
            else "none"
        )
    )
    return summary


def write_truth(market: SyntheticMarket, folder: Path) -> None:
    """Write the true regimes and the planted signal of a synthetic market into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for tf, frame in market.regimes.items():
        frame.write_parquet(folder / f"regimes_{tf.value}.parquet")
    meta: dict[str, object] = {
        "start_us": market.start_us,
        "tick_start_us": market.tick_start_us,
        "end_us": market.end_us,
        "signal": None,
    }
    truth = market.signal_truth
    if truth is not None:
        truth.frame.write_parquet(folder / "signal.parquet")
        meta["signal"] = {
            "follower": truth.follower,
            "leader": truth.leader,
            "lag_s": truth.lag_s,
            "strength": truth.strength,
            "loading": truth.loading,
            "vol_ratio": truth.vol_ratio,
        }
    (folder / "truth.json").write_text(json.dumps(meta, indent=2))


def import_to_store(
    paths: Sequence[Path],
    store: Store,
    *,
    exchange: str,
    symbol: str | None = None,
    timeframe: Timeframe | None = None,
    strict: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    hold_rows: int = 2_000_000,
) -> tuple[StoreSummary, str]:
    """Import dump files of one symbol/kind/timeframe into ``store``; returns the summary and the cleaning report.

    All or nothing: one store transaction. Trade files are streamed in chunks of ``chunk_bytes`` (see
    ``importers_stream``), so a month of trades needs memory for a few chunks, not for the month. Chunks
    are held until ``hold_rows`` trades are, then the whole days among them go to the store, so each day
    file is written about once.
    """
    policy: Policy = "strict" if strict else "repair"
    kinds = {sniff_kind(p) for p in paths}
    if FileKind.KLINES not in kinds:
        if timeframe is not None:
            raise FileFormatError(
                f"this is a {'/'.join(sorted(k.value for k in kinds))} file, which has no timeframe, but "
                f"timeframe={timeframe.value!r} was given",
                file=", ".join(str(p) for p in paths),
                hint="Drop timeframe= for a trades file; bars are resampled from the stored trades",
            )
        return _stream_trades(
            paths,
            store,
            exchange=exchange,
            symbol=symbol,
            policy=policy,
            chunk_bytes=chunk_bytes,
            hold_rows=hold_rows,
        )
    result = import_files(list(paths), symbol=symbol, timeframe=timeframe, policy=policy)
    key = DatasetKey(exchange, result.symbol, result.data_kind, result.timeframe)
    summary = StoreSummary()
    summary.add(key, store.append(key, result.frame))
    return summary, result.report.summary()


def _stream_trades(
    paths: Sequence[Path],
    store: Store,
    *,
    exchange: str,
    symbol: str | None,
    policy: Policy,
    chunk_bytes: int,
    hold_rows: int,
) -> tuple[StoreSummary, str]:
    summary = StoreSummary()
    reports: list[CleaningReport] = []
    seen: dict[str, str] = {}  # symbol / kind of the first file → its name, to name a disagreeing one
    held: list[pl.DataFrame] = []  # chunks not yet appended: the store gets whole days, each written once
    key: DatasetKey | None = None
    with store.transaction() as tx:

        def flush(before_us: int | None) -> None:
            """Append the held rows earlier than ``before_us`` (all with None); keep the rest held."""
            if key is None or not held:
                return
            frame = pl.concat(held)
            ready = frame if before_us is None else frame.filter(pl.col("ts_us") < before_us)
            held[:] = [] if before_us is None else [frame.filter(pl.col("ts_us") >= before_us)]
            if ready.height:
                summary.add(key, tx.append(key, ready))

        for path in paths:
            parts: list[CleaningReport] = []
            for chunk in iter_trade_chunks(path, symbol=symbol, policy=policy, chunk_bytes=chunk_bytes):
                for what, value in (("symbol", chunk.symbol), ("kind", chunk.kind.value)):
                    first = seen.setdefault(what, value)
                    if first != value:
                        raise FileFormatError(
                            f"files disagree on {what}: {value} here, {first} in the files before",
                            file=str(path),
                            hint=f"Import each {what} separately",
                        )
                key = DatasetKey(exchange, chunk.symbol, Kind.TRADES)
                held.append(chunk.frame)
                if sum(f.height for f in held) >= hold_rows and chunk.frame.height:
                    flush(int(chunk.frame["ts_us"].max()) // US_PER_DAY * US_PER_DAY)  # type: ignore[arg-type]
                parts.append(chunk.report)
            reports.append(replace(CleaningReport.merged(parts), sources=parts[0].sources))
        flush(None)
        report = CleaningReport.merged(reports)
        if report.rows_out == 0:
            raise FileFormatError(
                f"no valid rows left ({report.summary()})", file=", ".join(report.sources), hint="Check the file"
            )
    return summary, report.summary()


def resample_in_store(
    store: Store,
    *,
    exchange: str,
    symbol: str,
    src: Timeframe | None,
    dst: Timeframe,
    complete_only: bool = True,
) -> tuple[StoreSummary, str]:
    """Build ``dst`` bars from stored ``src`` bars (``src=None``: from stored trades) and append them.

    From trades every ``dst`` bar between the first and the last trade is written, empty ones as
    explicit filled bars. From bars, incomplete coarse bars are dropped (``complete_only``) and counted.
    """
    dst_key = DatasetKey(exchange, symbol, Kind.BARS, dst)
    if src is None:
        return _resample_trades(store, DatasetKey(exchange, symbol, Kind.TRADES), dst_key)
    else:
        source = store.read(DatasetKey(exchange, symbol, Kind.BARS, src))
        if source.height == 0:
            raise FileNotFoundError(f"no {src.value} bars stored for {exchange}/{symbol}")
        bars, report = resample_bars_with_report(source, src, dst, complete_only=complete_only)
        note = report.summary()
    summary = StoreSummary()
    summary.add(dst_key, store.append(dst_key, bars))
    return summary, note


def _resample_trades(store: Store, src: DatasetKey, dst: DatasetKey) -> tuple[StoreSummary, str]:
    """Trades → bars one stored partition (a day) at a time, in one transaction; bounded memory.

    Equal to ``trades_to_bars`` over all the trades at once: each day's bars start where the previous
    day's ended, carrying its close into empty bars, so the empty bars between days are written too.
    """
    assert dst.timeframe is not None
    summary = StoreSummary()
    n_trades = n_bars = n_filled = 0
    end_us: int | None = None
    close: float | None = None
    with store.transaction() as tx:
        for trades in store.iter_partitions(src):
            bars = trades_to_bars(trades, dst.timeframe, start_us=end_us, prev_close=close)
            summary.add(dst, tx.append(dst, bars))
            n_trades, n_bars = n_trades + trades.height, n_bars + bars.height
            n_filled += int(bars["is_filled"].sum())
            end_us, close = int(bars["open_us"][-1]) + dst.timeframe.us, float(bars["close"][-1])
    if n_trades == 0:
        raise FileNotFoundError(f"no trades stored for {src}; import or synthesise some first")
    return summary, f"{n_trades:,} trades → {n_bars:,} {dst.timeframe.value} bars ({n_filled:,} filled)"


def data_report(store: Store) -> list[DatasetCoverage]:
    """Coverage, missing bars, holes (within and between partitions) and filled bars of every dataset."""
    return [store.coverage(key) for key in store.datasets()]


@dataclass(frozen=True)
class ResampleCheck:
    """Stored ``dst`` bars compared with bars rebuilt from stored ``src`` data over their common range."""

    symbol: str
    src: str
    dst: Timeframe
    compared: int
    mismatched: int


def verify_resampling(store: Store, *, exchange: str, symbol: str) -> list[ResampleCheck]:
    """Rebuild each stored timeframe from the next finer stored data and count disagreeing bars.

    trades → 1s, 1s → 1m, 1m → 1h, 1h → 1d, wherever both sides are stored; only complete coarse bars
    inside the finer data's range are compared (OHLC exactly, volume to 1e-9 relative).
    """
    checks: list[ResampleCheck] = []
    chain: list[tuple[Timeframe | None, Timeframe]] = [
        (None, Timeframe.S1),
        (Timeframe.S1, Timeframe.M1),
        (Timeframe.M1, Timeframe.H1),
        (Timeframe.H1, Timeframe.D1),
    ]
    for src, dst in chain:
        src_key = (
            DatasetKey(exchange, symbol, Kind.TRADES) if src is None else DatasetKey(exchange, symbol, Kind.BARS, src)
        )
        dst_key = DatasetKey(exchange, symbol, Kind.BARS, dst)
        source, stored = store.read(src_key), store.read(dst_key)
        if source.height == 0 or stored.height == 0:
            continue
        if src is None:
            # The bar holding the first trade may have started before the stored trades did: skip it.
            first = ceil_to_grid(int(source.item(0, "ts_us")), dst.us)
            rebuilt = trades_to_bars(source, dst).filter(pl.col("open_us") >= first)
        else:
            rebuilt, _ = resample_bars_with_report(source, src, dst, complete_only=True)
        joined = rebuilt.join(stored, on="open_us", how="inner", suffix="_stored")
        same = (
            (pl.col("open") == pl.col("open_stored"))
            & (pl.col("high") == pl.col("high_stored"))
            & (pl.col("low") == pl.col("low_stored"))
            & (pl.col("close") == pl.col("close_stored"))
            & ((pl.col("volume") - pl.col("volume_stored")).abs() <= 1e-9 * pl.col("volume_stored").abs() + 1e-12)
        )
        mismatched = joined.filter(~same).height
        checks.append(ResampleCheck(symbol, "trades" if src is None else src.value, dst, joined.height, mismatched))
    return checks
