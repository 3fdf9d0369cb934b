"""Everything the HTML report shows, collected from a run folder into plain dataclasses.

Read from the run folder (``rltrade.training.bundle``)::

    manifest.json, config.yaml       run summary, splits, fitted ranges
    eval/metrics.json                required: the evaluation period and the metrics of every policy
    eval/agent_steps.parquet         required: the agent's equity and position per decision step
    eval/agent_trades.parquet        required: the agent's trades
    eval/regimes.json                optional: results per market regime (a table, see rltrade.report.tables)
    scorecard.json                   optional: the five success metrics (rltrade.training.scorecard)
    eval/ablation.json               optional: the ablation table (same shape)
    cnn/metrics.json                 optional: CNN out-of-sample accuracy (same shape)
    tensorboard/                     optional: training curves

Recomputed from the run's config (the market is regenerated or read from the store, as in training,
and its features built with the run's fitted statistics; no CNN is loaded or fitted, nothing the report
draws depends on one): the candles, pivots and regimes of the evaluation period
(:mod:`rltrade.report.market`) and buy-and-hold on the same fills and costs as the agent
(:func:`rltrade.training.backtest.backtest_actions`). When the
market is unavailable, or differs from the data fingerprints the run recorded, the report says so and
leaves out what needs it rather than draw the wrong market.

Point budgets (:class:`Limits`) bound what every chart draws; lines are decimated keeping extremes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange
from rltrade.env.prices import PeriodError, build_period, load_funding
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features
from rltrade.report.curves import EquityView, TradeMarks, TrainingCurves, equity_view, trade_marks, training_curves
from rltrade.report.market import PriceView, ReportDataError, price_view
from rltrade.report.tables import Table, TableFormatError, cnn_table, load_table, metrics_table, scorecard_table
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions
from rltrade.training.bundle import RunBundle, data_fingerprints, open_bundle

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what is being done)``."""

COLLECT_STAGES: Final = 5
BACKTEST_HINT: Final = "rltrade backtest --run {run}"
REGIMES_HINT: Final = "rltrade backtest --run {run}"
ABLATION_HINT: Final = "rltrade ablation --config {run}/config.yaml --out {run}"
CNN_HINT: Final = "rltrade train"
SCORECARD_HINT: Final = "rltrade scorecard {run}"
_QUOTES: Final = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH")


@dataclass(frozen=True)
class Limits:
    """How much each chart may draw: points per chart (sum over its traces), candles, trade markers."""

    max_points: int = 5_000
    max_candles: int = 600
    max_trades: int = 1_000

    def __post_init__(self) -> None:
        """Check that every limit is positive and that the price chart's points fit ``max_points``."""
        if min(self.max_points, self.max_candles, self.max_trades) < 1:
            raise ValueError(f"Limits must be positive, got {self}")
        # The price chart draws the candles, the two-row regime strip (2 cells a candle), the pivots (at
        # most 2 a candle over all levels: a level-0 peak needs n >= 1 lower neighbours on each side, so
        # at most one candle in two is a high, one in two a low, and each level keeps at most half of
        # the one below) and an entry and an exit marker per trade.
        need = 5 * self.max_candles + 2 * self.max_trades
        if need > self.max_points:
            raise ValueError(
                f"Limits: 5 × max_candles + 2 × max_trades = {need} exceeds max_points = {self.max_points}; "
                "lower the candle or trade cap"
            )


@dataclass(frozen=True)
class TableSection:
    """An optional table: the table, or the sentence shown in its place."""

    table: Table | None
    message: str = ""


@dataclass(frozen=True, eq=False)
class ReportData:
    """What :mod:`rltrade.report.html` renders."""

    run_dir: Path
    title: str
    summary: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    period: TimeRange
    quote: str
    metrics: Table
    equity: EquityView
    trades: TradeMarks
    price: PriceView | None
    training: TrainingCurves | None
    regimes: TableSection
    ablation: TableSection
    cnn: TableSection
    limits: Limits
    scorecard: TableSection = TableSection(None, "Not computed.")


def utc(us: int) -> str:
    """``us`` as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(r: TimeRange) -> str:
    """Format a time range as ``start → end (length)``, the length in hours below 48 h, else in days."""
    hours = (r.end_us - r.start_us) / 3.6e9
    length = f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
    return f"{utc(r.start_us)} → {utc(r.end_us)} ({length})"


def quote_of(symbol: str) -> str:
    """Guess the quote currency of an exchange symbol like ``ETHUSDT`` (``"quote"`` when not recognised)."""
    return next((q for q in _QUOTES if symbol.upper().endswith(q) and len(symbol) > len(q)), "quote")


def _require(path: Path, run: Path) -> Path:
    if not path.exists():
        raise ReportDataError(
            f"{path} is missing: evaluate the run first with `{BACKTEST_HINT.format(run=run)}`, then rerun the report"
        )
    return path


def _optional_table(path: Path, title: str, hint: str, *, absent: str = "Not computed — run `{hint}`.") -> TableSection:
    if not path.exists():
        return TableSection(None, absent.format(hint=hint))
    try:
        return TableSection(load_table(path, title=title))
    except TableFormatError as exc:
        return TableSection(None, f"Could not read {path.name}: {exc}")


def _in_run(path: Path) -> str:
    """``path`` as the report shows it: relative to the run folder (``cnn/metrics.json``), never absolute."""
    return f"{path.parent.name}/{path.name}"


def shown_run(run_dir: Path) -> str:
    """Name the run folder in the report's hints: as given when relative, else ``RUN_DIR``."""
    return str(run_dir) if not run_dir.is_absolute() else "RUN_DIR"


def _cnn_section(path: Path) -> TableSection:
    if not path.exists():
        return TableSection(
            None,
            "No CNNs were trained in this run (the run folder has no cnn/metrics.json): the state's CNN blocks "
            f"were off. `{CNN_HINT}` trains per-timeframe CNNs when the layout has CNN blocks.",
        )
    try:
        return TableSection(cnn_table(json.loads(path.read_text()), where=_in_run(path)))
    except (TableFormatError, json.JSONDecodeError) as exc:
        return TableSection(None, f"Could not read {path.name}: {exc}")


def _scorecard_section(path: Path, run: Path) -> TableSection:
    if not path.exists():
        return TableSection(None, f"Not computed — run `{SCORECARD_HINT.format(run=run)}`.")
    try:
        return TableSection(scorecard_table(json.loads(path.read_text()), where=_in_run(path)))
    except (TableFormatError, json.JSONDecodeError) as exc:
        return TableSection(None, f"Could not read {path.name}: {exc}")


def _summary(bundle: RunBundle, period: TimeRange, n_steps: int) -> tuple[tuple[str, str], ...]:
    m, cfg = bundle.manifest, bundle.config
    rows = [
        ("run folder", bundle.root.resolve().name),  # a name, not a local path: the report is shared
        ("created", str(m.get("created", "?"))),
        ("git commit", str(m.get("git_commit", "unknown"))[:12]),
        ("rltrade", str(m.get("packages", {}).get("rltrade", "?"))),
        ("seed", str(m.get("seed", cfg.seed))),
        ("market", f"{cfg.data.symbol} (reference {cfg.data.reference}) on {cfg.data.exchange}, {cfg.data.source}"),
        ("state layout", f"{m['layout']['name']} ({m['layout']['size']:,} features)"),
        (
            "costs",
            f"taker fee {cfg.env.taker_fee:.4%}, half spread {cfg.env.half_spread_bps:g} bp, "
            f"latency {cfg.env.latency_ms:g} ms, short borrow {cfg.env.borrow_annual_rate:.1%}/year",
        ),
    ]
    training = m.get("training")
    if isinstance(training, dict):
        rows.append(("training", f"{training.get('steps', 0):,} steps, {training.get('updates', 0):,} updates"))
    best = bundle.root / "best_validation.json"
    if best.exists():
        b = json.loads(best.read_text())
        rows.append(("best validation", f"return {b['total_return']:+.3%} at step {b['step']:,} (best.pt)"))
    for name in ("train", "validation", "test"):
        if name in m.get("splits", {}):
            rows.append((f"{name} range", span(bundle.split(name))))
    rows.append(("evaluated on", f"{span(period)}, {n_steps:,} decisions of {cfg.env.step.value}"))
    return tuple(rows)


def _fingerprint_warning(bundle: RunBundle, frames: MarketFrames) -> str | None:
    recorded = bundle.manifest.get("data", {})
    now = data_fingerprints(frames)
    differ = sorted(
        k for k in recorded.keys() | now.keys() if recorded.get(k, {}).get("sha256") != now.get(k, {}).get("sha256")
    )
    if not differ:
        return None
    return (
        f"The market data read now differs from what the run was trained on ({', '.join(differ)}); "
        "the price chart and buy-and-hold are left out. Restore the run's data or retrain."
    )


def _market_panels(
    bundle: RunBundle,
    period: TimeRange,
    steps: pl.DataFrame,
    initial: float,
    limits: Limits,
    warnings: list[str],
    loaded: Callable[[], None],
) -> tuple[PriceView | None, npt.NDArray[np.float64] | None]:
    """Build the price panel and buy-and-hold's equity, or None with a warning appended saying why not."""
    cfg = bundle.config
    try:
        frames = load_market(cfg.data)
    except FileNotFoundError as exc:
        warnings.append(f"Market data unavailable ({exc}); the price chart and buy-and-hold are left out.")
        return None, None
    if (warning := _fingerprint_warning(bundle, frames)) is not None:
        warnings.append(warning)
        return None, None
    loaded()
    features = build_market_features(frames, build_layout(cfg.features.layout), cfg.features, bundle.feature_stats)
    try:
        price = price_view(
            frames,
            features,
            period,
            max_candles=limits.max_candles,
            pivot_n=cfg.features.pivot_n,
            pivot_levels=cfg.features.pivot_levels,
        )
        per = build_period(features, period, cfg.env, cfg.reward, funding=load_funding(cfg.env))
    except (ReportDataError, PeriodError) as exc:
        warnings.append(f"The evaluation period cannot be rebuilt from the market data ({exc}); charts need it.")
        return None, None
    if not np.array_equal(per.time_us_T, steps["time_us"].to_numpy()):
        warnings.append(
            "eval/agent_steps.parquet does not match the evaluation period's decision clock; "
            f"buy-and-hold is left out (rerun `{BACKTEST_HINT.format(run=shown_run(bundle.root))}`)."
        )
        return price, None
    return price, backtest_actions(per, buy_and_hold_actions(per), cfg.env, initial_equity=initial).equity_T


def collect(run_dir: Path, *, limits: Limits = Limits(), progress: Progress | None = None) -> ReportData:
    """Read and recompute everything the report shows (module docstring)."""

    def tick(done: int, what: str) -> None:
        if progress is not None:
            progress(done, COLLECT_STAGES, what)

    tick(0, "reading the run folder")
    bundle = open_bundle(run_dir)
    cfg = bundle.config
    quote = quote_of(cfg.data.symbol)
    metrics_path = _require(run_dir / "eval" / "metrics.json", run_dir)
    raw_metrics: dict[str, Any] = json.loads(metrics_path.read_text())
    period = TimeRange(**raw_metrics["period"])
    steps = pl.read_parquet(_require(run_dir / "eval" / "agent_steps.parquet", run_dir))
    trades = pl.read_parquet(_require(run_dir / "eval" / "agent_trades.parquet", run_dir))
    initial = float(raw_metrics["metrics"].get("agent", {}).get("initial_equity", steps["equity"][0]))
    warnings: list[str] = []

    tick(1, "rebuilding the market of the evaluation period")
    price, hold = _market_panels(bundle, period, steps, initial, limits, warnings, lambda: tick(2, "candles, pivots"))

    tick(3, "training curves")
    tb = run_dir / "tensorboard"
    training = training_curves(tb, max_points=limits.max_points) if tb.is_dir() else None

    tick(4, "tables")
    data = ReportData(
        run_dir=run_dir,
        title=f"{cfg.data.symbol} agent — run {run_dir.resolve().name}",
        summary=_summary(bundle, period, steps.height - 1),
        warnings=tuple(warnings),
        period=period,
        quote=quote,
        metrics=metrics_table(raw_metrics, quote=quote, where=_in_run(metrics_path)),
        equity=equity_view(steps, hold, max_points=limits.max_points, initial_equity=initial),
        trades=trade_marks(trades, max_trades=limits.max_trades),
        price=price,
        training=training,
        regimes=_optional_table(
            run_dir / "eval" / "regimes.json",
            "Results per market regime",
            REGIMES_HINT.format(run=shown_run(run_dir)),
        ),
        ablation=_optional_table(
            run_dir / "eval" / "ablation.json",
            "Ablation: one state block masked at a time",
            ABLATION_HINT.format(run=shown_run(run_dir)),
        ),
        cnn=_cnn_section(run_dir / "cnn" / "metrics.json"),
        limits=limits,
        scorecard=_scorecard_section(run_dir / "scorecard.json", Path(shown_run(run_dir))),
    )
    tick(5, "collected")
    return data
