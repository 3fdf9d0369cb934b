"""Walk-forward CNN outputs: fold plans, masking, the serving rule, and immunity to changes after t."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rltrade.data.splits import TimeRange
from rltrade.features.cnn_blocks import NO_MODEL
from rltrade.features.lookahead import perturb_after
from rltrade.models.blocks import cnn_blocks_from_frames
from rltrade.models.dataset import build_timeframe_data
from rltrade.models.train import fit_cnn
from rltrade.models.walkforward import WalkForwardError, fit_predict, plan_folds, walk_forward_outputs
from rltrade.types import US_PER_DAY, US_PER_HOUR, Timeframe
from tests.support.cnn_models import EMBARGO_US, FEATURES, TINY, cnn_market, tf_data

TF = Timeframe.M1


def _predict_span() -> TimeRange:
    data = tf_data(TF)
    end = int(data.close_us_T[-1])
    return TimeRange(end - 10 * US_PER_DAY, end)


def test_fold_plans_fit_on_everything_before_each_prediction_range() -> None:
    data = tf_data(TF)
    span = _predict_span()
    plans = plan_folds(data, span, 3, embargo_us=EMBARGO_US, validation_fraction=0.2)
    assert [p.index for p in plans] == [0, 1, 2]
    assert plans[0].predict.start_us == span.start_us and plans[-1].predict.end_us == span.end_us
    for a, b in itertools.pairwise(plans):
        assert a.predict.end_us == b.predict.start_us
    for p in plans:
        assert p.train.start_us == int(data.eth.open_us_T[0])
        assert p.validation is not None and p.train.end_us == p.validation.start_us
        assert p.validation.end_us == p.predict.start_us - EMBARGO_US
        assert p.predict.start_us % TF.us == 0


def test_walk_forward_rows_are_masked_before_any_model_and_record_their_fold() -> None:
    data = tf_data(TF)
    plans = plan_folds(data, _predict_span(), 2, embargo_us=EMBARGO_US, validation_fraction=0.2)
    out, results = walk_forward_outputs(data, plans, TINY, embargo_us=EMBARGO_US, seed=0)
    first = plans[0].predict.start_us
    assert out.close_us_T[0] == first and out.close_us_T[-1] == data.close_us_T[-1]
    # Before the first prediction range there is no row: the state masks those times.
    assert not out.gather(np.array([first - 1]))[2].any()
    for res in results:
        inside = (out.close_us_T >= res.plan.predict.start_us) & (out.close_us_T < res.plan.predict.end_us)
        assert (out.model_id_T[inside] == res.plan.index).all()
        # The rule: every label the model saw ended by (bar close − embargo).
        assert (res.trained.info.fit_end_us + EMBARGO_US <= out.close_us_T[inside]).all()
    served = out.model_id_T >= 0
    assert served.mean() > 0.99 and set(np.unique(out.model_id_T[served])) == {0, 1}
    hidden, preds, has = out.gather(out.close_us_T[served][:50])
    assert has.all() and hidden.any() and np.allclose(preds[:, :3].sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(out.model_ids(out.close_us_T), out.model_id_T)


def test_a_prediction_range_inside_the_embargo_is_refused() -> None:
    data = tf_data(TF)
    start = int(data.eth.open_us_T[0])
    train = TimeRange(start, start + 3 * US_PER_DAY)
    predict = TimeRange(train.end_us, train.end_us + US_PER_DAY)
    with pytest.raises(WalkForwardError, match="may only predict from"):
        fit_predict(data, train, None, predict, TINY, embargo_us=US_PER_HOUR, seed=0, model_id=0)
    with pytest.raises(WalkForwardError, match="must start after"):
        fit_predict(data, train, None, TimeRange(start, start + US_PER_DAY), TINY, embargo_us=0, seed=0, model_id=0)


def test_changing_the_data_after_t_changes_no_model_and_no_output_up_to_t() -> None:
    frames = cnn_market()
    tick_start, _ = frames.tick_span_us()  # type: ignore[misc]
    t = tick_start - 2 * US_PER_HOUR
    # Every window of the range is used in every epoch (no subsample), so any leaked label would move a weight.
    train = TimeRange(t - EMBARGO_US - 2 * US_PER_DAY, t - EMBARGO_US)
    cfg = TINY.model_copy(update={"max_train_windows": 10**6})
    changed = perturb_after(frames, t, np.random.default_rng(3))
    data, data_changed = tf_data(TF), build_timeframe_data(changed, TF, TINY, FEATURES)
    assert data.labels is not None and data_changed.labels is not None
    # The check can fail: windows closing in the range whose labels reach past t do change...
    near = data.rows_in(train)
    late = near[data.labels.class_end_us_T[near] > t]
    assert late.size > 0
    assert not np.allclose(data.labels.fwd_ret_T[late], data_changed.labels.fwd_ret_T[late])
    # ...but the fit never reads them, so the retrained model is bit-identical.
    a = fit_cnn(data, train, None, cfg, seed=5)
    b = fit_cnn(data_changed, train, None, cfg, seed=5)
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    around = data.close_us_T[data.rows_in(TimeRange(t - US_PER_DAY, t + US_PER_DAY))]
    rows = cnn_blocks_from_frames(frames, {TF: (a, 0)}, FEATURES, embargo_us=EMBARGO_US, t_us_B=around).outputs[TF]
    rows_changed = cnn_blocks_from_frames(
        changed, {TF: (b, 0)}, FEATURES, embargo_us=EMBARGO_US, t_us_B=around
    ).outputs[TF]
    upto = rows.close_us_T <= t
    assert np.array_equal(rows.close_us_T, rows_changed.close_us_T)
    assert np.array_equal(rows.hidden_TH[upto], rows_changed.hidden_TH[upto])
    assert np.array_equal(rows.preds_T4[upto], rows_changed.preds_T4[upto])
    assert np.array_equal(rows.model_id_T, rows_changed.model_id_T)
    assert not np.allclose(rows.preds_T4[~upto], rows_changed.preds_T4[~upto]), "the perturbation is real"
    # Rows before the fit end plus the embargo are masked: the model may not serve them.
    assert (rows.model_id_T[rows.close_us_T < a.info.fit_end_us + EMBARGO_US] == NO_MODEL).all()
    assert (rows.model_id_T[rows.close_us_T > t] == 0).all()
