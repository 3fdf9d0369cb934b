"""CNN rows in the state: as-of gather, masking by model id, flags, streaming rows, errors."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from rltrade.config import DataConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import MarketFrames, load_market
from rltrade.features.cnn_blocks import NO_MODEL, CnnBlocks, CnnOutputs, CnnOutputsError, CnnStream, CnnStreams
from rltrade.features.layout import CNN_TIMEFRAMES, build_layout
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import US_PER_HOUR, Timeframe

H = 128


def _outputs(tf: Timeframe, n: int, first_close: int, model_id: np.ndarray | None = None) -> CnnOutputs:
    close = first_close + tf.us * np.arange(n, dtype=np.int64)
    k = np.arange(n, dtype=np.float32)
    hidden = np.repeat(k[:, None], H, axis=1) + 1.0
    preds = np.stack([np.full(n, 0.2), np.full(n, 0.3), np.full(n, 0.5), k], axis=1).astype(np.float32)
    ids = np.zeros(n, np.int32) if model_id is None else model_id.astype(np.int32)
    return CnnOutputs(tf, close, hidden, preds, ids)


def test_gather_reads_the_row_of_the_last_closed_bar() -> None:
    t0 = 10 * US_PER_HOUR
    out = _outputs(Timeframe.H1, 4, t0)  # rows visible from 10:00, 11:00, 12:00, 13:00
    t_B = np.array([t0 - 1, t0, t0 + US_PER_HOUR - 1, t0 + US_PER_HOUR, t0 + 10 * US_PER_HOUR])
    hidden, preds, has = out.gather(t_B)
    assert has.tolist() == [False, True, True, True, True]
    assert hidden[:, 0].tolist() == [0.0, 1.0, 1.0, 2.0, 4.0]
    assert preds[0].tolist() == [0.0] * 4
    assert preds[3, 3] == 1.0


def test_rows_without_a_model_are_masked_and_report_their_id() -> None:
    ids = np.array([NO_MODEL, 0, 0, 1])
    out = _outputs(Timeframe.M1, 4, 60_000_000, ids)
    t_B = out.close_us_T + 1
    hidden, preds, has = out.gather(t_B)
    assert has.tolist() == [False, True, True, True]
    assert np.all(hidden[0] == 0) and np.all(preds[0] == 0)
    assert out.model_ids(t_B).tolist() == [NO_MODEL, 0, 0, 1]
    assert out.model_ids(np.array([0])).tolist() == [NO_MODEL]


def test_blocks_flags_any_and_all_timeframes() -> None:
    t0 = 2 * 86_400_000_000
    blocks = CnnBlocks({tf: _outputs(tf, 3, t0) for tf in (Timeframe.S1, Timeframe.M1)})
    hidden, preds, has = blocks.gather(np.array([t0]))
    assert hidden.shape == (1, 4, H) and preds.shape == (1, 4, 4)
    assert has.tolist() == [[True, True, False, False]]
    full = CnnBlocks({tf: _outputs(tf, 3, t0) for tf in CNN_TIMEFRAMES})
    assert full.gather(np.array([t0]))[2].all()
    assert full.model_ids(np.array([t0 - 1])).tolist() == [[NO_MODEL] * 4]


@pytest.mark.parametrize(
    "bad",
    [
        lambda: CnnOutputs(Timeframe.M1, np.array([2, 1]), np.zeros((2, H)), np.zeros((2, 4)), np.zeros(2)),
        lambda: CnnOutputs(Timeframe.M1, np.array([1, 2]), np.zeros((2, H)), np.zeros((2, 3)), np.zeros(2)),
        lambda: CnnOutputs(Timeframe.M1, np.array([1]), np.full((1, H), np.nan), np.zeros((1, 4)), np.zeros(1)),
        lambda: CnnBlocks({Timeframe.M1: _outputs(Timeframe.H1, 2, 0)}),
        lambda: CnnBlocks({Timeframe.M1: CnnOutputs.empty(Timeframe.M1, hidden=64)}),
    ],
)
def test_malformed_outputs_are_refused(bad: object) -> None:
    with pytest.raises(CnnOutputsError):
        bad()  # type: ignore[operator]


def test_stream_latest_row_and_order() -> None:
    s = CnnStream(Timeframe.M1, keep=2)
    assert s.latest(10)[2] is False
    s.append(60, np.ones(H), [0.1, 0.2, 0.7, 1.0], 3)
    s.append(120, np.full(H, 2.0), [0.1, 0.2, 0.7, 2.0], NO_MODEL)
    s.append(180, np.full(H, 3.0), [0.1, 0.2, 0.7, 3.0], 3)
    h, p, present = s.latest(179)
    assert present is False  # the row of the bar closed at 120 has no model
    h, p, present = s.latest(180)
    assert present and h[0] == 3.0 and p[3] == 3.0
    with pytest.raises(CnnOutputsError, match="not after"):
        s.append(180, np.ones(H), [0, 0, 1, 0], 0)
    streams = CnnStreams()
    streams[Timeframe.S1].append(5, np.ones(H), [0.3, 0.3, 0.4, 0.0], 0)
    hidden, preds, has = streams.rows_at(5)
    assert preds[0, 2] == pytest.approx(0.4)
    assert hidden.shape == (4, H) and has.tolist() == [True, False, False, False]


@cache
def _market() -> MarketFrames:
    return load_market(DataConfig(synthetic=SyntheticConfig(seed=3, history_days=12, tick_days=0.02)))


def test_batch_builder_fills_cnn_blocks_and_flags() -> None:
    frames = _market()
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo"))
    layout = build_layout(cfg.layout)
    start, _ = frames.tick_span_us()  # type: ignore[misc]
    first = (start // 60_000_000 + 1) * 60_000_000
    outs = {tf: _outputs(tf, 5, first) for tf in CNN_TIMEFRAMES}
    outs[Timeframe.M1] = _outputs(Timeframe.M1, 5, first, np.array([NO_MODEL, 0, 0, 0, 0]))
    feats = build_market_features(frames, layout, cfg, cnn=CnnBlocks(outs))
    t_B = np.array([first - 1, first, first + 60_000_000])
    blocks = BatchStateBuilder(layout, feats).gather_blocks(t_B)
    names = layout.flag_names
    flags = blocks["flags"]
    assert flags[:, names.index("has_cnn_hidden")].tolist() == [0.0, 1.0, 1.0]
    assert flags[:, names.index("has_cnn_predictions")].tolist() == [0.0, 1.0, 1.0]
    # At `first` the 1m row has no model: present, but not every timeframe.
    assert flags[:, names.index("cnn_model_present")].tolist() == [0.0, 0.0, 1.0]
    assert np.all(blocks["cnn_hidden"][1, 1] == 0) and np.all(blocks["cnn_hidden"][2, 1] == 2.0)
    assert blocks["cnn_predictions"][2, 1].tolist() == pytest.approx([0.2, 0.3, 0.5, 1.0])
    plain = BatchStateBuilder(layout, build_market_features(frames, layout, cfg)).gather_blocks(t_B)
    for name, values in plain.items():
        if not name.startswith("cnn_") and name != "flags":
            assert np.array_equal(values, blocks[name]), name
