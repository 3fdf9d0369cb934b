"""Synthetic market speed: the vectorised 1m path generator against a per-minute Python loop.

Baseline ``loop_minute_paths``: the same model written the straightforward way, one minute at a time
(AR(1) log-vol recursions, per-minute reversion state, cumulative log prices, bridge extremes), fed the
same random draws, so its output is also checked against the vectorised ``simulate_paths``.
Then whole ``generate_market`` runs are timed at the default size and with 3 years of history.

    .venv/bin/python -m benchmarks.bench_synthetic [--quick]
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from rltrade.config import PlantedSignal, SyntheticConfig
from rltrade.data.synthetic import generate_market
from rltrade.data.synthetic_paths import (
    DEFAULT_SHAPE,
    MINUTES_PER_YEAR,
    STREAM_BRIDGE,
    STREAM_MINUTE_SHOCKS,
    STREAM_STATE,
    MarketShape,
    draw_regimes,
    rng_stream,
    season_mean,
    simulate_paths,
    student_t,
)
from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, Timeframe

_KW = {"annual_vol": 0.65, "correlation": 0.8, "mean_regime_hours": 36.0}


def loop_minute_paths(seed: int, open_us_T: np.ndarray, shape: MarketShape = DEFAULT_SHAPE) -> np.ndarray:
    """Baseline: ETH and BTC (close, high, low) log prices per minute, one Python iteration per minute.

    Returns a [6, T] array: close, high, low for ETH then BTC (history only, no tick period).
    """
    n = len(open_us_T)
    rng = rng_stream(seed, STREAM_STATE)
    regime_T = draw_regimes(rng, n, _KW["mean_regime_hours"])
    factors = []
    for sd, tau in (
        (shape.logvol_fast_sd, shape.logvol_fast_tau_min),
        (shape.logvol_slow_sd, shape.logvol_slow_tau_min),
    ):
        phi = math.exp(-1.0 / tau)
        y0 = sd * float(rng.standard_normal())
        factors.append((phi, y0, rng.standard_normal(n) * (sd * math.sqrt(1.0 - phi * phi))))
    shock_rng = rng_stream(seed, STREAM_MINUTE_SHOCKS)
    btc_u = student_t(shock_rng, shape.shock_df, n)
    own_u = student_t(shock_rng, shape.shock_df, n)
    uniform = 1.0 - rng_stream(seed, STREAM_BRIDGE).random((4, n))

    rho = _KW["correlation"]
    var_h = shape.logvol_fast_sd**2 + shape.logvol_slow_sd**2
    mean_mult2 = sum(m * m for m in shape.vol_mult) / 4.0
    sigma_base = _KW["annual_vol"] / math.sqrt(MINUTES_PER_YEAR) / math.sqrt(mean_mult2 * season_mean(2, shape))
    h = [y0 for _, y0, _ in factors]
    phi_r = math.exp(-1.0 / shape.range_revert_tau_min)
    gain_r = shape.range_revert_fraction * (1.0 - phi_r)
    out = np.empty((6, n))
    log_price = [0.0, 0.0]  # log(price / start price)
    acc = [0.0, 0.0]  # Σ φ^(k−1) e_{t−k}: the reversion state
    for t in range(n):
        for j, (phi, _, innov) in enumerate(factors):
            h[j] = phi * h[j] + innov[t]
        hour = (int(open_us_T[t]) % US_PER_DAY + US_PER_MINUTE // 2) / US_PER_HOUR
        season = 1.0 + shape.season_amplitude * math.cos(2 * math.pi * (hour - shape.season_peak_hour) / 24.0)
        if (int(open_us_T[t]) // US_PER_DAY + 3) % 7 >= 5:
            season *= shape.weekend_mult
        regime = int(regime_T[t])
        sigma = sigma_base * shape.vol_mult[regime] * season * math.exp(h[0] + h[1] - var_h)
        u_eth = rho * btc_u[t] + math.sqrt(1.0 - rho * rho) * own_u[t]
        for i, (scale, u) in enumerate(((1.0, u_eth), (shape.leader_vol_ratio, btc_u[t]))):
            sig = scale * sigma
            e = sig * u
            rev = -gain_r * acc[i] if regime == 2 else 0.0
            acc[i] = phi_r * acc[i] + e
            d = scale * sigma_base * shape.drift_sigmas[regime] + rev + e
            o = log_price[i]
            log_price[i] = o + d
            hi = 0.5 * (d + math.sqrt(d * d - 2 * sig * sig * math.log(uniform[2 * i, t])))
            lo = 0.5 * (d - math.sqrt(d * d - 2 * sig * sig * math.log(uniform[2 * i + 1, t])))
            out[3 * i, t] = log_price[i]
            out[3 * i + 1, t] = max(o + hi, o, log_price[i])
            out[3 * i + 2, t] = min(o + lo, o, log_price[i])
    return out


def vector_minute_paths(seed: int, open_us_T: np.ndarray) -> np.ndarray:
    p = simulate_paths(
        seed, open_us_T, 0, start_prices=(2500.0, 60000.0), lag_s=1, strength=0.0, shape=DEFAULT_SHAPE, **_KW
    )
    return np.stack([p.eth.close_T, p.eth.high_T, p.eth.low_T, p.btc.close_T, p.btc.high_T, p.btc.low_T])


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, for CI smoke runs)")
    args = parser.parse_args()
    days = 5 if args.quick else 400
    repeats = 3
    open_us_T = (
        1_700_000_000_000_000 // US_PER_DAY * US_PER_DAY + np.arange(days * 1440, dtype=np.int64) * US_PER_MINUTE
    )
    fast = vector_minute_paths(1, open_us_T)
    slow = loop_minute_paths(1, open_us_T)
    if not np.allclose(fast, slow, rtol=0.0, atol=1e-9):
        raise SystemExit(f"vectorised and loop paths differ: max |Δ| = {np.abs(fast - slow).max():.3g}")
    t_vec = _median_time(lambda: vector_minute_paths(1, open_us_T), repeats)
    t_loop = _median_time(lambda: loop_minute_paths(1, open_us_T), 1 if not args.quick else repeats)
    n = len(open_us_T)
    print(f"1m path generator, {days} days ({n:,} minutes × 2 symbols), outputs agree within 1e-9:")
    print(f"  per-minute Python loop (baseline): {t_loop:8.3f} s  {n / t_loop:12,.0f} minutes/s")
    print(f"  vectorised simulate_paths:         {t_vec:8.3f} s  {n / t_vec:12,.0f} minutes/s")
    print(f"  speed-up: {t_loop / t_vec:.1f}×")

    configs = [("default (400 d history, 1 tick day)", SyntheticConfig(signal=PlantedSignal()))]
    if args.quick:
        configs = [("quick (30 d history, 0.1 tick day)", SyntheticConfig(history_days=30, tick_days=0.1))]
    else:
        configs.append(("3 years history, 1 tick day", SyntheticConfig(history_days=1095, signal=PlantedSignal())))
    for name, cfg in configs:
        market = generate_market(cfg)
        t = _median_time(functools.partial(generate_market, cfg), repeats)
        trades = sum(m.trades.height for m in market.symbols.values())
        minutes = sum(m.bars[Timeframe.M1].height for m in market.symbols.values())
        print(f"generate_market, {name}: median {t:.2f} s over {repeats} runs")
        print(f"  {trades:,} trades ({trades / t:,.0f}/s), {minutes:,} 1m bars ({minutes / t:,.0f}/s), both symbols")


if __name__ == "__main__":
    main()
