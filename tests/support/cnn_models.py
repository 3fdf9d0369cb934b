"""Tiny CNNs on a small synthetic market, shared by the models tests (seconds to train, all four timeframes).

The market has 45 days of 1m/1h/1d history (enough daily bars for the indicator warm-up) and 43 minutes of
trades and 1 s bars at its end. :func:`tiny_models` fits one CNN per timeframe on data that ends before the
tick period (1 s: on its first 15 minutes), so each may serve the rest of it.
"""

from __future__ import annotations

from functools import cache

from rltrade.config import CnnConfig, DataConfig, FeaturesConfig, SyntheticConfig
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange
from rltrade.features.layout import CNN_TIMEFRAMES
from rltrade.models.dataset import TimeframeData, build_timeframe_data
from rltrade.models.train import TrainedCnn, fit_cnn
from rltrade.types import US_PER_DAY, US_PER_MINUTE, Timeframe

TINY = CnnConfig(
    window=16,
    conv_channels=(4, 4),
    kernel_size=3,
    dropout=0.1,
    max_epochs=2,
    patience=1,
    batch_size=128,
    max_train_windows=600,
    max_val_windows=300,
    inference_batch=256,
    horizons={Timeframe.S1: 4, Timeframe.M1: 10, Timeframe.H1: 2, Timeframe.D1: 1},
)
"""A CNN small enough to fit in well under a second (hidden stays 128: the state's width)."""

EMBARGO_US = 60_000_000
MODEL_ID = 7
FEATURES = FeaturesConfig()


@cache
def cnn_market() -> MarketFrames:
    return load_market(
        DataConfig(synthetic=SyntheticConfig(seed=5, history_days=45, tick_days=0.03, trades_per_second=5))
    )


@cache
def tf_data(tf: Timeframe) -> TimeframeData:
    return build_timeframe_data(cnn_market(), tf, TINY, FEATURES)


def fit_range(tf: Timeframe) -> TimeRange:
    """The range the tiny model of ``tf`` is fitted on."""
    frames = cnn_market()
    tick_start, _ = frames.tick_span_us()  # type: ignore[misc]
    if tf is Timeframe.S1:
        return TimeRange(tick_start, tick_start + 15 * US_PER_MINUTE)
    start, _ = frames.span_us("eth", tf)
    # A daily model fitted on labels ending at a day's close may serve from the *next* day's close on.
    return TimeRange(start, tick_start - (3 * US_PER_DAY if tf is Timeframe.D1 else 60 * US_PER_MINUTE))


@cache
def tiny_models() -> dict[Timeframe, tuple[TrainedCnn, int]]:
    """One fitted tiny CNN per timeframe, with the model id the tests expect in the state."""
    return {
        tf: (fit_cnn(tf_data(tf), fit_range(tf), None, TINY, seed=i), MODEL_ID) for i, tf in enumerate(CNN_TIMEFRAMES)
    }
