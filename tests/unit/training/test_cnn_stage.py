"""The CNN stage of training: walk-forward serving, nothing learnt from the test range, causality, resume."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from rltrade.config import Config, FeaturesConfig, LayoutConfig, SplitConfig
from rltrade.data.market import MarketFrames
from rltrade.data.splits import Fold, TimeRange, split_span
from rltrade.features.cnn_blocks import NO_MODEL
from rltrade.features.layout import CNN_TIMEFRAMES, build_layout
from rltrade.features.lookahead import LookaheadCheck, derive_frames, perturb_after
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.models.train import TrainedCnn
from rltrade.training.cnn_stage import (
    CnnStageError,
    CnnStageResult,
    fit_cnn_blocks,
    load_cnn_stage,
    run_cnn_stage,
    serve_cnn_blocks,
)
from rltrade.training.pipeline import decision_span, prepare
from rltrade.types import US_PER_SECOND, Timeframe
from tests.support.cnn_models import TINY, cnn_market

torch.set_num_threads(1)

EMBARGO_S = 60
E_US = EMBARGO_S * US_PER_SECOND
CFG = Config(
    cnn=TINY,
    splits=SplitConfig(purge_s=60, embargo_s=EMBARGO_S),
    features=FeaturesConfig(layout=LayoutConfig(name="demo")),
)
LAYOUT = build_layout(CFG.features.layout)
FOLDS = 2


def _splits(frames: MarketFrames) -> Fold:
    return split_span(decision_span(frames, CFG), CFG.splits, step_us=CFG.env.step.us)


@cache
def _fitted() -> tuple[MarketFrames, Fold, CnnStageResult]:
    frames = cnn_market()
    splits = _splits(frames)
    return frames, splits, fit_cnn_blocks(frames, LAYOUT, CFG, splits, n_folds=FOLDS)


def test_rows_are_served_only_by_folds_whose_labels_all_ended_an_embargo_before() -> None:
    _, splits, result = _fitted()
    test_start = splits.test.start_us
    # The synthetic market has 45 days of history: too few daily bars for a first fit, enough for the rest.
    assert set(result.models) == {Timeframe.S1, Timeframe.M1, Timeframe.H1}
    assert "1d" in result.skipped and "labelled windows" in result.skipped["1d"]
    for tf, fold_models in result.models.items():
        out = result.blocks.outputs[tf]
        served = out.model_id_T != NO_MODEL
        assert served.any() and set(np.unique(out.model_id_T[served])) <= set(range(len(fold_models)))
        assert (out.close_us_T[served] >= fold_models[0].info.fit_end_us + E_US).all()
        for k, trained in enumerate(fold_models):
            info = trained.info
            fitted_end = (info.validation or info.train).end_us
            # No label window of any fit ends after the test start (minus the embargo)...
            assert info.fit_end_us <= fitted_end <= test_start - E_US
            # ...and each fold fills only bars closing once its labels had all ended.
            assert (out.close_us_T[out.model_id_T == k] >= info.fit_end_us + E_US).all()
        # The test range is served by the last fold, fitted strictly before it.
        in_test = out.close_us_T >= test_start
        assert in_test.any() and (out.model_id_T[in_test] == len(fold_models) - 1).all()
        # The bar last closed at the agent's first decision has a row (unless the history is still too short).
        if tf is not Timeframe.S1:
            assert out.close_us_T[0] <= splits.train.start_us
    _, _, has = result.blocks.gather(np.array([test_start]))
    assert has[0].tolist() == [tf in result.models for tf in CNN_TIMEFRAMES]


def _record(trained: TrainedCnn) -> str:
    """The fit record without its wall time, as text (a NaN metric equals itself)."""
    return json.dumps({**trained.info.to_dict(), "seconds": 0.0}, sort_keys=True)


def test_changing_the_market_after_the_test_start_changes_no_cnn_row_before_it() -> None:
    frames, splits, result = _fitted()
    t = splits.test.start_us
    changed = fit_cnn_blocks(perturb_after(frames, t, np.random.default_rng(7)), LAYOUT, CFG, splits, n_folds=FOLDS)
    assert changed.models.keys() == result.models.keys()
    for tf, fold_models in result.models.items():
        for a, b in zip(fold_models, changed.models[tf], strict=True):
            # Same fit record (validation losses included: early stopping read nothing after t either)...
            assert _record(a) == _record(b)
            # ...and bit-identical weights.
            for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
                assert torch.equal(wa, wb), f"{tf.value} {name}"
        out, out_changed = result.blocks.outputs[tf], changed.blocks.outputs[tf]
        assert np.array_equal(out.close_us_T, out_changed.close_us_T)
        assert np.array_equal(out.model_id_T, out_changed.model_id_T)
        before = out.close_us_T <= t
        assert np.array_equal(out.hidden_TH[before], out_changed.hidden_TH[before])
        assert np.array_equal(out.preds_T4[before], out_changed.preds_T4[before])
        assert not np.array_equal(out.preds_T4[~before], out_changed.preds_T4[~before]), "the change is real"


def test_saved_models_load_back_to_bit_identical_rows(tmp_path: Path) -> None:
    frames, splits, result = _fitted()
    result.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"metrics.json"} | {
        f"cnn_{tf.value}_fold{k}.pt" for tf, ms in result.models.items() for k in range(len(ms))
    }
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)
    pooled = metrics["timeframes"]["1s"]["pooled"]
    assert {"model", "majority", "persistence"} <= set(pooled)
    assert {"accuracy", "balanced_accuracy", "log_loss", "direction_accuracy"} <= set(pooled["model"])
    assert [f["fold"] for f in metrics["timeframes"]["1m"]["folds"]] == list(range(FOLDS))
    loaded = run_cnn_stage(frames, LAYOUT, CFG, splits, models_dir=tmp_path)
    assert loaded is not None and loaded.loaded and loaded.metrics == metrics
    for tf, out in result.blocks.outputs.items():
        got = loaded.blocks.outputs[tf]
        for field in ("close_us_T", "hidden_TH", "preds_T4", "model_id_T"):
            assert np.array_equal(getattr(got, field), getattr(out, field)), f"{tf.value} {field}"
    # prepare() loads a saved set (a resumed run) and hands the rows to the state.
    prep = prepare(CFG, frames=frames, splits=splits, cnn_dir=tmp_path)
    assert prep.cnn is not None and prep.cnn.loaded and prep.builder.features.cnn is prep.cnn.blocks
    t_B = prep.test_period.clock.time_of(np.arange(3))
    hidden = prep.builder.gather_blocks(t_B)["cnn_hidden"]
    assert np.array_equal(hidden, result.blocks.gather(t_B)[0]) and np.abs(hidden).sum() > 0
    other = Fold(0, splits.train, splits.validation, TimeRange(splits.test.start_us + 1, splits.test.end_us))
    with pytest.raises(CnnStageError, match="retrain the run"):
        load_cnn_stage(frames, CFG, other, tmp_path)


def test_no_cnn_stage_when_disabled_or_without_cnn_blocks_and_timeframes_can_be_left_out() -> None:
    frames, splits, _ = _fitted()
    off = CFG.model_copy(update={"cnn": TINY.model_copy(update={"enabled": False})})
    assert run_cnn_stage(frames, LAYOUT, off, splits) is None
    no_cnn = build_layout(LayoutConfig(name="demo", cnn=False))
    assert run_cnn_stage(frames, no_cnn, CFG, splits) is None
    only_1h = CFG.model_copy(update={"cnn": TINY.model_copy(update={"timeframes": (Timeframe.H1,)})})
    result = fit_cnn_blocks(frames, LAYOUT, only_1h, splits, n_folds=1)
    assert set(result.models) == {Timeframe.H1}
    assert result.skipped["1m"] == "not in cnn.timeframes"
    wide = CFG.model_copy(update={"cnn": TINY.model_copy(update={"hidden": 64})})
    with pytest.raises(CnnStageError, match=r"cnn\.hidden"):
        fit_cnn_blocks(frames, LAYOUT, wide, splits)


def test_the_demo_state_with_cnn_blocks_filled_passes_the_lookahead_check() -> None:
    frames, splits, result = _fitted()

    def state(raw: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, npt.NDArray[np.floating]]:
        cnn = serve_cnn_blocks(raw, result.models, CFG, embargo_us=E_US)
        features = build_market_features(raw, LAYOUT, CFG.features, cnn=cnn)
        return BatchStateBuilder(LAYOUT, features).gather_blocks(t_B)

    check = LookaheadCheck()
    check.register("state", state)
    rng = np.random.default_rng(4)
    # Times where every fitted timeframe serves: the second fold's range and the test range.
    lo = max(ms[-1].extra["predict"]["start_us"] for ms in result.models.values())
    times = np.sort(rng.integers(lo, splits.test.end_us, size=3))
    report = check.run(frames, times, rng=rng)
    assert report.ok, report.leaky()
    assert {"state/cnn_hidden", "state/cnn_predictions"} <= set(report.blocks)
    full = state(derive_frames(frames, (splits.test.end_us // US_PER_SECOND + 1) * US_PER_SECOND), times)
    present = np.abs(full["cnn_predictions"][:, :, :3].sum(axis=2) - 1.0) < 1e-5
    assert present.tolist() == [[tf in result.models for tf in CNN_TIMEFRAMES]] * len(times)
