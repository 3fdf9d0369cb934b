"""Typed, validated configuration, one model per stage, loaded from YAML and checked on load.

Config objects are frozen: nothing writes into them at run time. ``load_config`` reports every
validation problem with its dotted field path and the file it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rltrade.types import Timeframe


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
    """UTC date (exclusive) the generated history ends at."""
    history_days: Annotated[int, Field(ge=2, le=5000)] = 400
    """Days of 1m/1h/1d history (300 daily bars need at least 300 days)."""
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
    """Mean duration of a market regime."""
    spread_bps: Annotated[float, Field(ge=0.0, le=100.0)] = 1.0
    """Quoted bid-ask spread in basis points of price."""
    signal: PlantedSignal | None = PlantedSignal()
    """Planted BTC→ETH lead-lag signal; ``null`` for a market without one (the negative control)."""

    @model_validator(mode="after")
    def _tick_days_fit(self) -> SyntheticConfig:
        if self.tick_days > self.history_days:
            raise ValueError(f"tick_days ({self.tick_days}) cannot exceed history_days ({self.history_days})")
        return self


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

    @model_validator(mode="after")
    def _symbols_differ(self) -> DataConfig:
        if self.symbol == self.reference:
            raise ValueError(f"symbol and reference must differ (both {self.symbol!r})")
        return self


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

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.train + self.validation >= 1.0:
            raise ValueError(
                f"train + validation must leave room for test (got {self.train} + {self.validation} ≥ 1)"
            )
        return self


class LayoutConfig(_Frozen):
    """Which blocks the market state holds and how large each is (SPEC §2.4).

    ``name`` picks a preset (``full``: the 15,588-feature layout; ``demo``: a small one for fast runs;
    ``basic``: the ~100-feature baseline state); the other fields override the preset's sizes.
    """

    name: Literal["full", "demo", "basic"] = "full"
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


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message lists every problem."""


def load_config(path: Path) -> Config:
    """Load and validate a YAML config; raise ``ConfigError`` naming the file and each bad field."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s):"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def render_commented_yaml(model: BaseModel | None = None, indent: int = 0) -> str:
    """The config as YAML with each field's docstring as a comment above it (for ``rltrade config init``)."""
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
            dumped = yaml.safe_dump(
                {name: _plain(value)}, default_flow_style=True, sort_keys=False, width=1000
            ).strip()
            lines.append(f"{pad}{dumped[1:-1]}" if dumped.startswith("{") else f"{pad}{dumped}")
    return "\n".join(lines)


def _plain(value: object) -> object:
    """Convert enums, paths and tuples to plain YAML-safe values."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return str(value)
    return value
