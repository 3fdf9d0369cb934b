"""The real-data preset: a clear refusal without the data; with it, a store cut at the month's end and a
test range on the month's last days that nothing fitted reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.config import Config
from rltrade.data.market import load_market
from rltrade.training.loop import prepare
from rltrade.training.presets import deep_merge, load_with_preset
from rltrade.training.presets_real import REAL_PRESET, RealDataMissing, ensure_real_store
from rltrade.types import US_PER_DAY, Timeframe
from tests.support.real_data import require_real


def real_config(store: Path) -> Config:
    return load_with_preset(None, None, deep_merge(REAL_PRESET, {"data": {"store": str(store)}}))


def test_missing_real_data_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RealDataMissing, match=r"does not exist.*shared/data/real.*--preset demo"):
        ensure_real_store(real_config(tmp_path / "store"), tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(RealDataMissing, match="lacks binance_spot_ETHUSDT_1m"):
        ensure_real_store(real_config(tmp_path / "store"), tmp_path / "half")
    assert not (tmp_path / "store").exists()


def test_real_store_ends_with_the_month_and_tests_on_its_last_days(tmp_path: Path) -> None:
    real = require_real()
    cfg = real_config(tmp_path / "store")
    first = ensure_real_store(cfg, real)
    assert all(r.rows_new > 0 for r in first.appended.values())
    assert all(r.rows_new == 0 for r in ensure_real_store(cfg, real).appended.values())  # idempotent
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
    for fitted in prep.splits.fitted():
        assert fitted.end_us + (cfg.splits.purge_s + cfg.splits.embargo_s) * 1_000_000 <= test.start_us
    assert prep.test_period.n_steps > 4 * 1440


def test_the_real_preset_trains_the_demo_agent_on_a_minute_clock() -> None:
    from rltrade.training.presets import PRESETS

    cfg = load_with_preset(None, "real")
    demo = load_with_preset(None, "demo")
    assert cfg.agent == demo.agent and cfg.train.total_steps == demo.train.total_steps
    assert cfg.train.eval_max_steps == REAL_PRESET["train"]["eval_max_steps"] != demo.train.eval_max_steps
    assert cfg.env.step is Timeframe.M1 and not cfg.features.layout.ticks and not cfg.features.layout.returns
    assert "agent" not in REAL_PRESET and PRESETS["real"]["agent"] is PRESETS["demo"]["agent"]
