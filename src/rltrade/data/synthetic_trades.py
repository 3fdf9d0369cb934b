"""Trade flow of the synthetic market: bursty arrivals, sides, heavy-tailed sizes, bid/ask prices.

Tick period (individual trades):

* **Arrivals** are taker *orders* from a Hawkes process with an exponential kernel, simulated exactly by
  its cluster (branching) representation (Hawkes & Oakes 1974): immigrant orders arrive as a Poisson
  process whose rate follows the second's activity (regime, volatility, time of day); each order
  triggers Poisson(``hawkes_branching``) further orders after Exp(``hawkes_delay_s``) delays, generation
  by generation (each generation one vectorised step). Each order then fills Geometric(``fill_p``)
  trades at the same microsecond, as one aggressive order sweeping several resting orders does.
* **Sides**: an immigrant buys with probability ``0.5 + flow_bias·tanh(u_s)`` (u_s = the second's
  standardised mid shock, so order flow leans with the move); a triggered order copies its parent's
  side with probability ``side_follow`` (order splitting), else draws like an immigrant.
* **Prices**: the quote of the trade's second, ``ask = ceil(mid·(1+h))``, ``bid = floor(mid·(1−h))``
  on the 0.01 tick, h = half the spread; buys trade at the ask, sells at the bid.
* **Sizes**: lognormal notional (median ≈ $30, log-sd 2.3, heavy right tail) over the mid, on the lot.

Old history (1-minute bars only): the same flow summarised per minute: the trade count is a rounded Gamma
with the mean rate and the index of dispersion of the tick-period process (Hawkes orders × geometric
fills), volume a lognormal (Fenton–Wilkinson) approximation of the sum of the lognormal fills, and the
taker-buy share leans with the minute's move.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from rltrade.data.schema import TRADE_SCHEMA
from rltrade.data.synthetic_paths import MarketShape
from rltrade.types import US_PER_SECOND

_MAX_GENERATIONS = 1000
"""Cap on Hawkes generations; with branching < 1 a chain this long has probability ≈ 0."""


def quotes(mid_S: np.ndarray, spread_bps: float, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) around ``mid``, rounded outward to the tick (so the spread is at least one tick)."""
    half = spread_bps / 2.0 * 1e-4
    scale = 10.0**decimals
    return np.floor(mid_S * (1.0 - half) * scale) / scale, np.ceil(mid_S * (1.0 + half) * scale) / scale


def simulate_trades(
    rng: np.random.Generator,
    *,
    tick_start_us: int,
    rate_S: np.ndarray,
    shock_S: np.ndarray,
    mid_S: np.ndarray,
    bid_S: np.ndarray,
    ask_S: np.ndarray,
    qty_decimals: int,
    shape: MarketShape,
) -> pl.DataFrame:
    """Trades (TRADE_SCHEMA, sorted by time, trade ids 1, 2, …) for the seconds starting at ``tick_start_us``.

    ``rate_S`` is the expected number of trades in each second (before Hawkes clustering reshapes it).
    Orders triggered past the last second are dropped.
    """
    n_sec = len(rate_S)
    end_us = tick_start_us + n_sec * US_PER_SECOND
    n = shape.hawkes_branching
    p_buy_S = 0.5 + shape.flow_bias * np.tanh(shock_S)
    # Trades = orders × mean fills (1/p); immigrants = orders × (1 − n).
    immigrants_S = rng.poisson(rate_S * shape.fill_p * (1.0 - n))
    t_N = np.repeat(tick_start_us + np.arange(n_sec, dtype=np.int64) * US_PER_SECOND, immigrants_S)
    t_N = t_N + rng.integers(0, US_PER_SECOND, size=len(t_N))
    side_N = _draw_sides(rng, p_buy_S, (t_N - tick_start_us) // US_PER_SECOND)
    times, sides = [t_N], [side_N]
    delay_us = shape.hawkes_delay_s * US_PER_SECOND
    for _ in range(_MAX_GENERATIONS):
        kids_N = rng.poisson(n, size=len(t_N))
        if not kids_N.any():
            break
        t_N = np.repeat(t_N, kids_N) + 1 + np.floor(rng.exponential(delay_us, size=int(kids_N.sum()))).astype(np.int64)
        parent_side_N = np.repeat(side_N, kids_N)
        inside = t_N < end_us
        t_N, parent_side_N = t_N[inside], parent_side_N[inside]
        own_N = _draw_sides(rng, p_buy_S, (t_N - tick_start_us) // US_PER_SECOND)
        side_N = np.where(rng.random(len(t_N)) < shape.side_follow, parent_side_N, own_N).astype(np.int8)
        times.append(t_N)
        sides.append(side_N)
    order_t_N = np.concatenate(times)
    order_side_N = np.concatenate(sides)
    fills_N = rng.geometric(shape.fill_p, size=len(order_t_N))
    ts_N = np.repeat(order_t_N, fills_N)
    side_N = np.repeat(order_side_N, fills_N)
    order = np.argsort(ts_N, kind="stable")
    ts_N, side_N = ts_N[order], side_N[order]
    sec_N = (ts_N - tick_start_us) // US_PER_SECOND
    price_N = np.where(side_N > 0, ask_S[sec_N], bid_S[sec_N])
    notional_N = shape.notional_median_usd * np.exp(shape.notional_log_sd * rng.standard_normal(len(ts_N)))
    lot = 10.0**-qty_decimals
    qty_N = np.maximum(np.round(notional_N / mid_S[sec_N], qty_decimals), lot)
    return pl.DataFrame(
        {
            "ts_us": ts_N,
            "trade_id": np.arange(1, len(ts_N) + 1, dtype=np.int64),
            "price": price_N,
            "qty": qty_N,
            "side": side_N,
            "is_agg": np.zeros(len(ts_N), dtype=bool),
        },
        schema=TRADE_SCHEMA,
    )


def _draw_sides(rng: np.random.Generator, p_buy_S: np.ndarray, sec_N: np.ndarray) -> np.ndarray:
    return np.where(rng.random(len(sec_N)) < p_buy_S[sec_N], 1, -1).astype(np.int8)


def minute_activity(
    rng: np.random.Generator,
    *,
    rate_T: np.ndarray,
    shock_T: np.ndarray,
    typical_price_T: np.ndarray,
    qty_decimals: int,
    shape: MarketShape,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trade_count, volume, taker_buy_volume) per old minute; ``rate_T`` = expected trades per minute.

    Every minute has at least one trade, so old bars are never filled. Each kind of draw has its own
    child stream, so minute t's values do not depend on how many minutes follow it.
    """
    count_rng, size_rng, side_rng = rng.spawn(3)
    p = shape.fill_p
    # Index of dispersion of trade counts over windows ≫ the Hawkes kernel: orders have 1/(1−n)²,
    # each order fills Geometric(p) trades (mean 1/p, variance (1−p)/p²).
    dispersion = (1.0 / (1.0 - shape.hawkes_branching) ** 2) / p + (1.0 - p) / p
    # A Gamma with that mean and variance, rounded: one draw per minute instead of a Poisson mixture.
    count_T = np.maximum(np.rint(count_rng.gamma(rate_T / dispersion, dispersion)), 1.0)
    orders_T = np.maximum(count_T * p, 1.0)
    s2 = shape.notional_log_sd**2
    mu = math.log(shape.notional_median_usd)
    # Fenton–Wilkinson: the sum of N iid LN(μ, s²) ≈ LN(μ_N, s_N²) with matched mean and variance.
    s2_T = np.log1p(math.expm1(s2) / count_T)
    mu_T = np.log(count_T) + mu + s2 / 2.0 - s2_T / 2.0
    notional_T = np.exp(mu_T + np.sqrt(s2_T) * size_rng.standard_normal(len(count_T)))
    lot = 10.0**-qty_decimals
    volume_T = np.maximum(np.round(notional_T / typical_price_T, qty_decimals), count_T * lot)
    # Per second P(buy) leans by flow_bias·tanh(u_s); over a minute u_s ≈ shock/√60 on average.
    buy_share_T = 0.5 + shape.flow_bias * np.tanh(shock_T / math.sqrt(60.0))
    buy_share_T = np.clip(buy_share_T + 0.5 / np.sqrt(orders_T) * side_rng.standard_normal(len(count_T)), 0.0, 1.0)
    taker_T = np.round(buy_share_T * volume_T, qty_decimals)
    return count_T.astype(np.int64), volume_T, np.minimum(taker_T, volume_T)
