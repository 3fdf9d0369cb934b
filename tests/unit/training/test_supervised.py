"""The supervised baseline: fee-aware labels with purge, causality of fit and threshold, skill on a planted signal."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from rltrade.config import EnvConfig
from rltrade.data.splits import TimeRange
from rltrade.env.fills import CostModel
from rltrade.env.prices import PeriodData, build_period, load_funding
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import flat_actions
from rltrade.training.supervised import (
    NEVER,
    NO_LABEL,
    SupervisedConfig,
    SupervisedModel,
    cache_key,
    fit_supervised,
    horizon_labels,
    load_model,
    period_proba,
    save_model,
    supervised_actions,
    threshold_actions,
)
from rltrade.types import US_PER_SECOND
from tests.unit.env.market_cases import Setup, make_setup, period_from_prices, signal_setup

LOW_COST = EnvConfig(taker_fee=1e-4, half_spread_bps=0.5, impact_bps=0.0)
SMALL = SupervisedConfig(horizon_steps=4, n_estimators=60, seed=3)
STRENGTH = 0.8


@cache
def basic_signal() -> Setup:
    """The planted-signal market (BTC leads ETH by 5 s) with the ``basic`` layout's features."""
    return make_setup(signal_setup(STRENGTH).frames, "basic")


def _ranges(setup: Setup) -> tuple[TimeRange, TimeRange, TimeRange]:
    """Train 60 %, validation 20 %, test 20 % of the tick span after its first two minutes (whole seconds)."""
    lo = setup.ticks.start_us + 120 * US_PER_SECOND
    n = (setup.ticks.end_us - lo) // US_PER_SECOND
    a, b = lo + int(0.6 * n) * US_PER_SECOND, lo + int(0.8 * n) * US_PER_SECOND
    return TimeRange(lo, a), TimeRange(a, b), TimeRange(b, lo + n * US_PER_SECOND)


def _periods(setup: Setup, env: EnvConfig) -> tuple[PeriodData, PeriodData, PeriodData]:
    train, val, test = _ranges(setup)
    funding = load_funding(env)
    return (
        build_period(setup.features, train, env, funding=funding),
        build_period(setup.features, val, env, funding=funding),
        build_period(setup.features, test, env, funding=funding),
    )


def test_labels_are_fee_aware_and_purged_at_the_period_end() -> None:
    cost_cfg = EnvConfig(taker_fee=1e-3, half_spread_bps=0.0, impact_bps=0.0)
    c = CostModel.from_config(cost_cfg).round_trip
    # Moves per step: +3c, 0, −3c, +0.5c, 0, 0 (fills one step after each decision).
    moves = np.array([3 * c, 0.0, -3 * c, 0.5 * c, 0.0, 0.0])
    period = period_from_prices(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(moves)])))
    labels = horizon_labels(period, 1, c)
    # Step i's horizon fill (step i + 1) is at t_{i+2}, before the last decision time t_6 only for i ≤ 3.
    assert labels.tolist() == [2, 1, 0, 1, NO_LABEL, NO_LABEL]
    two = horizon_labels(period, 2, c)
    assert two.tolist() == [2, 0, 0, NO_LABEL, NO_LABEL, NO_LABEL]


def test_threshold_policy_and_its_never_candidate() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.45, 0.1, 0.45]])
    assert threshold_actions(proba, 0.5).tolist() == [0, 2, 1, 1]
    assert threshold_actions(proba, 0.4).tolist() == [0, 2, 1, 2]
    assert threshold_actions(proba, NEVER).tolist() == [1, 1, 1, 1]


def test_config_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="horizon"):
        SupervisedConfig(horizon_steps=0)
    with pytest.raises(ValueError, match="thresholds"):
        SupervisedConfig(thresholds=(0.0, 0.5))


@cache
def _fitted() -> tuple[SupervisedModel, tuple[PeriodData, PeriodData, PeriodData]]:
    setup = basic_signal()
    periods = _periods(setup, LOW_COST)
    return fit_supervised(setup.builder, periods[0], periods[1], LOW_COST, SMALL), periods


def test_it_beats_flat_out_of_sample_on_the_planted_signal() -> None:
    model, (_, _, test) = _fitted()
    setup = basic_signal()
    assert model.threshold < NEVER, model.validation_returns
    assert model.validation_returns[model.threshold] > model.validation_returns[NEVER] == 0.0
    result = backtest_actions(test, supervised_actions(model, setup.builder, test), LOW_COST)
    flat = backtest_actions(test, flat_actions(test), LOW_COST)
    assert result.metrics["n_trades"] > 10
    assert result.metrics["total_return"] > flat.metrics["total_return"] + 0.001


def test_it_is_deterministic() -> None:
    model, periods = _fitted()
    setup = basic_signal()
    again = fit_supervised(setup.builder, periods[0], periods[1], LOW_COST, SMALL)
    assert again.threshold == model.threshold
    assert again.validation_returns == model.validation_returns
    np.testing.assert_array_equal(
        period_proba(again, setup.builder, periods[2]), period_proba(model, setup.builder, periods[2])
    )


def _with_prices(period: PeriodData, start: int, rng: np.random.Generator) -> PeriodData:
    """``period`` with its fill prices from step ``start`` on replaced by a random walk (a perturbed future)."""
    prices = period.fill_price_T.copy()
    walk = np.exp(np.cumsum(rng.normal(0.0, 5e-4, prices.size - start)))
    prices[start:] = prices[start] * walk
    return dataclasses.replace(period, fill_price_T=prices, log_ret_T=np.diff(np.log(prices)))


def test_causality_perturbing_after_the_train_end_changes_neither_fit_nor_threshold() -> None:
    model, (train, val, test) = _fitted()
    setup = basic_signal()
    rng = np.random.default_rng(0)
    # The test range perturbed: nothing is fitted on it, so the same model and threshold come out.
    other = fit_supervised(setup.builder, train, val, LOW_COST, SMALL)
    perturbed_test = _with_prices(test, 0, rng)
    assert supervised_actions(other, setup.builder, perturbed_test).shape == (test.n_steps,)
    assert other.threshold == model.threshold
    # Validation prices perturbed: the classifier (fitted on training only) predicts the training range alike.
    moved = fit_supervised(setup.builder, train, _with_prices(val, 0, rng), LOW_COST, SMALL)
    np.testing.assert_array_equal(period_proba(moved, setup.builder, train), period_proba(model, setup.builder, train))
    # The training range's last labels are purged: their horizon would read the validation range's prices.
    labels = horizon_labels(train, SMALL.horizon_steps, model.round_trip_cost)
    assert (labels[-SMALL.horizon_steps :] == NO_LABEL).all()


def test_the_cached_model_is_lightgbm_text_and_predicts_bit_for_bit(tmp_path: Path) -> None:
    model, (train, val, test) = _fitted()
    setup = basic_signal()
    key = cache_key({"run": "x"}, SMALL, train, val)
    save_model(model, tmp_path, key)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.json", f"{key}.txt"]
    assert (tmp_path / f"{key}.txt").read_text().startswith("tree")  # LightGBM's own text format
    loaded = load_model(tmp_path, key, SMALL)
    assert loaded is not None and loaded.booster is not None
    assert (loaded.threshold, loaded.validation_returns) == (model.threshold, model.validation_returns)
    assert (loaded.class_counts, loaded.train_rows) == (model.class_counts, model.train_rows)
    assert np.array_equal(period_proba(loaded, setup.builder, test), period_proba(model, setup.builder, test))
    # Another key, other settings or other prices find nothing.
    assert load_model(tmp_path, cache_key({"run": "y"}, SMALL, train, val), SMALL) is None
    assert load_model(tmp_path, key, dataclasses.replace(SMALL, n_estimators=61)) is None
    assert cache_key({"run": "x"}, SMALL, train, _with_prices(val, 0, np.random.default_rng(1))) != key


def test_a_second_evaluation_loads_the_run_s_model_instead_of_refitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rltrade.training import evaluate
    from rltrade.training.pipeline import prepare
    from tests.support.tiny_config import tiny

    prep = prepare(tiny())
    per = prep.test_period
    target = prep.splits.test
    first_model, first = evaluate.supervised_baseline(prep, target, per, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) in (1, 2) and not any(f.endswith((".pkl", ".pickle")) for f in files)

    def refit(*_a: object, **_k: object) -> SupervisedModel:
        raise AssertionError("the supervised baseline was refitted")

    monkeypatch.setattr(evaluate, "fit_supervised", refit)
    again_model, again = evaluate.supervised_baseline(prep, target, per, cache_dir=tmp_path)
    assert again.metrics == first.metrics and again_model.threshold == first_model.threshold
    with pytest.raises(AssertionError, match="refitted"):  # other costs: another key, so a refit
        evaluate.supervised_baseline(
            dataclasses.replace(prep, cfg=prep.cfg.model_copy(update={"env": LOW_COST})),
            target,
            per,
            cache_dir=tmp_path,
        )
