"""``rltrade cnn eval``: metrics, baselines, the planted-signal skill test and its leak alarms, real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console

from rltrade.cli.cnn import accuracy_table
from rltrade.config import CnnConfig, DataConfig, FeaturesConfig, PlantedSignal, SyntheticConfig
from rltrade.data.market import MarketFrames, load_market
from rltrade.models.dataset import build_timeframe_data
from rltrade.models.evaluate import TimeframeEval, evaluate_timeframe, past_classes
from rltrade.models.labels import DOWN, FLAT, UP
from rltrade.models.metrics import class_metrics
from rltrade.types import US_PER_MINUTE, Timeframe
from tests.support.cnn_models import EMBARGO_US, TINY, tf_data
from tests.support.real_data import real_market

EVAL_CFG = CnnConfig(
    window=64,
    conv_channels=(16, 16),
    max_epochs=5,
    patience=2,
    max_train_windows=20_000,
    max_val_windows=5_000,
    flat_quantile=1 / 3,
    horizons={Timeframe.S1: 4, Timeframe.M1: 60, Timeframe.H1: 4, Timeframe.D1: 1},
)
"""Balanced classes (fitted tercile band) so balanced accuracy and log loss compare across timeframes."""


def test_metrics_on_known_predictions() -> None:
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4]])
    y = np.array([DOWN, FLAT, UP, UP, -1])
    m = class_metrics(p, y)
    assert m.n == 4 and m.accuracy == pytest.approx(0.75)
    assert m.balanced_accuracy == pytest.approx((1 + 1 + 0.5) / 3)
    assert m.log_loss == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.7, 0.3])))
    assert m.n_directional == 3 and m.direction_accuracy == pytest.approx(2 / 3)
    uniform = class_metrics(np.full((3, 3), 1 / 3), np.array([0, 1, 2]))
    assert uniform.log_loss == pytest.approx(math.log(3)) and uniform.direction_accuracy == 0.0


def test_past_classes_only_look_back() -> None:
    data = tf_data(Timeframe.M1)
    rows = np.arange(0, 50)
    c = past_classes(data, rows, 10, 0.001)
    assert (c[:10] == -1).all() and (c[10:] >= 0).all()
    close = data.eth.close_T
    r = np.log(close[20] / close[10])
    assert c[20] == (UP if r > 0.001 else DOWN if r < -0.001 else FLAT)


def test_evaluation_pools_out_of_sample_folds_beside_baselines() -> None:
    data = tf_data(Timeframe.M1)
    ev = evaluate_timeframe(data, TINY, n_folds=2, embargo_us=EMBARGO_US, seed=0, source="synthetic")
    assert ev.model.n == ev.majority.n == ev.persistence.n > 10_000
    assert ev.majority.balanced_accuracy == pytest.approx(1 / 3)
    assert sum(ev.class_freq_test) == pytest.approx(1.0)
    assert [f["fold"] for f in ev.folds] == [0, 1]
    # Out of sample only: the first predicted window comes after the first chunk of history.
    first = min(f["predict"]["start_us"] for f in ev.folds)  # type: ignore[index]
    assert first > int(data.eth.open_us_T[0]) + (int(data.close_us_T[-1]) - int(data.eth.open_us_T[0])) // 3 - 1
    Console(record=True, width=160).print(accuracy_table([ev]))


def _market(signal: PlantedSignal | None) -> MarketFrames:
    return load_market(
        DataConfig(
            synthetic=SyntheticConfig(seed=1, history_days=400, tick_days=0.25, trades_per_second=10, signal=signal)
        )
    )


def _evaluate(frames: MarketFrames, tf: Timeframe, *, use_reference: bool = True) -> TimeframeEval:
    cfg = EVAL_CFG.model_copy(update={"use_reference": use_reference})
    data = build_timeframe_data(frames, tf, cfg, FeaturesConfig())
    return evaluate_timeframe(data, cfg, n_folds=3, embargo_us=10 * US_PER_MINUTE, seed=0, source="synthetic")


def _print(results: list[TimeframeEval]) -> None:
    Console(width=160).print(accuracy_table(results))


@pytest.mark.slow
def test_the_1s_cnn_finds_the_planted_lead_and_blind_timeframes_do_not() -> None:
    frames = _market(PlantedSignal(lag_s=5, strength=0.5))
    results = {tf: _evaluate(frames, tf) for tf in (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)}
    _print(list(results.values()))
    s1 = results[Timeframe.S1]
    best_bal = max(s1.majority.balanced_accuracy, s1.persistence.balanced_accuracy)
    assert s1.model.direction_accuracy > 0.65, s1.model
    assert s1.model.balanced_accuracy > best_bal + 0.1
    assert s1.model.log_loss < min(s1.majority.log_loss, s1.persistence.log_loss) - 0.05
    # Leak alarm: 1m/1h/1d bars cannot see a 5-second lead; clear directional skill there would be a leak.
    for tf in (Timeframe.M1, Timeframe.H1, Timeframe.D1):
        assert results[tf].model.direction_accuracy < 0.6, (tf, results[tf].model)


@pytest.mark.slow
def test_leak_alarms_without_the_signal_or_without_btc_the_1s_cnn_has_no_clear_skill() -> None:
    no_signal = _evaluate(_market(None), Timeframe.S1)
    eth_only = _evaluate(_market(PlantedSignal(lag_s=5, strength=0.5)), Timeframe.S1, use_reference=False)
    _print([no_signal, eth_only])
    for ev in (no_signal, eth_only):
        # Whatever it learns (the bid-ask bounce, say) the persistence baseline knows too.
        assert ev.model.direction_accuracy < ev.persistence.direction_accuracy + 0.05, ev.model
        assert ev.model.direction_accuracy < 0.65


@pytest.mark.slow
@pytest.mark.real
def test_real_1m_and_1h_show_no_suspicious_skill() -> None:
    frames = real_market()
    cfg = EVAL_CFG.model_copy(update={"flat_quantile": None, "max_epochs": 4})
    results = []
    for tf in (Timeframe.M1, Timeframe.H1):
        data = build_timeframe_data(frames, tf, cfg, FeaturesConfig())
        results.append(evaluate_timeframe(data, cfg, n_folds=3, embargo_us=10 * US_PER_MINUTE, seed=0, source="real"))
    _print(results)
    for ev in results:
        assert not ev.leak_suspect, ev.model
        assert ev.model.balanced_accuracy < 0.45, ev.model
