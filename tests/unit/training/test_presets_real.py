"""The real-data preset: a clear refusal without the data; with it, a store cut at the month's end and a
test range on the month's last days that nothing fitted reaches."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rltrade.config import Config, ConfigError
from rltrade.data.market import load_market
from rltrade.data.real import RealDataMissing, import_real_klines
from rltrade.training.pipeline import prepare
from rltrade.training.presets import DEMO_AGENT, PRESETS, REAL_OVERRIDES, deep_merge, load_with_preset
from rltrade.types import US_PER_DAY, Timeframe
from tests.support.real_data import require_real


def real_config(store: Path) -> Config:
    return load_with_preset(None, None, deep_merge(REAL_OVERRIDES, {"data": {"store": str(store)}}))


def test_missing_real_data_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RealDataMissing, match=r"does not exist.*shared/data/real.*--preset demo"):
        import_real_klines(real_config(tmp_path / "store").data, tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(RealDataMissing, match="lacks binance_spot_ETHUSDT_1m"):
        import_real_klines(real_config(tmp_path / "store").data, tmp_path / "half")
    assert not (tmp_path / "store").exists()


def test_real_store_ends_with_the_month_and_tests_on_its_last_days(tmp_path: Path) -> None:
    real = require_real()
    cfg = real_config(tmp_path / "store")
    first = import_real_klines(cfg.data, real)
    assert all(r.rows_new > 0 for r in first.appended.values())
    assert all(r.rows_new == 0 for r in import_real_klines(cfg.data, real).appended.values())  # idempotent
    frames = load_market(cfg.data)
    month_end = frames.span_us("eth", Timeframe.M1)[1]
    for role in ("eth", "btc"):
        assert set(frames.bars[role]) == {Timeframe.M1, Timeframe.H1, Timeframe.D1}
        for tf, df in frames.bars[role].items():
            assert int(df["open_us"].max()) + tf.us <= month_end, f"{role} {tf} bar after the month"
        assert frames.trades[role].height == 0
    prep = prepare(cfg, frames=frames)
    names = [b.name for b in prep.layout.blocks]
    assert names == ["eth_1m", "eth_1h", "eth_1d", "btc_1m", "pivots", "regime", "flags"]
    test = prep.splits.test
    assert test.end_us == month_end
    assert 4 * US_PER_DAY <= test.duration_us <= 5 * US_PER_DAY
    validation = prep.splits.validation
    assert validation is not None and 7 * US_PER_DAY <= validation.duration_us <= 8 * US_PER_DAY
    window, confirm = prep.selection_windows(validation)
    assert window.duration_us >= 5 * US_PER_DAY and confirm.duration_us >= 2 * US_PER_DAY  # days to select on
    selection = prep.validation_slice()
    assert selection is not None and selection.n_steps >= 5 * 1440 - 1  # the whole selection window
    for fitted in prep.splits.fitted():
        assert fitted.end_us + cfg.splits.purge_us + cfg.splits.embargo_us <= test.start_us
    assert prep.test_period.n_steps > 4 * 1440


def test_the_real_preset_trains_the_demo_agent_on_a_minute_clock() -> None:
    cfg = load_with_preset(None, "real")
    demo = load_with_preset(None, "demo")
    assert demo.agent.block_dropout > 0.0, "block dropout is the demo's, chosen on the planted signal only"
    assert cfg.agent == demo.agent.model_copy(update={"block_dropout": 0.0})
    assert cfg.train.total_steps == demo.train.total_steps
    assert cfg.train.eval_max_steps == REAL_OVERRIDES["train"]["eval_max_steps"] != demo.train.eval_max_steps
    assert cfg.env.step is Timeframe.M1 and not cfg.features.layout.ticks and not cfg.features.layout.returns
    real, demo_preset = PRESETS["real"], PRESETS["demo"]
    assert "agent" not in REAL_OVERRIDES and real.overrides["agent"] == dict(DEMO_AGENT)
    assert real.data_step is not None and real.data_step.run is import_real_klines and demo_preset.data_step is None


def test_presets_are_read_only_and_an_unknown_one_names_the_choices() -> None:
    with pytest.raises(TypeError):
        PRESETS["mine"] = PRESETS["demo"]  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"unknown training preset 'basic'; use one of: demo, real, full"):
        load_with_preset(None, "basic")


def test_the_real_1h_preset_walks_forward_on_an_hourly_clock() -> None:
    from rltrade.data.real import import_real_hourly

    cfg = load_with_preset(None, "real-1h")
    assert cfg.env.step is Timeframe.H1 and cfg.data.timeframes == (Timeframe.H1, Timeframe.D1)
    assert cfg.splits.walk_forward_folds >= 8 and not cfg.features.layout.ticks
    assert cfg.agent == load_with_preset(None, "real").agent
    step = PRESETS["real-1h"].data_step
    assert step is not None and step.run is import_real_hourly


def test_real_1h_store_has_years_of_hours_and_days_resampled_from_them(tmp_path: Path) -> None:
    from rltrade.data.real import import_real_hourly
    from rltrade.data.resample import resample_bars
    from rltrade.training.walkforward import fold_plan

    real = require_real()
    cfg = load_with_preset(None, "real-1h", {"data": {"store": str(tmp_path / "store")}})
    import_real_hourly(cfg.data, real)
    assert all(r.rows_new == 0 for r in import_real_hourly(cfg.data, real).appended.values())  # idempotent
    frames = load_market(cfg.data)
    for role in ("eth", "btc"):
        hourly, daily = frames.bars[role][Timeframe.H1], frames.bars[role][Timeframe.D1]
        resampled = resample_bars(hourly, Timeframe.H1, Timeframe.D1)
        assert daily.height > 8 * 365 and daily.equals(resampled.filter(resampled["open_us"].is_in(daily["open_us"])))
        assert int(daily["open_us"].min()) < int(hourly["open_us"].min()) + 2 * US_PER_DAY  # 1d from 2018, not 2020
    folds = fold_plan(cfg, cfg.splits.walk_forward_folds, frames=frames)
    assert len(folds) == 8
    assert folds[0].train.start_us < folds[-1].test.start_us - 6 * 365 * US_PER_DAY  # years apart
    for a, b in itertools.pairwise(folds):
        assert a.test.end_us <= b.test.start_us


def test_the_real_month_preset_has_days_of_validation_and_no_1d_block() -> None:
    from rltrade.data.splits import TimeRange
    from rltrade.features.layout import build_layout
    from rltrade.training.walkforward import plan_folds

    cfg = load_with_preset(None, "real-month", {"data": {"store": "somewhere"}})
    assert PRESETS["real-month"].data_step is None, "a month is imported by the user into a store of its own"
    assert cfg.env.step is Timeframe.M1 and cfg.data.source == "store" and str(cfg.data.store) == "somewhere"
    assert cfg.data.timeframes == (Timeframe.M1, Timeframe.H1)
    assert {b.timeframe for b in build_layout(cfg.features.layout).blocks if b.kind == "bars"} == {
        Timeframe.M1,
        Timeframe.H1,
    }, "a month holds ~30 daily bars, fewer than a 1d window and its warm-up"
    assert cfg.agent == load_with_preset(None, "real").agent
    month = TimeRange(0, 30 * US_PER_DAY)
    folds = plan_folds(cfg, month, cfg.splits.walk_forward_folds)
    assert len(folds) == 3
    for f in folds:
        assert f.validation is not None
        assert f.validation.end_us - f.validation.start_us > 2 * US_PER_DAY, "validation: days, not an hour"
        assert f.test.end_us - f.test.start_us >= 7 * US_PER_DAY
        # checkpoints are chosen on the validation range's first 70 %, within eval_max_steps one-minute steps
        assert 0.7 * (f.validation.end_us - f.validation.start_us) <= cfg.train.eval_max_steps * 60_000_000
