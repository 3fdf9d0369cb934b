"""Typed, validated configuration, one model per stage, loaded from YAML and checked on load.

Config objects are frozen: nothing writes into them at run time. ``load_config`` reports every
validation problem with its dotted field path and the file it came from.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NamedTuple, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rltrade.types import US_PER_SECOND, Timeframe

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class PlantedSignal(_Frozen):
    """A learnable signal planted in the synthetic market: BTC's return leads ETH's by ``lag_s``."""

    lag_s: Annotated[int, Field(ge=1, le=600)] = 5
    """Seconds by which ETH follows BTC's 1 s log return."""
    strength: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """Fraction of ETH's 1 s return variance explained by lagged BTC (0 = no signal)."""


class SyntheticConfig(_Frozen):
    """The embedded synthetic ETH/BTC market (the default data source)."""

    seed: Annotated[int, Field(ge=0)] = 7
    """Seed of the generator; same seed, same market, bit for bit."""
    end: str = "2026-01-01"
    """UTC date or time (exclusive) the generated market ends at: ``2026-01-01`` (00:00) or
    ``2026-01-01T05:00`` (a whole hour, UTC). An end after midnight puts a daily close into the last hours
    (the test range), so the 1d blocks move there."""
    history_days: Annotated[int, Field(ge=2, le=5000)] = 400
    """Days of 1m/1h/1d history before the end, from 00:00 UTC (a non-midnight end adds its part-day):
    300 daily bars need at least 300 days."""
    tick_days: Annotated[float, Field(ge=0.0, le=60.0)] = 1.0
    """Most recent days for which individual trades and 1 s bars are generated."""
    trades_per_second: Annotated[float, Field(gt=0.0, le=200.0)] = 2.0
    """Mean trade arrival rate for ETH (BTC uses 1.4× that), before bursts and seasonality."""
    eth_start_price: Annotated[float, Field(gt=0.0)] = 2500.0
    """ETH price at the start of the history."""
    btc_start_price: Annotated[float, Field(gt=0.0)] = 60000.0
    """BTC price at the start of the history."""
    annual_vol: Annotated[float, Field(gt=0.0, le=5.0)] = 0.65
    """Baseline annualised volatility of ETH (BTC scaled by 0.8)."""
    correlation: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.8
    """Correlation of ETH and BTC minute returns."""
    mean_regime_hours: Annotated[float, Field(gt=0.0)] = 36.0
    """Mean duration of a market regime (geometric durations; unused when ``regime_hours`` is set)."""
    regime_hours: tuple[Annotated[float, Field(gt=0.0)], Annotated[float, Field(gt=0.0)]] | None = None
    """Bounded regime schedule ``[lo, hi]``: durations uniform in whole minutes between lo and hi hours, each
    regime unlike the two before it. Any window of W hours with ``4·hi ≤ W ≤ 10·lo`` then holds at least
    three regimes for at least 10 % of it each, whatever the seed (``rltrade.data.synthetic_paths``)."""
    spread_bps: Annotated[float, Field(ge=0.0, le=100.0)] = 1.0
    """Quoted bid-ask spread in basis points of price."""
    signal: PlantedSignal | None = PlantedSignal()
    """Planted BTC→ETH lead-lag signal; ``null`` for a market without one (the negative control)."""

    @model_validator(mode="after")
    def _tick_days_fit(self) -> SyntheticConfig:
        if self.tick_days > self.history_days:
            raise ValueError(f"tick_days ({self.tick_days}) cannot exceed history_days ({self.history_days})")
        return self

    @model_validator(mode="after")
    def _regime_hours_order(self) -> SyntheticConfig:
        if self.regime_hours is not None and self.regime_hours[0] > self.regime_hours[1]:
            raise ValueError(f"regime_hours must be [lo, hi] with lo <= hi, got {list(self.regime_hours)}")
        return self

    @field_validator("end")
    @classmethod
    def _end_is_a_utc_minute(cls, end: str) -> str:
        parse_synthetic_end(end)
        return end


def parse_synthetic_end(end: str) -> int:
    """``SyntheticConfig.end`` as µs since the epoch: a UTC date (00:00) or a UTC time on a whole hour."""
    try:
        when = dt.datetime.fromisoformat(end)
    except ValueError:
        raise ValueError(
            f"synthetic.end: {end!r} is not a date or time; write a UTC date like 2026-01-01 or 2026-01-01T05:00"
        ) from None
    if when.tzinfo is not None and when.utcoffset() != dt.timedelta(0):
        raise ValueError(f"synthetic.end: {end!r} is not in UTC; write it in UTC (no offset, or Z)")
    when = when.replace(tzinfo=dt.UTC)
    if when.minute or when.second or when.microsecond:
        raise ValueError(f"synthetic.end: {end!r} is not on a whole hour (so every 1h bar is whole); use HH:00")
    return int(when.timestamp()) * US_PER_SECOND


class DataConfig(_Frozen):
    """Where market data comes from and where it is stored."""

    source: Literal["synthetic", "store"] = "synthetic"
    """``synthetic``: generate the embedded market; ``store``: read what was imported or fetched."""
    store: Path = Path("data_store")
    """Root folder of the Parquet store."""
    exchange: str = "binance"
    """Exchange id (a ccxt id for ``rltrade data fetch``; a folder name in the store)."""
    symbol: str = "ETHUSDT"
    """The traded symbol."""
    reference: str = "BTCUSDT"
    """The reference symbol (features only, never traded)."""
    timeframes: tuple[Timeframe, ...] = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)
    """Bar timeframes kept in the store and used by the state."""
    synthetic: SyntheticConfig = SyntheticConfig()
    """The embedded synthetic market (used when ``source`` is ``synthetic``)."""
    start: dt.datetime | None = None
    """UTC start of the range to run on (``2024-01-01`` or ``2024-01-01T12:00``; a zone, if given, is
    honoured): the decision clock and the splits stay in ``[start, end)``. Bars before ``start`` are still
    read as history for the windows and indicators. None: from the first stored bar. ``--from`` overrides."""
    end: dt.datetime | None = None
    """UTC end of that range (exclusive); nothing at or after it is read. None: to the last stored bar.
    ``--to`` overrides."""

    @model_validator(mode="after")
    def _symbols_differ(self) -> DataConfig:
        if self.symbol == self.reference:
            raise ValueError(f"symbol and reference must differ (both {self.symbol!r})")
        return self

    @model_validator(mode="after")
    def _range_order(self) -> DataConfig:
        start, end = self.range_us
        if start is not None and end is not None and end <= start:
            raise ValueError(f"data.end ({self.end}) must be after data.start ({self.start})")
        return self

    @property
    def range_us(self) -> tuple[int | None, int | None]:
        """``(start, end)`` in µs since the epoch (naive times are UTC); None where open."""

        def us(when: dt.datetime | None) -> int | None:
            if when is None:
                return None
            aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
            return int(aware.timestamp()) * 1_000_000 + aware.microsecond

        return us(self.start), us(self.end)


class SplitConfig(_Frozen):
    """Train / validation / test ranges as fractions of the base-clock span, with purge and embargo."""

    train: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.6
    """Fraction of the span used for fitting (CNNs, scalers, the agent)."""
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    """Fraction used to select checkpoints and stop early; the rest is the test range."""
    purge_s: Annotated[int, Field(ge=0)] = 3600
    """Seconds removed at the end of each training range: labels that look this far ahead cannot
    reach into the next range."""
    embargo_s: Annotated[int, Field(ge=0)] = 600
    """Seconds skipped at the start of each range after a training range."""
    walk_forward_folds: Annotated[int, Field(ge=1, le=100)] = 4
    """Number of rolling train/test folds for ``rltrade walkforward``."""

    @property
    def purge_us(self) -> int:
        """``purge_s`` in µs."""
        return self.purge_s * US_PER_SECOND

    @property
    def embargo_us(self) -> int:
        """``embargo_s`` in µs."""
        return self.embargo_s * US_PER_SECOND

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.train + self.validation >= 1.0:
            raise ValueError(f"train + validation must leave room for test (got {self.train} + {self.validation} ≥ 1)")
        return self


LayoutName = Literal["full", "demo", "basic"]
"""The state layouts ``features.layout.name`` picks from (the CLI lists these)."""
LAYOUT_NAMES: tuple[str, ...] = get_args(LayoutName)


class LayoutConfig(_Frozen):
    """Which blocks the market state holds and how large each is (SPEC §2.4).

    ``name`` picks a preset (``full``: the 15,588-feature layout; ``demo``: a small one for fast runs;
    ``basic``: the ~100-feature baseline state); the other fields override the preset's sizes.
    """

    name: LayoutName = "full"
    """Preset layout: ``full`` (SPEC §2.4), ``demo`` (small windows), ``basic`` (~100 features)."""
    bar_window: Annotated[int | None, Field(ge=2, le=2000)] = None
    """Bars per timeframe window (preset: 300 full, 48 demo)."""
    tick_window_s: Annotated[int, Field(ge=1, le=3600)] = 300
    """Seconds of raw trades in the ticks block."""
    max_ticks: Annotated[int | None, Field(ge=1, le=5000)] = None
    """Most recent trades kept in the ticks block (preset: 300 full, 64 demo)."""
    timeframes: tuple[Timeframe, ...] | None = None
    """Timeframes of the traded symbol's bar blocks (preset: all four)."""
    reference_timeframes: tuple[Timeframe, ...] | None = None
    """Timeframes of the reference symbol's bar blocks (preset: 1s; the 1m-clock real preset uses 1m)."""
    ticks: bool = True
    """Include the raw-trades block."""
    returns: bool = False
    """Also include the ``basic`` layout's blocks of recent ETH and BTC 1s/1m log returns (the demo preset
    does: the planted lead-lag is a 1 s return relation, which these blocks state directly). The BTC ones
    are left out when ``reference_timeframes`` is empty."""
    cnn: bool = True
    """Include the CNN hidden-feature and prediction blocks (zero and flagged off until CNNs exist)."""
    pivots: bool = True
    """Include the Williams pivot block (5 levels × 10)."""
    regime: bool = True
    """Include the market-regime block."""


class FeaturesConfig(_Frozen):
    """Feature kernels: pivots, regime, per-bar channels."""

    layout: LayoutConfig = LayoutConfig()
    """Which state blocks and how large."""
    pivot_n: Annotated[int, Field(ge=1, le=10)] = 2
    """Williams pivots: bars on each side a swing point must exceed (strictly)."""
    pivot_levels: Annotated[int, Field(ge=1, le=8)] = 5
    """Williams pivots: recursion levels."""
    pivot_timeframe: Timeframe = Timeframe.M1
    """Bars the pivots are computed on."""
    volume_median_window: Annotated[int, Field(ge=2, le=100_000)] = 300
    """Bars in the causal rolling median that volume is divided by."""
    rsi_period: Annotated[int, Field(ge=2, le=500)] = 14
    """TA-Lib RSI period (bar channel 5)."""
    atr_period: Annotated[int, Field(ge=2, le=500)] = 14
    """TA-Lib ATR period (bar channels 6 and 7)."""
    macd_fast: Annotated[int, Field(ge=2, le=500)] = 12
    """TA-Lib MACD fast EMA period."""
    macd_slow: Annotated[int, Field(ge=3, le=500)] = 26
    """TA-Lib MACD slow EMA period."""
    macd_signal: Annotated[int, Field(ge=2, le=500)] = 9
    """TA-Lib MACD signal EMA period."""
    stale_after_s: Annotated[float, Field(gt=0.0)] = 30.0
    """A feed with no trade for this long is flagged stale."""

    @model_validator(mode="after")
    def _macd(self) -> FeaturesConfig:
        if self.macd_fast >= self.macd_slow:
            raise ValueError(f"macd_fast ({self.macd_fast}) must be < macd_slow ({self.macd_slow})")
        return self


REAL_ETH_HALF_SPREAD_BPS = 0.0187
"""Median half-spread of Binance spot ETH/USDT, in bps of the mid, measured with
``data.importers.median_half_spread_bps`` on the 58,758 book-ticker updates of
``binance_spot_ETHUSDT_bookTicker_2024-08-08T2354_2024-08-09T0005`` (0.018656 bps: a one-tick
spread of 0.01 USDT at ~2,680 USDT). ``tests/unit/env/test_fills.py`` re-measures it."""


BPS: Final = 1e-4
"""One basis point as a fraction."""

_Q = TypeVar("_Q", float, "npt.NDArray[np.float64]")


def trade_cost_fraction(q: _Q, taker_fee: float, half_spread_bps: float, impact_bps: float) -> _Q:
    """Return the fraction of equity paid for trading ``q`` times equity.

    That is ``q · (taker_fee + (half_spread_bps + impact_bps · q) · 1e-4)``: fee, half-spread and linear
    impact (:mod:`rltrade.env.fills`). This is the one home of the cost formula.
    """
    return q * (taker_fee + (half_spread_bps + impact_bps * q) * BPS)


class FeeTier(NamedTuple):
    """A named exchange fee tier: what a user at that tier pays per trade (``--fee NAME``)."""

    name: str
    what: str
    fee: float
    """Fee per trade as a fraction of the traded notional."""
    liquidity: Literal["taker", "maker"]
    funding: bool
    """True for perpetual futures: shorts and longs pay or receive funding (``env.funding_file``)."""
    dated: str
    """When the rate applies: from which date, and when it was recorded here."""


FEE_TIERS: Final[dict[str, FeeTier]] = {
    t.name: t
    for t in (
        FeeTier(
            "binance-spot",
            "Binance spot, regular user (VIP 0), taker",
            0.001,
            "taker",
            False,
            "0.1 % since Binance's launch (2017-07); recorded 2026-11-30",
        ),
        FeeTier(
            "binance-spot-bnb",
            "Binance spot, regular user (VIP 0), taker, fees paid in BNB (25 % off)",
            0.00075,
            "taker",
            False,
            "the 25 % BNB discount since 2018-07; recorded 2026-11-30",
        ),
        FeeTier(
            "binance-usdm",
            "Binance USDⓈ-M perpetual futures, regular user (VIP 0), taker, with funding",
            0.0005,
            "taker",
            True,
            "0.05 % (maker 0.02 %) per Binance's futures fee FAQ, checked 2026-12-01; older schedules charged "
            "0.04 % taker (the FAQ's own worked example): price such periods with --fee 0.04%",
        ),
        FeeTier(
            "binance-usdm-bnb",
            "Binance USDⓈ-M perpetual futures, regular user (VIP 0), taker, fees paid in BNB (10 % off), with funding",
            0.00045,
            "taker",
            True,
            "the futures BNB discount of 10 % per Binance's futures fee FAQ, checked 2026-12-01",
        ),
        FeeTier(
            "binance-spot-maker",
            "Binance spot, regular user (VIP 0), maker",
            0.001,
            "maker",
            False,
            "recorded 2026-11-30",
        ),
        FeeTier(
            "binance-usdm-maker",
            "Binance USDⓈ-M perpetual futures, regular user (VIP 0), maker",
            0.0002,
            "maker",
            True,
            "recorded 2026-11-30",
        ),
    )
}
"""The named fee tiers ``--fee`` accepts. Rates are the exchange's published regular-user rates as this project
recorded them (the futures rates checked on 2026-12-01 against Binance's published futures fee FAQ, the spot rates
not re-checked); maker tiers are listed so that asking
for one gets a clear refusal: the env fills every order as a taker (no limit-order fill model)."""


def fee_overrides(value: str) -> dict[str, Any]:
    """Return the ``env`` config overrides of a ``--fee`` value: a tier name of :data:`FEE_TIERS` or a number.

    A number is a taker fee as a fraction (``0.0004``) or in percent (``0.04%``). Raises ``ValueError`` with
    what to do for an unknown name, a maker tier or a number outside [0, 1 %].
    """
    text = value.strip()
    tier = FEE_TIERS.get(text.lower())
    if tier is not None:
        if tier.liquidity == "maker":
            raise ValueError(
                f"--fee {text}: {tier.what} is a maker tier, and the env fills every order as a taker (it has no "
                "limit-order fill model, so it cannot tell which orders would rest and fill); use a taker tier: "
                + ", ".join(n for n, t in FEE_TIERS.items() if t.liquidity == "taker")
            )
        return {"taker_fee": tier.fee, "fee_tier": tier.name}
    try:
        fee = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        names = ", ".join(n for n, t in FEE_TIERS.items() if t.liquidity == "taker")
        raise ValueError(
            f"--fee {text!r} is neither a fee tier ({names}) nor a number (a fraction such as 0.0004, or 0.04%)"
        ) from None
    if not 0.0 <= fee <= 0.01 or math.isnan(fee):
        raise ValueError(f"--fee {text}: a taker fee must lie between 0 and 1 % of the notional, got {fee:.4%}")
    return {"taker_fee": fee, "fee_tier": None}


def costs_caption(env: EnvConfig) -> str:
    """Return one line stating every cost a backtest under ``env`` pays (the caption of every results table)."""
    tier = FEE_TIERS.get(env.fee_tier) if env.fee_tier is not None else None
    fee = f"taker fee {env.taker_fee:.4%}" + (f" ({tier.name})" if tier is not None else "")
    carry = (
        f"funding from {env.funding_file.name}"
        if env.funding_file is not None
        else f"short borrow {env.borrow_annual_rate:.1%}/yr"
    )
    return (
        f"costs: {fee}, half spread {env.half_spread_bps:g} bps, impact {env.impact_bps:g} bps/unit, {carry}, "
        f"taker fills {env.latency_ms:g} ms after each {env.step.value} decision"
    )


class TradingTerms(NamedTuple):
    """The env settings two runs must share for their backtests to be comparable: clock, fills and every cost."""

    step: Timeframe
    latency_ms: float
    taker_fee: float
    half_spread_bps: float
    impact_bps: float
    position_fraction: float
    borrow_annual_rate: float
    funding_file: Path | None


class EnvConfig(_Frozen):
    """Market mechanics of the trading environment and the backtest (SPEC §2.5)."""

    step: Timeframe = Timeframe.S1
    """Decision clock: one decision per bar of this timeframe (``1s``; ``1m`` for data without trades).
    Fills and marks use the traded symbol's bars of the same timeframe."""
    latency_ms: Annotated[float, Field(gt=0.0, le=60_000.0)] = 100.0
    """Delay from a decision at ``t`` to its order reaching the market: the order fills at the open of the
    first traded bar opening at or after ``t + latency`` (on the 1 s clock the next second's first trade).
    Must be positive, so a fill is always strictly after the state it was decided on."""
    taker_fee: Annotated[float, Field(ge=0.0, le=0.01)] = 0.001
    """Taker fee as a fraction of the traded notional (0.1 %, Binance spot's base rate)."""
    half_spread_bps: Annotated[float, Field(ge=0.0, le=100.0)] = REAL_ETH_HALF_SPREAD_BPS
    """Half the bid-ask spread paid on the traded notional, in bps of price (default: measured on the real
    ETH/USDT book ticker; on the synthetic market use half of ``synthetic.spread_bps``)."""
    impact_bps: Annotated[float, Field(ge=0.0, le=100.0)] = 0.5
    """Price impact in bps per unit of equity traded: a trade of ``q`` times equity pays ``impact_bps · q`` bps
    on its notional (an assumption, not calibrated: retail sizes sit inside ETH/USDT's top of book)."""
    position_fraction: Annotated[float, Field(gt=0.0, le=3.0)] = 1.0
    """Size of a long or short position as a fraction of current equity (1 = fully invested, no leverage)."""
    borrow_annual_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    """Cost of holding a short, per year of holding, as a fraction of the short notional (margin borrow;
    an assumption). Replaced by the real funding rates when a funding table is given."""
    funding_file: Path | None = None
    """A USDⓈ-M funding-rate file (``data.importers.read_funding`` formats) whose rates replace
    ``borrow_annual_rate`` for shorts; ``null``: the constant borrow rate."""
    episode_steps: Annotated[int, Field(ge=1, le=10_000_000)] = 3600
    """Decisions per training episode (an episode is also truncated at the end of its period)."""
    ruin_equity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    """An episode terminates when equity falls below this fraction of its starting equity."""
    min_hold_steps: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Minimum holding time of the agent, in decision steps: a long or short opened at step ``i`` cannot be
    closed or reversed before step ``i + min_hold_steps`` (the order is ignored and the position kept); 1 = no
    minimum. Applies to the agent's env, backtests and live sessions (:func:`rltrade.env.fills.held_positions`);
    the baselines and oracles are unconstrained (the perfect-foresight oracle stays an upper bound)."""
    fee_tier: str | None = None
    """The named fee tier ``taker_fee`` comes from (:data:`FEE_TIERS`, set by ``--fee NAME``); ``null``: a
    number. A tier must be a taker tier whose fee equals ``taker_fee``; a futures tier needs ``funding_file``."""

    @property
    def latency_us(self) -> int:
        """The fill latency in whole µs (at least 1)."""
        return max(1, round(self.latency_ms * 1000.0))

    @property
    def terms(self) -> TradingTerms:
        """The clock, fill and cost settings (:class:`TradingTerms`)."""
        return TradingTerms(*(getattr(self, name) for name in TradingTerms._fields))

    @model_validator(mode="after")
    def _known_fee_tier(self) -> EnvConfig:
        if self.fee_tier is None:
            return self
        tier = FEE_TIERS.get(self.fee_tier)
        if tier is None:
            raise ValueError(f"env.fee_tier {self.fee_tier!r} is not a fee tier ({', '.join(FEE_TIERS)})")
        if tier.liquidity != "taker":
            fee_overrides(tier.name)  # raises the maker tier's refusal
        if tier.fee != self.taker_fee:
            raise ValueError(
                f"env.fee_tier {tier.name} charges {tier.fee:.4%} but env.taker_fee is {self.taker_fee:.4%}; "
                "set one of them (--fee NAME sets both)"
            )
        if tier.funding and self.funding_file is None:
            raise ValueError(
                f"env.fee_tier {tier.name} trades perpetual futures, which pay funding: set env.funding_file to a "
                "USDⓈ-M funding-rate file (e.g. ../shared/data/real/binance_usdm_ETHUSDT_fundingrate_*.csv.gz)"
            )
        return self

    @model_validator(mode="after")
    def _costs_below_equity(self) -> EnvConfig:
        worst = 2 * self.position_fraction
        cost = trade_cost_fraction(worst, self.taker_fee, self.half_spread_bps, self.impact_bps)
        if cost >= 0.5:
            raise ValueError(
                f"a full reversal would cost {cost:.0%} of equity (fee, spread and impact at position_fraction "
                f"{self.position_fraction}); lower impact_bps or position_fraction"
            )
        return self


class RewardConfig(_Frozen):
    """Weights of the reward factors (SPEC §2.5) and their parameters; the default is PnL-only.

    See :mod:`rltrade.env.reward` for the exact definition of each factor.
    """

    pnl_weight: float = 1.0
    """Weight of the log equity change after every cost (fees, spread, impact, borrow)."""
    direction_weight: float = 0.0
    """Weight of direction correctness: +1 when the held position's sign matches the step's return, -1 when not."""
    regime_weight: float = 0.0
    """Weight of the regime bonus: +1 long in a trend-up regime or short in a trend-down one, -1 against it."""
    volatility_weight: float = 0.0
    """Weight of the volatility-scaled PnL: the position's log return divided by the recent volatility."""
    cnn_weight: float = 0.0
    """Weight of agreement with confident CNN predictions (0 while the state has no CNN predictions)."""
    pivot_weight: float = 0.0
    """Weight of pivot accuracy, paid in the step a swing pivot is confirmed."""
    turnover_weight: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the churn penalty ``−|Δposition|`` (training only; the real costs are in the PnL factor)."""
    vol_halflife_steps: Annotated[float, Field(gt=0.0)] = 300.0
    """Half-life, in steps, of the exponentially weighted volatility the volatility factor divides by."""
    volatility_mode: Literal["additive", "multiplier"] = "additive"
    """``additive``: ``volatility_weight · clip(pnl / vol)`` is added to the reward; ``multiplier`` (the
    original design's form): the PnL term is multiplied by ``clip(vol_ref / vol) ** volatility_weight``."""
    vol_ref_halflife_steps: Annotated[float, Field(gt=0.0)] = 6_000.0
    """Half-life, in steps, of the slow reference volatility ``vol_ref`` of the multiplier mode."""
    vol_floor: Annotated[float, Field(gt=0.0)] = 1e-5
    """Lower bound of that volatility (per-step log return), so quiet stretches do not blow the factor up."""
    vol_clip: Annotated[float, Field(gt=0.0)] = 5.0
    """The volatility-scaled PnL is clipped to ±this."""
    cnn_confidence: Annotated[float, Field(gt=1.0 / 3.0, le=1.0)] = 0.6
    """A timeframe's CNN counts as confident when ``max(P(down), P(up))`` reaches this."""
    pivot_level: Annotated[int, Field(ge=0, le=7)] = 0
    """Williams pivot level the pivot-accuracy factor pays on."""

    @property
    def pnl_only(self) -> bool:
        """True when every factor but PnL has weight 0 (the evaluation mode)."""
        others = (
            self.direction_weight,
            self.regime_weight,
            self.volatility_weight,
            self.cnn_weight,
            self.pivot_weight,
            self.turnover_weight,
        )
        return all(w == 0.0 for w in others)

    @model_validator(mode="after")
    def _some_weight(self) -> RewardConfig:
        if self.pnl_weight == 0.0 and self.pnl_only:
            raise ValueError("every reward weight is 0: the reward would be constant; set pnl_weight (default 1)")
        return self


class AgentConfig(_Frozen):
    """Everything that defines the DQN agent: network, targets, optimiser, replay and exploration."""

    seed: Annotated[int | None, Field(ge=0)] = None
    """Seed of the learner's torch generators (initialisation, noise, exploration); ``null`` (the default): the
    top-level ``seed``, like every other stage (:attr:`Config.learner_config`)."""
    network: Literal["flat", "structured"] = "flat"
    """``flat``: the original design's MLP on the whole observation; ``structured``: per-block
    encoders over the tick and bar windows (needs the state layout), far cheaper on a CPU."""
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = (1024, 512)
    """Hidden widths of the flat network: obs → 1024 → 512 → heads (the original design)."""
    encoder_channels: tuple[Annotated[int, Field(ge=1)], ...] = (16, 32)
    """Output channels of each patch-convolution stage of the structured encoder."""
    encoder_patches: tuple[Annotated[int, Field(ge=1)], ...] = (10, 10)
    """Patch length (kernel = stride) of each stage: a 300-row window shrinks 300 → 30 → 3 rows."""
    encoder_hidden: tuple[Annotated[int, Field(ge=1)], ...] = (128, 128)
    """Hidden widths after the structured encoder's concatenated features."""
    block_norm: bool = False
    """Structured encoder only: standardise the state per block before encoding it, with statistics fitted once
    on evenly spaced training-range states (per channel for tick and bar windows, per column for flat blocks,
    clipped to ±10; :mod:`rltrade.agent.block_norm` says why not a ``LayerNorm``)."""
    block_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Structured encoder only: probability of zeroing one block's encoded features for one sample in each
    gradient update (kept blocks scaled by 1 / (1 − p)); never while acting, evaluating or computing targets."""
    encoder_recent_rows: Annotated[int, Field(ge=0)] = 0
    """Structured encoder only: the newest R rows of every tick and bar window also pass through unpatched,
    beside the window's patch features (a full-resolution skip path for the freshest data; 0: none)."""
    encoder_recent_diff: bool = False
    """Structured encoder only, with ``encoder_recent_rows`` and ``block_norm``: the skip path passes the changes
    between the newest R + 1 rows of every window (a bar window's log returns) instead of the rows themselves,
    each column scaled to unit standard deviation on the standardiser's training states."""
    overlap_update: Literal["auto", "on", "off"] = "off"
    """On a CPU, compute the next-state half of each update (its states, the target network's values, the online
    network's argmax) on a second thread while this one gathers the current states and runs the online network:
    the same updates bit for bit, only faster or slower. ``auto`` (the ``full`` preset's) times both orders now
    and then and overlaps when that is faster (:mod:`rltrade.agent.overlap`); ``on`` / ``off`` (or true /
    false) fix it. Off by default: a small network's s' half gains nothing from a second thread."""
    backward_threads: Annotated[int | None, Field(ge=1, le=256)] = None
    """On a CPU, torch's thread count for each update's backward pass and optimiser step (None: the process's,
    ``train.torch_threads``). The forward passes keep the process's count, one thread per half when they
    overlap, so ``overlap_update`` still gives the same updates bit for bit; the backward is the serial part
    of the step, which the second core otherwise idles through. The ``full`` preset sets 2 (the machine's
    cores). A fixed count gives the same results run after run; another count, other roundings."""
    n_actions: Annotated[int, Field(ge=2)] = 3
    """Number of discrete actions (short / flat / long by default)."""
    dueling: bool = True
    """Dueling heads: Q = V + A − mean(A) (Wang et al. 2016)."""
    double: bool = True
    """Double-DQN targets (online net picks a*, target net values it); False for vanilla DQN."""
    exploration: Literal["epsilon", "noisy"] = "epsilon"
    """``epsilon``: ε-greedy on a deterministic net; ``noisy``: noisy head layers, greedy actions."""
    noisy_sigma0: Annotated[float, Field(gt=0.0)] = 0.5
    """Initial noise scale σ0 of the factorised noisy layers (Fortunato et al. 2017)."""
    epsilon_start: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """ε at step 0."""
    epsilon_end: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    """ε after ``epsilon_steps`` acting steps."""
    epsilon_steps: Annotated[int, Field(ge=1)] = 100_000
    """Acting steps over which ε falls linearly."""
    distributional: bool = False
    """C51 head: a categorical return distribution per action (Bellemare et al. 2017)."""
    n_atoms: Annotated[int, Field(ge=2)] = 51
    """Atoms of the C51 support."""
    v_min: float = -10.0
    """Lowest return of the C51 support."""
    v_max: float = 10.0
    """Highest return of the C51 support."""
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99
    """Discount per step (applied by the n-step accumulator; the learner uses the replay's γ^m)."""
    n_step: Annotated[int, Field(ge=1)] = 3
    """Steps per return (1 = one-step TD)."""
    lr: Annotated[float, Field(gt=0.0)] = 1e-4
    """Adam learning rate."""
    adam_eps: Annotated[float, Field(gt=0.0)] = 1e-8
    """Adam's ε (torch's default)."""
    batch_size: Annotated[int, Field(ge=1)] = 128
    """Transitions per gradient update."""
    buffer_size: Annotated[int, Field(ge=1)] = 50_000
    """Replay capacity in transitions (a few dozen bytes each: states are gathered on demand)."""
    prioritized: bool = True
    """Prioritized replay (Schaul et al. 2016); False samples uniformly (α = 0, all weights 1)."""
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6
    """Priority exponent α."""
    beta_start: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    """Importance-sampling exponent β at the first update; annealed linearly to 1."""
    beta_steps: Annotated[int, Field(ge=1)] = 100_000
    """Updates over which β reaches 1."""
    priority_eps: Annotated[float, Field(gt=0.0)] = 1e-6
    """Added to |TD| so no transition's priority is zero."""
    huber_delta: Annotated[float, Field(gt=0.0)] = 1.0
    """Huber loss threshold δ: quadratic below, linear above."""
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 10.0
    """Global L2 norm the gradient is clipped to."""
    target_update: Literal["hard", "polyak"] = "hard"
    """``hard``: copy online → target every ``target_update_interval`` updates; ``polyak``: blend by τ."""
    target_update_interval: Annotated[int, Field(ge=1)] = 1000
    """Updates between hard target copies."""
    tau: Annotated[float, Field(gt=0.0, le=1.0)] = 0.005
    """Polyak weight of the online net per update."""
    learning_starts: Annotated[int, Field(ge=0)] = 1000
    """Transitions stored before the first update."""
    train_every: Annotated[int, Field(ge=1)] = 1
    """Environment steps per gradient update."""

    @field_validator("overlap_update", mode="before")
    @classmethod
    def _overlap_from_bool(cls, value: object) -> object:
        """Read ``true`` / ``false`` as ``on`` / ``off``."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        if len(self.encoder_channels) != len(self.encoder_patches):
            raise ValueError(
                f"encoder_channels {self.encoder_channels} and encoder_patches {self.encoder_patches} "
                "need one entry per stage"
            )
        if self.distributional and not self.v_min < self.v_max:
            raise ValueError(f"C51 support needs v_min < v_max, got [{self.v_min}, {self.v_max}]")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) exceeds buffer_size ({self.buffer_size})")
        if not self.hidden or not self.encoder_hidden:
            raise ValueError("hidden and encoder_hidden need at least one layer")
        if self.encoder_recent_diff and not (self.encoder_recent_rows > 0 and self.block_norm):
            raise ValueError(
                "encoder_recent_diff changes the skip path of encoder_recent_rows and is scaled with block_norm's "
                "statistics: set encoder_recent_rows > 0 and block_norm: true, or turn it off"
            )
        if self.network == "flat" and (self.block_norm or self.block_dropout > 0.0 or self.encoder_recent_rows):
            raise ValueError(
                "block_norm, block_dropout and encoder_recent_rows act on the structured encoder's blocks: "
                "set network: structured, or turn them off for the flat network"
            )
        return self


class TrainConfig(_Frozen):
    """The training loop: how long, how many parallel episodes, how often to evaluate and checkpoint."""

    total_steps: Annotated[int, Field(ge=1)] = 200_000
    """Environment steps per parallel episode stream (transitions = total_steps × n_envs)."""
    n_envs: Annotated[int, Field(ge=1, le=1024)] = 16
    """Episodes stepped together (one batched state gather per step)."""
    updates_per_step: Annotated[int, Field(ge=1, le=64)] = 1
    """Gradient updates after each batched environment step (once learning has started)."""
    eval_every: Annotated[int, Field(ge=1)] = 5_000
    """Steps between validation backtests (greedy policy); the best one is kept as best.pt."""
    eval_max_steps: Annotated[int, Field(ge=10)] = 20_000
    """Validation backtests use at most this many clock steps from the start of the validation range."""
    checkpoint_every: Annotated[int, Field(ge=1)] = 5_000
    """Steps between last.pt checkpoints (what --resume continues from)."""
    max_wall_s: Annotated[float | None, Field(gt=0.0)] = None
    """Stop (checkpointing first) after this much wall time of training, counted from the end of the
    preparation (data, features and the CNN stage are not counted, so a limit shorter than them still trains);
    ``--resume`` continues. None for no limit."""
    torch_threads: Annotated[int, Field(ge=1, le=256)] = 1
    """Torch intra-op threads. Fixed (not the machine's core count) so results repeat across machines;
    1 is fastest for the small demo networks and immune to other processes on a shared machine."""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """Where the networks train: ``cpu``; ``cuda`` (refused when torch sees no GPU); ``auto``: the GPU when
    torch sees one, else the CPU. On a GPU the state batches go through pinned memory and non-blocking copies;
    the env and the state gather stay on the CPU."""
    mixed_precision: bool = False
    """Run the networks' forward passes under bfloat16 autocast (parameters, optimiser and loss stay float32).
    Mainly for GPUs; off keeps every run bit-for-bit reproducible."""
    fee_multiplier: Annotated[float, Field(ge=0.0, le=20.0)] = 1.0
    """The taker fee the *training* env charges, as a multiple of ``env.taker_fee`` (a sweep can train against
    dearer or cheaper fills). Every backtest (validation, selection, test) charges the user's ``env.taker_fee``."""


DEFAULT_HORIZONS: dict[Timeframe, int] = {Timeframe.S1: 900, Timeframe.M1: 60, Timeframe.H1: 4, Timeframe.D1: 1}
"""Label horizon in bars per timeframe (see the module docstring for the class frequencies they give)."""


class CnnConfig(_Frozen):
    """The per-timeframe CNNs, their labels and their training."""

    enabled: bool = True
    """Fit the CNNs walk-forward in ``rltrade train`` and fill the state's CNN blocks with their rows (when the
    layout has CNN blocks); false leaves those blocks zero and flagged off."""
    timeframes: tuple[Timeframe, ...] = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)
    """Timeframes that get a CNN (each its own model over its own bars)."""
    walk_forward_folds: Annotated[int, Field(ge=1, le=20)] = 3
    """Walk-forward folds per timeframe in ``rltrade train``: the agent's span before its test range is cut into
    this many prediction ranges, each served by a CNN fitted on all the history before it (minus the embargo)."""
    min_fit_windows: Annotated[int, Field(ge=1)] = 256
    """Labelled windows a timeframe's first fit needs; a timeframe with fewer before the test range gets no CNN
    (its state rows stay masked)."""
    window: Annotated[int, Field(ge=8, le=2000)] = 300
    """Bars per input window (the state's bar window); at most the layout's window for live use."""
    use_reference: bool = True
    """Stack the reference symbol's (BTC) 8 channels beside the traded symbol's: 16 input channels."""
    conv_channels: tuple[int, ...] = (32, 32, 64)
    """Output channels of the 1D convolutions; every one after the first halves the time axis (stride 2)."""
    kernel_size: Annotated[int, Field(ge=1, le=31)] = 5
    """Width of every convolution kernel, in bars."""
    hidden: Annotated[int, Field(ge=1, le=4096)] = 128
    """Units of the named last hidden layer (the state's cnn_hidden block holds 128 per timeframe)."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Dropout before the hidden layer (training only)."""
    hidden_activation: Literal["relu", "leaky_relu"] = "leaky_relu"
    """Activation of the named hidden layer, whose output is the state's ``cnn_hidden`` row. ``leaky_relu``
    (slope 0.01 below zero) keeps every unit a function of its input; with ``relu`` about 40 % of the units
    ended exactly 0 on every test step of a demo run (dead units: constant features that cost coverage).
    CNNs saved before this option load as ``relu``, the activation they were trained with."""
    horizons: dict[Timeframe, int] = Field(default_factory=lambda: dict(DEFAULT_HORIZONS))
    """Label horizon in bars per timeframe: the class is the log return from the window's last close to the
    close ``horizon`` bars later."""
    flat_band: Annotated[float, Field(ge=0.0, le=0.5)] = 0.002
    """A forward log return inside ±flat_band is "flat" (default: the 0.2 % round trip)."""
    flat_quantile: Annotated[float | None, Field(gt=0.0, lt=1.0)] = None
    """If set, the band is instead fitted on each training range: this quantile of |forward return|
    (1/3 gives about equal classes). The fitted band is saved with the model."""
    pivot_n: Annotated[int, Field(ge=1, le=10)] = 2
    """Level-0 pivot neighbours for the next-pivot target (as the features' Williams pivots)."""
    pivot_loss_weight: Annotated[float, Field(ge=0.0)] = 0.5
    """Weight of the next-pivot regression (Huber) loss beside the class cross-entropy."""
    distance_clip: Annotated[float, Field(gt=0.0)] = 10.0
    """The next-pivot distance target (in ATRs) is clipped to ±distance_clip."""
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256
    """Windows per optimisation step."""
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    """Adam learning rate."""
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4
    """AdamW weight decay."""
    max_epochs: Annotated[int, Field(ge=1, le=1000)] = 20
    """Upper bound on passes over the (subsampled) training windows."""
    patience: Annotated[int, Field(ge=1, le=100)] = 3
    """Stop after this many epochs without a lower validation loss; the best epoch's weights are kept."""
    max_train_windows: Annotated[int, Field(ge=1)] = 50_000
    """Training windows per epoch at most: a seeded random subset when there are more (1 s bars)."""
    train_window_fraction: Annotated[float | None, Field(gt=0.0, le=1.0)] = None
    """If set, an epoch draws this fraction of the labelled training windows (at least ``min_fit_windows``, at
    most ``max_train_windows``): a budget that scales with the data. Unset: ``max_train_windows`` each epoch."""
    max_val_windows: Annotated[int, Field(ge=1)] = 20_000
    """Validation windows at most (a fixed seeded subset)."""
    validation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    """Walk-forward fits: the last part of the data before the cutoff used for early stopping."""
    inference_batch: Annotated[int, Field(ge=1, le=65536)] = 256
    """Windows per forward pass when computing outputs offline. Every pass has exactly this many (zero-padded,
    aligned on the bar index), so a row never depends on the rows computed with it (bit-causal); 256 keeps
    the CPU throughput of larger passes (faster than 1,024 for 300-bar windows) and wastes at most 255
    padded windows per call."""

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: dict[Timeframe, int]) -> dict[Timeframe, int]:
        bad = {tf.value: h for tf, h in value.items() if h < 1}
        if bad:
            raise ValueError(f"horizons must be >= 1 bar, got {bad}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> CnnConfig:
        missing = [tf.value for tf in self.timeframes if tf not in self.horizons]
        if missing:
            raise ValueError(f"horizons has no entry for {missing}; give one per timeframe in `timeframes`")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must be a non-empty list of positive widths, got {self.conv_channels}")
        return self

    def horizon(self, tf: Timeframe) -> int:
        """Return the label horizon, in bars, of timeframe ``tf``."""
        return self.horizons[tf]


class SelectionConfig(_Frozen):
    """Do-no-harm selection (:mod:`rltrade.training.selection`): confirmation window, bootstrap, PBO limit."""

    confirm_fraction: Annotated[float, Field(ge=0.1, le=0.5)] = 0.3
    """Share of the validation range, at its end, kept for confirmation only (nothing is chosen on it)."""
    n_resamples: Annotated[int, Field(ge=1000, le=100_000)] = 1000
    """Stationary-bootstrap resamples of each confirmation test."""
    level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    """One-sided confidence of each confirmation test."""
    max_pbo: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """A selection whose probability of backtest overfitting is at or above this is refused (flat instead)."""
    allow_overfit: bool = False
    """Keep a selection even when its PBO is at or above ``max_pbo`` (the user's explicit override)."""


class Config(_Frozen):
    """The whole run configuration (one YAML file)."""

    seed: Annotated[int, Field(ge=0)] = 0
    """Master seed; every stage derives its own generator from it."""
    data: DataConfig = DataConfig()
    """Market data source and store."""
    splits: SplitConfig = SplitConfig()
    """Train / validation / test ranges and walk-forward folds."""
    features: FeaturesConfig = FeaturesConfig()
    """State layout and feature kernels."""
    env: EnvConfig = EnvConfig()
    """Market mechanics of the environment and the backtest: clock, latency, fees, spread, impact, borrow."""
    reward: RewardConfig = RewardConfig()
    """Reward factor weights (PnL-only by default: the evaluation mode)."""
    cnn: CnnConfig = CnnConfig()
    """Per-timeframe CNNs: inputs, labels, training."""
    agent: AgentConfig = AgentConfig()
    """The DQN: network, targets, optimiser, replay, exploration."""
    train: TrainConfig = TrainConfig()
    """The training loop: length, parallel episodes, evaluation and checkpoints."""
    selection: SelectionConfig = SelectionConfig()
    """Do-no-harm selection of the traded policy: baselines as candidates, confirmation, PBO."""

    @property
    def learner_config(self) -> AgentConfig:
        """The ``agent`` section with its seed resolved: ``agent.seed`` when set, else the top-level ``seed``."""
        return self.agent if self.agent.seed is not None else self.agent.model_copy(update={"seed": self.seed})


ONE_THREAD: Final[dict[str, Any]] = {"train": {"torch_threads": 1}, "agent": {"backward_threads": None}}
"""Overrides for a job that shares the machine with others, one job per core (sweep trials, walk-forward folds):
one torch thread throughout, so that results do not depend on how many jobs share the machine."""


WALL_TIME_ONLY: Final[frozenset[str]] = frozenset({"agent.overlap_update"})
"""Fields that change how fast a run trains, never what it learns (``agent.overlap_update``: the same updates
bit for bit). A run folder written with another value of one of them, or before the field existed, holds the
same run, so a walk-forward or sweep job resumes it."""


def result_differences(a: Config, b: Config) -> list[str]:
    """Dotted paths of the fields whose values differ between ``a`` and ``b``, sorted.

    :data:`WALL_TIME_ONLY` is left out, so the list is empty when both configs train the same run.
    """
    out: list[str] = []

    def walk(x: object, y: object, path: str) -> None:
        if path in WALL_TIME_ONLY:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(x.keys() | y.keys()):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else str(key))
        elif x != y:
            out.append(path)

    walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "")
    return out


def describe_differences(paths: list[str], limit: int = 5) -> str:
    """``paths`` for a message: the first ``limit`` and how many more."""
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message lists every problem."""


def read_yaml_mapping(path: Path, what: str = "config") -> dict[str, Any]:
    """Read the top-level mapping of the YAML file ``path``; ``ConfigError`` naming the file when it is not one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    return raw


def validation_error(where: object, exc: ValidationError) -> ConfigError:
    """One ``ConfigError`` listing every field pydantic refused, each with its dotted path."""
    lines = [f"{where}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        if isinstance(value, float) and not math.isfinite(value):
            lines.append(
                f"  {loc}: {value} is not finite; give a number"
            )  # not "should be <= ...": NaN fails every bound
            continue
        lines.append(f"  {loc}: {err['msg']}")
    return ConfigError("\n".join(lines))


def load_config(path: Path) -> Config:
    """Load and validate a YAML config; raise ``ConfigError`` naming the file and each bad field."""
    raw = read_yaml_mapping(path)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(path, exc) from None


def render_commented_yaml(model: BaseModel | None = None, indent: int = 0) -> str:
    """Render the config as YAML with each field's docstring as a comment above it (for ``rltrade config init``)."""
    model = model if model is not None else Config()
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            lines.extend(f"{pad}# {line}".rstrip() for line in field.description.splitlines())
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(render_commented_yaml(value, indent + 1))
        else:
            dumped = yaml.safe_dump({name: _plain(value)}, default_flow_style=True, sort_keys=False, width=1000).strip()
            lines.append(f"{pad}{dumped[1:-1]}" if dumped.startswith("{") else f"{pad}{dumped}")
    return "\n".join(lines)


def _plain(value: object) -> object:
    """Convert enums, paths, tuples and mappings to plain YAML-safe values."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return str(value)
    return value
