"""Strictly walk-forward CNN outputs: "train on range R, predict for range S", fold after fold.

The rule (SPEC §2.3): the model used for a bar closing at ``t`` was fitted only on label windows that
ended by ``t − embargo``. :func:`fit_predict` is the one call later stages reuse per fold: it fits on
``train`` (early-stopped on ``validation``), then refuses to predict for ``S`` unless
``fit_end_us + embargo <= S.start`` (``fit_end_us``: the end of the latest label window the fit used,
training and validation alike, :class:`~rltrade.models.train.FitInfo`); the check is on what the fit
actually read, not on the ranges it was given.

:func:`plan_folds` cuts a prediction span into consecutive ranges ``S_0, S_1, …``; fold ``k`` fits on
every bar of the timeframe's history from its start up to ``S_k.start − embargo`` (expanding), the last
``validation_fraction`` of it for early stopping. Labels that would end past a range are dropped by
:meth:`~rltrade.models.dataset.TimeframeData.fit_rows` (exact purge).

:func:`walk_forward_outputs` runs the folds and assembles one
:class:`~rltrade.features.cnn_blocks.CnnOutputs` per timeframe: a row per bar from the first predicted
bar to the end of the data, ``model_id`` = the fold that filled it, -1 (masked) where no fold did.
Before the first predicted bar there are no rows: the state masks those times too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rltrade.config import CnnConfig
from rltrade.data.splits import SplitError, TimeRange
from rltrade.features.cnn_blocks import NO_MODEL, CnnOutputs
from rltrade.models.bridge import compute_rows, row_model_ids
from rltrade.models.dataset import TimeframeData
from rltrade.models.train import Progress, TrainedCnn, fit_cnn


class WalkForwardError(SplitError):
    """A fold would use a model fitted on labels that end too late for the period it predicts."""


@dataclass(frozen=True)
class FoldPlan:
    """Fit on ``train`` (select on ``validation``), then predict the bars closing in ``predict``."""

    index: int
    train: TimeRange
    validation: TimeRange | None
    predict: TimeRange


@dataclass(frozen=True, eq=False)
class FoldResult:
    """One fold's model and its rows: bars closing in the prediction range."""

    plan: FoldPlan
    trained: TrainedCnn
    rows: npt.NDArray[np.int64]
    hidden_RH: npt.NDArray[np.float32]
    preds_R4: npt.NDArray[np.float32]
    model_id_R: npt.NDArray[np.int32]


def fold_seed(seed: int, index: int) -> int:
    """Derive a fold's own seed derived from the run seed (independent streams per fold)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def fit_predict(
    data: TimeframeData,
    train: TimeRange,
    validation: TimeRange | None,
    predict: TimeRange,
    cfg: CnnConfig,
    *,
    embargo_us: int,
    seed: int,
    model_id: int,
    progress: Progress | None = None,
    log_dir: Path | None = None,
) -> FoldResult:
    """Fit on ``train`` / ``validation``, predict every bar closing in ``predict`` (see the module docstring)."""
    if predict.start_us < (validation or train).end_us:
        raise WalkForwardError(
            f"{data.tf.value} CNN: the prediction range [{predict.start_us}, {predict.end_us}) must start after "
            f"the fitted ranges end ({(validation or train).end_us})"
        )
    trained = fit_cnn(data, train, validation, cfg, seed=seed, progress=progress, log_dir=log_dir)
    trained = replace(trained, extra={**trained.extra, "model_id": model_id, "predict": predict.to_dict()})
    if not bool(trained.may_serve(predict.start_us, embargo_us)):
        raise WalkForwardError(
            f"{data.tf.value} CNN fold {model_id}: the fit used labels ending at {trained.info.fit_end_us}, so it "
            f"may only predict from {trained.info.fit_end_us + embargo_us} (embargo {embargo_us} µs), but the "
            f"prediction range starts at {predict.start_us}; end the fitted ranges earlier"
        )
    rows = data.rows_in(predict)
    hidden, preds = compute_rows(trained, data, rows)
    ids = row_model_ids(trained, data, rows, model_id, embargo_us)
    return FoldResult(FoldPlan(model_id, train, validation, predict), trained, rows, hidden, preds, ids)


def plan_folds(
    data: TimeframeData,
    predict: TimeRange,
    n_folds: int,
    *,
    embargo_us: int,
    validation_fraction: float,
    history_start_us: int | None = None,
) -> list[FoldPlan]:
    """Consecutive prediction ranges over ``predict``, each fitted on all history before it (expanding)."""
    if n_folds < 1:
        raise SplitError(f"n_folds must be >= 1, got {n_folds}")
    tf_us = data.tf.us
    start = history_start_us if history_start_us is not None else int(data.eth.open_us_T[0]) if data.n_bars else 0
    edges = [predict.start_us + (predict.duration_us * k // n_folds) // tf_us * tf_us for k in range(n_folds)]
    edges.append(predict.end_us)
    plans: list[FoldPlan] = []
    for k in range(n_folds):
        cutoff = edges[k] - embargo_us
        if cutoff <= start:
            raise SplitError(
                f"{data.tf.value} CNN fold {k}: no history before its prediction range starts at {edges[k]} "
                f"(history starts at {start}, embargo {embargo_us} µs); start predicting later"
            )
        validation = None
        train_end = cutoff
        if validation_fraction > 0:
            train_end = start + int((cutoff - start) * (1 - validation_fraction)) // tf_us * tf_us
            validation = TimeRange(train_end, cutoff)
        plans.append(FoldPlan(k, TimeRange(start, train_end), validation, TimeRange(edges[k], edges[k + 1])))
    return plans


def walk_forward_outputs(
    data: TimeframeData,
    plans: list[FoldPlan],
    cfg: CnnConfig,
    *,
    embargo_us: int,
    seed: int,
    progress: Progress | None = None,
    log_dir: Path | None = None,
) -> tuple[CnnOutputs, list[FoldResult]]:
    """Run every fold of ``plans`` and assemble the timeframe's rows (see the module docstring)."""
    if not plans:
        raise SplitError("walk-forward needs at least one fold")
    for a, b in itertools.pairwise(plans):
        if b.predict.start_us < a.predict.end_us:
            raise SplitError(f"fold {b.index}'s prediction range starts before fold {a.index}'s ends")
    results = [
        fit_predict(
            data,
            p.train,
            p.validation,
            p.predict,
            cfg,
            embargo_us=embargo_us,
            seed=fold_seed(seed, p.index),
            model_id=p.index,
            progress=progress,
            log_dir=None if log_dir is None else log_dir / f"fold_{p.index}",
        )
        for p in plans
    ]
    first = int(np.searchsorted(data.close_us_T, plans[0].predict.start_us, side="left"))
    n = data.n_bars - first
    hidden = np.zeros((n, cfg.hidden), np.float32)
    preds = np.zeros((n, 4), np.float32)
    ids = np.full(n, NO_MODEL, np.int32)
    for res in results:
        hidden[res.rows - first] = res.hidden_RH
        preds[res.rows - first] = res.preds_R4
        ids[res.rows - first] = res.model_id_R
    return CnnOutputs(data.tf, data.close_us_T[first:], hidden, preds, ids), results
