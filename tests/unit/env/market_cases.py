"""Shared cases for the env, backtest and reward-property tests: small seeded markets and hand-made periods."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from rltrade.config import (
    DataConfig,
    EnvConfig,
    FeaturesConfig,
    LayoutConfig,
    PlantedSignal,
    RewardConfig,
    SyntheticConfig,
)
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange
from rltrade.env.prices import PeriodData, build_period, ewm_volatility, load_funding
from rltrade.features.clock import DecisionClock
from rltrade.features.layout import StateLayout, build_layout
from rltrade.features.market_features import MarketFeatures, build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import US_PER_SECOND

T0_US = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC


@dataclass(frozen=True, eq=False)
class Setup:
    """A market with demo-layout features, its state builder and its tick span."""

    frames: MarketFrames
    layout: StateLayout
    features: MarketFeatures
    builder: BatchStateBuilder
    ticks: TimeRange


def make_setup(frames: MarketFrames, layout_name: str = "demo") -> Setup:
    cfg = FeaturesConfig(layout=LayoutConfig(name=layout_name))  # type: ignore[arg-type]
    layout = build_layout(cfg.layout)
    features = build_market_features(frames, layout, cfg)
    span = frames.tick_span_us()
    assert span is not None
    return Setup(frames, layout, features, BatchStateBuilder(layout, features), TimeRange(span[0], span[1]))


@cache
def small_setup() -> Setup:
    """12 days of history, 72 minutes of ticks (seed 3), demo layout."""
    return make_setup(load_market(DataConfig(synthetic=SyntheticConfig(seed=3, history_days=12, tick_days=0.05))))


@cache
def signal_setup(strength: float = 0.5) -> Setup:
    """A market with the planted BTC→ETH lead (lag 5 s) and 10 ETH trades a second, so 1 s bars carry it."""
    synthetic = SyntheticConfig(
        seed=11,
        history_days=12,
        tick_days=0.1,
        trades_per_second=10.0,
        signal=PlantedSignal(lag_s=5, strength=strength),
    )
    return make_setup(load_market(DataConfig(synthetic=synthetic)))


def trading_period(
    setup: Setup, env_cfg: EnvConfig = EnvConfig(), reward_cfg: RewardConfig = RewardConfig()
) -> PeriodData:
    """The tick span minus its first two minutes (so 1s windows hold bars), on ``env_cfg``'s clock."""
    period = TimeRange(setup.ticks.start_us + 120 * US_PER_SECOND, setup.ticks.end_us)
    return build_period(setup.features, period, env_cfg, reward_cfg, funding=load_funding(env_cfg))


def period_from_prices(
    prices: npt.ArrayLike,
    *,
    carry: float = 0.0,
    step_us: int = US_PER_SECOND,
    marks: npt.ArrayLike | None = None,
    start_us: int = T0_US,
) -> PeriodData:
    """A hand-made period whose fill prices are ``prices`` (n + 1 values for n steps), marks the same unless given."""
    p = np.asarray(prices, dtype=np.float64)
    n = p.size - 1
    m = p if marks is None else np.asarray(marks, dtype=np.float64)
    clock = DecisionClock(start_us, step_us, n + 1)
    t = clock.time_of(np.arange(n + 1))
    log_ret = np.diff(np.log(p))
    return PeriodData(
        clock=clock,
        n_steps=n,
        fill_price_T=p,
        fill_us_T=t + step_us,
        mark_T=m,
        log_ret_T=log_ret,
        mark_log_ret_T=np.diff(np.log(m)),
        carry_T=np.full(n, carry),
        vol_T=ewm_volatility(log_ret, 300.0, 1e-5),
        regime_T=np.full(n, -1, np.int8),
        pivot_low_T=np.full(n, -1, np.int64),
        pivot_high_T=np.full(n, -1, np.int64),
    )
