"""CNN training: exact purge of labels, determinism, early stopping, TensorBoard logs, errors; model files."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from rltrade.data.splits import TimeRange
from rltrade.models.bridge import run_cnn
from rltrade.models.dataset import CnnDataError
from rltrade.models.io import FORMAT_VERSION, ModelFileError, load_cnn, save_cnn
from rltrade.models.train import TrainedCnn, fit_cnn, windows_per_epoch
from rltrade.types import US_PER_DAY, Timeframe
from tests.support.cnn_models import TINY, tf_data

TF = Timeframe.M1


def _ranges() -> tuple[TimeRange, TimeRange]:
    data = tf_data(TF)
    start = int(data.eth.open_us_T[0])
    return TimeRange(start, start + 5 * US_PER_DAY), TimeRange(start + 5 * US_PER_DAY, start + 7 * US_PER_DAY)


def _fit(seed: int = 0, **kw: object) -> TrainedCnn:
    train, val = _ranges()
    return fit_cnn(tf_data(TF), train, val, TINY.model_copy(update=kw), seed=seed)


@cache
def _fitted() -> TrainedCnn:
    return _fit(0)


def test_fit_rows_never_read_past_their_range() -> None:
    data = tf_data(TF)
    train, _ = _ranges()
    rows = data.fit_rows(train)
    assert data.labels is not None
    assert rows.size > 1000
    assert (data.close_us_T[rows] >= train.start_us).all() and (data.close_us_T[rows] < train.end_us).all()
    assert (data.labels.class_end_us_T[rows] <= train.end_us).all()
    # The purge bites: the windows closing in the last horizon − 1 minutes have labels ending after the range.
    inside = data.rows_in(train)
    assert (data.labels.class_end_us_T[inside] > train.end_us).sum() == TINY.horizon(TF) - 1
    assert inside.size - rows.size >= TINY.horizon(TF) - 1
    _, usable = data.pivot_target(rows, train.end_us)
    assert (data.labels.pivot_end_us_T[rows][usable] <= train.end_us).all()


def test_same_seed_same_weights_and_the_global_rng_is_untouched() -> None:
    before = torch.random.get_rng_state()
    a, b, c = _fitted(), _fit(0), _fit(1)
    assert torch.equal(torch.random.get_rng_state(), before)
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


def test_fit_record_and_early_stopping() -> None:
    trained = _fit(0, max_epochs=6, patience=1)
    info = trained.info
    train, val = _ranges()
    assert (info.train, info.validation, info.tf) == (train, val, TF)
    assert info.fit_end_us <= val.end_us
    assert sum(info.class_freq_train) == pytest.approx(1.0)
    assert 1 <= info.best_epoch <= info.epochs <= 6
    assert info.epochs == 6 or info.epochs - info.best_epoch == 1
    assert info.best_val_loss is not None and info.val_metrics is not None
    assert not trained.model.training
    assert trained.may_serve(info.fit_end_us + 10, 10) and not trained.may_serve(info.fit_end_us + 9, 10)


def test_tensorboard_logs_are_written(tmp_path: Path) -> None:
    train, val = _ranges()
    fit_cnn(tf_data(TF), train, val, TINY, seed=0, log_dir=tmp_path / "tb")
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_unusable_ranges_are_refused_with_a_reason() -> None:
    data = tf_data(TF)
    train, val = _ranges()
    late = TimeRange(int(data.close_us_T[-1]) + 1, int(data.close_us_T[-1]) + US_PER_DAY)
    with pytest.raises(CnnDataError, match="no labelled window in the training range"):
        fit_cnn(data, late, None, TINY, seed=0)
    with pytest.raises(CnnDataError, match="validation must start after"):
        fit_cnn(data, val, train, TINY, seed=0)


def test_model_file_round_trip(tmp_path: Path) -> None:
    trained = _fitted()
    path = tmp_path / "models" / "cnn_1m.pt"
    save_cnn(trained, path)
    save_cnn(trained, path)  # overwriting is atomic too
    assert [p.name for p in path.parent.iterdir()] == ["cnn_1m.pt"], "no temporary file is left behind"
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == FORMAT_VERSION and raw["fit"]["train"] == trained.info.train.to_dict()
    loaded = load_cnn(path)
    assert loaded.info == trained.info and loaded.config == trained.config
    x = tf_data(TF).windows(np.arange(200, 264))
    for got, want in zip(run_cnn(loaded.model, x), run_cnn(trained.model, x), strict=True):
        assert np.array_equal(got, want)


def test_bad_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no CNN model file"):
        load_cnn(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_cnn(junk)
    path = tmp_path / "m.pt"
    save_cnn(_fitted(), path)
    raw = torch.load(path, weights_only=True)
    raw["version"] = FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(ModelFileError, match="newer"):
        load_cnn(path)
    raw["format"] = "something else"
    torch.save(raw, path)
    with pytest.raises(ModelFileError, match="not an rltrade CNN"):
        load_cnn(path)
    assert not os.access(tmp_path / "m.pt.tmp", os.F_OK)


def test_a_fractional_budget_scales_the_windows_per_epoch_with_the_data() -> None:
    cfg = TINY.model_copy(update={"train_window_fraction": 0.1, "max_train_windows": 5_000, "min_fit_windows": 300})
    assert [windows_per_epoch(cfg, n) for n in (1_000, 20_000, 40_000, 1_000_000)] == [300, 2_000, 4_000, 5_000]
    assert windows_per_epoch(TINY, 1_000_000) == TINY.max_train_windows  # unset: the fixed cap, as before
    trained = _fit(0, train_window_fraction=0.1, max_epochs=1, min_fit_windows=50)
    rows = tf_data(TF).fit_rows(_ranges()[0]).size
    assert trained.info.windows_seen == min(TINY.max_train_windows, max(50, -(-rows // 10)))
