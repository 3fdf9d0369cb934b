"""The embedded synthetic ETH/BTC market: years of bars, recent trades, known regimes and signal.

``generate_market(cfg)`` returns a ``SyntheticMarket``. With ``end = 2026-01-01``, ``history_days = 400``,
``tick_days = 1``::

    2024-11-27 00:00 ──────────── 1m bars from the vectorised minute model ─────────── 2025-12-31 00:00 ── end
                                                       tick period: trades → 1s → 1m ──┘

* History (``start_us`` … ``tick_start_us``): 1m bars straight from the minute model of
  ``synthetic_paths`` (OHLC from a Brownian bridge per minute) and ``synthetic_trades.minute_activity``.
* Tick period (the last ``tick_days``, rounded up to whole minutes): trades from ``synthetic_trades``;
  the 1s bars are exactly ``trades_to_bars(trades, 1s)`` and their minutes ``resample_bars(1s → 1m)``.
* 1h = ``resample_bars(1m → 1h)`` and 1d = ``resample_bars(1h → 1d)`` over the whole history.
* The history starts at 00:00 UTC ``history_days`` before the end's day, so the first daily bar is whole.
  ``end`` may be a time of day (``2026-01-01T05:00``): the day still forming at the end then has 1m and 1h
  bars but no daily bar (as on an exchange), and the daily close at midnight falls inside the tick period's
  last hours, where a training run's test range lies, so the 1d blocks move there.

So every timeframe is consistent by construction. The first symbol plays ETH (the traded follower), the
second BTC (the leader); the true regime of every minute (and second) is recorded, and with
``cfg.signal`` set, ETH's mid follows BTC's with a lag, recorded exactly in ``SignalTruth``.
Same config → bit-identical frames (on the same platform and library versions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from rltrade.config import PlantedSignal, SyntheticConfig, parse_synthetic_end
from rltrade.data.resample import resample_bars, trades_to_bars
from rltrade.data.schema import BAR_SCHEMA, empty_trades
from rltrade.data.synthetic_paths import (
    DEFAULT_SHAPE,
    STREAM_ACTIVITY,
    STREAM_STATE,
    STREAM_TRADES,
    MarketPaths,
    MarketShape,
    MinuteState,
    SymbolPath,
    draw_regime_path,
    rng_stream,
    simulate_paths,
)
from rltrade.data.synthetic_trades import minute_activity, quotes, simulate_trades
from rltrade.types import US_PER_DAY, US_PER_MINUTE, US_PER_SECOND, Timeframe

LEADER_RATE_MULT = 1.4
"""BTC trades this many times as often as ETH."""


@dataclass(frozen=True, eq=False)
class SymbolMarket:
    """One symbol's data."""

    symbol: str
    trades: pl.DataFrame
    """TRADE_SCHEMA, tick period only, sorted by ts_us, trade ids 1, 2, … (empty without a tick period)."""
    bars: Mapping[Timeframe, pl.DataFrame]
    """BAR_SCHEMA per timeframe: 1s for the tick period only (absent without one), 1m/1h/1d for all history."""
    quotes_1s: pl.DataFrame
    """The quote during each tick-period second: open_us, bid, ask, mid (the mid steps at each second's start)."""


@dataclass(frozen=True, eq=False)
class SignalTruth:
    """The planted lead-lag, exactly: what an optimal policy may know about ETH's next moves.

    ETH's mid log return over second ``s`` (from the mid quoted in second s−1 to the one in second s) is
    ``drift + expected + noise`` with ``expected[s] = loading · σ_eth[s] · u_btc[s − lag_s]``, where
    ``u_btc[s'] = (r_btc[s'] − drift_btc[s']) / σ_btc[s']`` is BTC's standardised mid shock, i.e.
    ``expected[s] ≈ loading · vol_ratio · r_btc[s − lag_s]``, and the noise is independent of everything
    before second s. BTC's move of second s−lag is seen in its first trade that second and in its 1s bar
    closing at ``s − lag + 1``; ETH's mid makes the predicted move at the start of second s, so a policy
    acting on closed 1s bars has ``lag_s − 1`` seconds to act. The series is an oracle's: it uses BTC's
    mid, which trades reveal only through the bid/ask bounce and not in seconds without a BTC trade, so a
    policy built on it bounds what a learner can reach from trades and bars. ``frame`` columns: open_us (second s),
    expected_log_ret, drift_log_ret (regime drift and range reversion, not knowable from BTC),
    eth_log_ret, btc_log_ret (mid log returns of second s; the first from the tick period's opening mid).
    """

    follower: str
    leader: str
    lag_s: int
    strength: float
    """Share of ETH's per-second shock variance explained by BTC's lagged shock (= loading²)."""
    loading: float
    contemporaneous_corr: float
    """Correlation of ETH's own shock part with BTC's same-second shock (keeps minute correlation ≈ cfg)."""
    vol_ratio: float
    """σ_eth / σ_btc within a minute."""
    frame: pl.DataFrame


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """What ``generate_market`` made: per-symbol data, the true regimes and the planted signal."""

    exchange: str
    start_us: int
    tick_start_us: int
    """Start of the tick period (== end_us when ``tick_days`` is 0)."""
    end_us: int
    symbols: Mapping[str, SymbolMarket]
    regimes: Mapping[Timeframe, pl.DataFrame]
    """open_us → regime (Int8, ``Regime`` values): 1m for all history, 1s for the tick period."""
    signal_truth: SignalTruth | None
    """None without a planted signal (``cfg.signal is None``) or without a tick period."""

    def __getitem__(self, symbol: str) -> SymbolMarket:
        """Return the market of ``symbol``; KeyError naming the symbols held if absent."""
        try:
            return self.symbols[symbol]
        except KeyError:
            raise KeyError(f"no symbol {symbol!r} in the synthetic market; it has {list(self.symbols)}") from None


def parse_end(end: str) -> int:
    """``SyntheticConfig.end`` (a UTC date ``YYYY-MM-DD``, or a time on a whole hour) as µs since the epoch."""
    return parse_synthetic_end(end)


@dataclass(frozen=True)
class _Grid:
    """The time grid: history minutes ``[start_us, end_us)``, the last ``n_tick`` of them with seconds."""

    start_us: int
    tick_start_us: int
    end_us: int
    n_old: int
    """Minutes before the tick period."""
    open_us_T: np.ndarray
    second_us_S: np.ndarray


def _grid(cfg: SyntheticConfig) -> _Grid:
    end_us = parse_end(cfg.end)
    # The history starts at 00:00 UTC, so the first daily bar is a whole day even when the end is not midnight.
    start_us = (end_us - cfg.history_days * US_PER_DAY) // US_PER_DAY * US_PER_DAY
    n_min = (end_us - start_us) // US_PER_MINUTE
    n_tick = min(n_min, math.ceil(cfg.tick_days * 1440 - 1e-9))  # whole minutes, rounded up
    tick_start_us = end_us - n_tick * US_PER_MINUTE
    return _Grid(
        start_us=start_us,
        tick_start_us=tick_start_us,
        end_us=end_us,
        n_old=n_min - n_tick,
        open_us_T=start_us + np.arange(n_min, dtype=np.int64) * US_PER_MINUTE,
        second_us_S=tick_start_us + np.arange(60 * n_tick, dtype=np.int64) * US_PER_SECOND,
    )


def generate_market(
    cfg: SyntheticConfig,
    *,
    exchange: str = "binance",
    symbols: tuple[str, str] = ("ETHUSDT", "BTCUSDT"),
    shape: MarketShape = DEFAULT_SHAPE,
) -> SyntheticMarket:
    """Generate the synthetic market described by ``cfg`` (see the module docstring).

    ``symbols`` names the follower (ETH's role: ``eth_start_price``, ``trades_per_second``) and the
    leader (BTC's role); ``shape`` holds the model's fixed parameters (``MarketShape``).
    """
    if len(symbols) != 2 or symbols[0] == symbols[1]:
        raise ValueError(f"symbols must be two distinct names (follower, leader), got {symbols!r}")
    grid = _grid(cfg)
    lag_s, strength = (cfg.signal.lag_s, cfg.signal.strength) if cfg.signal is not None else (1, 0.0)
    paths = simulate_paths(
        cfg.seed,
        grid.open_us_T,
        len(grid.second_us_S) // 60,
        start_prices=(cfg.eth_start_price, cfg.btc_start_price),
        annual_vol=cfg.annual_vol,
        correlation=cfg.correlation,
        mean_regime_hours=cfg.mean_regime_hours,
        regime_hours=cfg.regime_hours,
        lag_s=lag_s,
        strength=strength,
        shape=shape,
    )
    markets = {
        symbol: _symbol_market(cfg, shape, grid, paths.state, path, index, symbol)
        for index, (symbol, path) in enumerate(((symbols[0], paths.eth), (symbols[1], paths.btc)))
    }
    regime_T = paths.state.regime_T
    regimes: dict[Timeframe, pl.DataFrame] = {}
    truth = None
    if len(grid.second_us_S):
        regime_S = np.repeat(regime_T[grid.n_old :], 60)
        regimes[Timeframe.S1] = pl.DataFrame({"open_us": grid.second_us_S, "regime": regime_S})
        if cfg.signal is not None:
            truth = _signal_truth(paths, symbols, grid, cfg.signal, shape)
    regimes[Timeframe.M1] = pl.DataFrame({"open_us": grid.open_us_T, "regime": regime_T})
    return SyntheticMarket(
        exchange=exchange,
        start_us=grid.start_us,
        tick_start_us=grid.tick_start_us,
        end_us=grid.end_us,
        symbols=MappingProxyType(markets),
        regimes=MappingProxyType(regimes),
        signal_truth=truth,
    )


def true_regimes(cfg: SyntheticConfig) -> pl.DataFrame:
    """Return the true regime of every history minute (``open_us``, ``regime``), as ``generate_market(cfg)`` draws it.

    Cheap (no prices, no trades): the regimes are the first draws of the market's state stream.
    """
    grid = _grid(cfg)
    regime_T = draw_regime_path(
        rng_stream(cfg.seed, STREAM_STATE), len(grid.open_us_T), cfg.mean_regime_hours, cfg.regime_hours
    )
    return pl.DataFrame({"open_us": grid.open_us_T, "regime": regime_T})


def _symbol_market(
    cfg: SyntheticConfig,
    shape: MarketShape,
    grid: _Grid,
    state: MinuteState,
    path: SymbolPath,
    index: int,
    symbol: str,
) -> SymbolMarket:
    """One symbol's trades, quotes and bars; ``index`` 0 = follower (ETH's role), 1 = leader."""
    trades_per_minute_T = 60.0 * cfg.trades_per_second * (LEADER_RATE_MULT if index else 1.0) * state.activity_T
    n_old = grid.n_old
    old_1m = _old_minute_bars(
        shape,
        path,
        grid.open_us_T[:n_old],
        trades_per_minute_T[:n_old],
        rng_stream(cfg.seed, STREAM_ACTIVITY + index),
        shape.qty_decimals[index],
    )
    mid_S = path.start_price * np.exp(path.log_mid_S)
    bid_S, ask_S = quotes(mid_S, cfg.spread_bps, shape.price_decimals)
    quotes_1s = pl.DataFrame({"open_us": grid.second_us_S, "bid": bid_S, "ask": ask_S, "mid": mid_S})
    bars: dict[Timeframe, pl.DataFrame] = {}
    if len(grid.second_us_S):
        trades = simulate_trades(
            rng_stream(cfg.seed, STREAM_TRADES + index),
            tick_start_us=grid.tick_start_us,
            rate_S=np.repeat(trades_per_minute_T[n_old:] / 60.0, 60),
            shock_S=path.shock_S,
            mid_S=mid_S,
            bid_S=bid_S,
            ask_S=ask_S,
            qty_decimals=shape.qty_decimals[index],
            shape=shape,
        )
        # Leading seconds without a trade carry the mid at the tick period's start.
        prev_close = float(path.start_price * np.exp(path.open_T[n_old]))
        bars[Timeframe.S1] = trades_to_bars(
            trades, Timeframe.S1, start_us=grid.tick_start_us, end_us=grid.end_us, prev_close=prev_close
        )
        minute = pl.concat([old_1m, resample_bars(bars[Timeframe.S1], Timeframe.S1, Timeframe.M1)])
    else:
        trades = empty_trades()
        minute = old_1m
    bars[Timeframe.M1] = minute
    bars[Timeframe.H1] = resample_bars(minute, Timeframe.M1, Timeframe.H1)
    # A day still forming at a non-midnight end has no daily bar yet (module docstring).
    whole_days = bars[Timeframe.H1].filter(pl.col("open_us") < grid.end_us // US_PER_DAY * US_PER_DAY)
    bars[Timeframe.D1] = resample_bars(whole_days, Timeframe.H1, Timeframe.D1)
    return SymbolMarket(symbol=symbol, trades=trades, bars=MappingProxyType(bars), quotes_1s=quotes_1s)


def _old_minute_bars(
    shape: MarketShape,
    path: SymbolPath,
    open_us_T: np.ndarray,
    trades_per_minute_T: np.ndarray,
    rng: np.random.Generator,
    qty_decimals: int,
) -> pl.DataFrame:
    """1m bars of the pre-tick history from the minute model (never filled: every minute has a trade)."""
    n_old = len(open_us_T)
    p0 = path.start_price
    open_T = p0 * np.exp(path.open_T[:n_old])
    close_T = p0 * np.exp(path.close_T[:n_old])
    # The bridge extremes bound open and close in log space; re-bound after exponentiating.
    high_T = np.maximum(p0 * np.exp(path.high_T), np.maximum(open_T, close_T))
    low_T = np.minimum(p0 * np.exp(path.low_T), np.minimum(open_T, close_T))
    typical_T = (open_T + high_T + low_T + close_T) / 4.0
    count_T, volume_T, taker_T = minute_activity(
        rng,
        rate_T=trades_per_minute_T,
        shock_T=path.shock_T[:n_old],
        typical_price_T=typical_T,
        qty_decimals=qty_decimals,
        shape=shape,
    )
    return pl.DataFrame(
        {
            "open_us": open_us_T,
            "open": open_T,
            "high": high_T,
            "low": low_T,
            "close": close_T,
            "volume": volume_T,
            "quote_volume": volume_T * typical_T,
            "trade_count": count_T,
            "taker_buy_volume": taker_T,
            "is_filled": np.zeros(n_old, dtype=bool),
        },
        schema=BAR_SCHEMA,
    )


def _signal_truth(
    paths: MarketPaths, symbols: tuple[str, str], grid: _Grid, signal: PlantedSignal, shape: MarketShape
) -> SignalTruth:
    eth, btc, seconds = paths.eth, paths.btc, paths.seconds
    return SignalTruth(
        follower=symbols[0],
        leader=symbols[1],
        lag_s=signal.lag_s,
        strength=signal.strength,
        loading=seconds.loading,
        contemporaneous_corr=seconds.contemporaneous_corr,
        vol_ratio=1.0 / shape.leader_vol_ratio,
        frame=pl.DataFrame(
            {
                "open_us": grid.second_us_S,
                "expected_log_ret": eth.sigma_S * seconds.lead_S,
                "drift_log_ret": eth.drift_S,
                "eth_log_ret": np.diff(eth.log_mid_S, prepend=eth.open_T[grid.n_old]),
                "btc_log_ret": np.diff(btc.log_mid_S, prepend=btc.open_T[grid.n_old]),
            }
        ),
    )
