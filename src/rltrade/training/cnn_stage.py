"""The CNN stage of ``rltrade train``: walk-forward CNNs per timeframe whose rows fill the state's CNN blocks.

It sits between the features and the agent (SPEC §2.3, §2.7) and only drives :mod:`rltrade.models`.
Per timeframe ``tf`` of the layout's CNN blocks (and of ``cnn.timeframes``), with ``test`` the agent's
test range and ``E`` the embargo (``splits.embargo_s``)::

    serve span  [S0, end of data). S0 is the agent's training start floored to a bar close of tf, so the
                bar last closed at the first decision time has a row; later when the history before it
                is too short for a first fit of ``min_fit_windows`` labelled windows (and one for early
                stopping). Bars closing before S0 have no row: the state masks them.
    folds       [S0, test.start) cut into ``n_folds`` consecutive prediction ranges
                (models.walkforward.plan_folds). Fold k fits on every bar of tf from the first up to its
                range's start − E (the last ``validation_fraction`` for early stopping); fit_rows purges
                every window whose label would end later, so each label it learns from ended by then.
    test range  served by the last fold, its prediction range extended to the end of the data: no CNN
                ever learns from a label that ends after test.start − E, and the agent's validation range
                is served walk-forward like its training range.

A row's ``model_id`` is the fold that filled it; -1 (masked) in the indicator warm-up or where no fold
may serve (models.train.TrainedCnn.may_serve). A timeframe without the bars for one fit before
``test.start`` is skipped with its reason logged and recorded: its rows stay masked, nothing raises.

Saved in the run (:meth:`CnnStageResult.save`): ``cnn/cnn_<tf>_fold<k>.pt`` (models.io, atomic) and,
last, ``cnn/metrics.json``: per timeframe and fold the out-of-sample accuracy, balanced accuracy, log
loss and direction accuracy of the CNN beside the majority and persistence baselines
(models.evaluate), pooled over the folds, and the skipped timeframes with their reasons. On ``--resume``
:func:`load_cnn_stage` reads the models back (``weights_only``) and recomputes the rows with the same
code and batches, so a resumed run sees bit-identical states.
"""

from __future__ import annotations

import json
import logging
import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rltrade.config import Config
from rltrade.data.atomic import write_json_atomic
from rltrade.data.cleaning import fmt_time
from rltrade.data.market import MarketFrames
from rltrade.data.splits import Fold, SplitError, TimeRange
from rltrade.features.cnn_blocks import NO_MODEL, CnnBlocks, CnnOutputs
from rltrade.features.layout import CNN_HIDDEN, CNN_TIMEFRAMES, StateLayout
from rltrade.models.bridge import compute_rows, row_model_ids
from rltrade.models.dataset import CnnDataError, TimeframeData, build_timeframe_data
from rltrade.models.evaluate import fold_predictions
from rltrade.models.io import load_cnn, save_cnn
from rltrade.models.metrics import class_metrics
from rltrade.models.train import Progress, TrainedCnn
from rltrade.models.walkforward import FoldPlan, FoldResult, fold_seed, plan_folds, walk_forward_outputs
from rltrade.types import Timeframe, ceil_to_grid

logger = logging.getLogger(__name__)

METRICS_FILE: Final = "metrics.json"
PREDICTORS: Final = ("model", "majority", "persistence")


class CnnStageError(ValueError):
    """The CNN config does not fit the state layout, or a run's saved CNN models are missing or mismatched."""


@dataclass(frozen=True, eq=False)
class CnnStageResult:
    """The CNN blocks of the state, the fold models behind them and their out-of-sample figures."""

    blocks: CnnBlocks
    models: Mapping[Timeframe, tuple[TrainedCnn, ...]]
    """Per timeframe, its fold models; a model's index is the ``model_id`` of the rows it filled."""
    metrics: Mapping[str, Any]
    """JSON-safe: ``timeframes`` (per timeframe: ``folds`` and ``pooled`` figures), ``skipped`` (reasons)."""
    loaded: bool = False
    """Read back from a run folder rather than fitted now."""

    @property
    def skipped(self) -> dict[str, str]:
        """The timeframes that got no CNN, each with the reason."""
        return dict(self.metrics["skipped"])

    def fitted_ranges(self) -> list[TimeRange]:
        """Every range a CNN was fitted or early-stopped on (the bundle's evaluation refuses them)."""
        return [r for ms in self.models.values() for m in ms for r in (m.info.train, m.info.validation) if r]

    def summary(self) -> dict[str, Any]:
        """Pooled out-of-sample figures per timeframe and the skipped ones (for the run manifest)."""
        return {
            "timeframes": {tf: v["pooled"] for tf, v in self.metrics["timeframes"].items()},
            "skipped": self.skipped,
        }

    def save(self, folder: Path) -> None:
        """Write every fold model, then ``metrics.json`` (its presence marks a complete set)."""
        for tf, fold_models in self.models.items():
            for k, trained in enumerate(fold_models):
                save_cnn(trained, folder / model_file(tf, k))
        write_json_atomic(folder / METRICS_FILE, dict(self.metrics))


def model_file(tf: Timeframe, fold: int) -> str:
    return f"cnn_{tf.value}_fold{fold}.pt"


def has_cnn_blocks(layout: StateLayout) -> bool:
    return layout.has("cnn_hidden") or layout.has("cnn_predictions")


def needs_cnn(layout: StateLayout, cfg: Config) -> bool:
    """Whether the run has a CNN stage: the layout has CNN blocks and ``cnn.enabled``."""
    return cfg.cnn.enabled and has_cnn_blocks(layout)


def run_cnn_stage(
    frames: MarketFrames,
    layout: StateLayout,
    cfg: Config,
    splits: Fold,
    *,
    models_dir: Path | None = None,
    progress: Progress | None = None,
) -> CnnStageResult | None:
    """Return the CNN stage that ``prepare`` uses.

    None without a CNN stage; the models saved in ``models_dir`` when it holds a complete set (a resumed or
    evaluated run); else models fitted now (not saved: the caller saves them into its run).
    """
    if not needs_cnn(layout, cfg):
        return None
    if models_dir is not None and (models_dir / METRICS_FILE).is_file():
        return load_cnn_stage(frames, cfg, splits, models_dir)
    return fit_cnn_blocks(frames, layout, cfg, splits, progress=progress)


def fit_cnn_blocks(
    frames: MarketFrames,
    layout: StateLayout,
    cfg: Config,
    splits: Fold,
    *,
    progress: Progress | None = None,
    models_dir: Path | None = None,
    n_folds: int | None = None,
    min_fit_windows: int | None = None,
) -> CnnStageResult:
    """Fit every needed timeframe's CNN walk-forward (module docstring); save into ``models_dir`` if given."""
    ccfg = cfg.cnn
    n_folds = ccfg.walk_forward_folds if n_folds is None else n_folds
    min_fit_windows = ccfg.min_fit_windows if min_fit_windows is None else min_fit_windows
    if ccfg.hidden != CNN_HIDDEN:
        raise CnnStageError(
            f"cnn.hidden is {ccfg.hidden} but the state's cnn_hidden block holds {CNN_HIDDEN} units per timeframe; "
            f"set cnn.hidden: {CNN_HIDDEN}"
        )
    embargo_us = cfg.splits.embargo_us
    needed = CNN_TIMEFRAMES if has_cnn_blocks(layout) else ()
    outputs: dict[Timeframe, CnnOutputs] = {}
    models: dict[Timeframe, tuple[TrainedCnn, ...]] = {}
    per_tf: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for j, tf in enumerate(needed):
        planned = _plan_timeframe(frames, cfg, tf, splits, n_folds, min_fit_windows)
        if not isinstance(planned, str):
            data, plans = planned
            # Each timeframe draws from its own stream; walk_forward_outputs splits it per fold.
            seed = fold_seed(cfg.seed, j)
            try:
                out, results = walk_forward_outputs(
                    data, plans, ccfg, embargo_us=embargo_us, seed=seed, progress=progress
                )
            except CnnDataError as exc:
                planned = str(exc)
            else:
                outputs[tf], models[tf] = out, tuple(r.trained for r in results)
                per_tf[tf.value] = _scores(data, results, ccfg.horizon(tf))
                continue
        logger.info("%s CNN skipped, its state rows stay masked: %s", tf.value, planned)
        skipped[tf.value] = planned
    metrics = {
        "test_start_us": splits.test.start_us,
        "embargo_us": embargo_us,
        "timeframes": per_tf,
        "skipped": skipped,
    }
    result = CnnStageResult(CnnBlocks(outputs), models, _json_safe(metrics))
    if models_dir is not None:
        result.save(models_dir)
    return result


def _plan_timeframe(
    frames: MarketFrames, cfg: Config, tf: Timeframe, splits: Fold, n_folds: int, min_fit_windows: int
) -> tuple[TimeframeData, list[FoldPlan]] | str:
    """Plan the timeframe's data and folds, or why it gets no CNN."""
    if tf not in cfg.cnn.timeframes:
        return "not in cnn.timeframes"
    try:
        data = build_timeframe_data(frames, tf, cfg.cnn, cfg.features)
    except CnnDataError as exc:
        return str(exc)
    embargo_us, vf = cfg.splits.embargo_us, cfg.cnn.validation_fraction
    test_start = splits.test.start_us
    history = int(data.eth.open_us_T[0])

    def enough(cutoff: int) -> bool:
        """Return whether a fold fitted up to ``cutoff`` has ``min_fit_windows`` windows (and one to validate if so)."""
        try:
            plan = plan_folds(data, TimeRange(cutoff, cutoff + tf.us), 1, embargo_us=0, validation_fraction=vf)[0]
        except SplitError:
            return False
        ok = data.fit_rows(plan.train).shape[0] >= min_fit_windows
        return ok and (plan.validation is None or data.fit_rows(plan.validation).shape[0] > 0)

    closes = data.close_us_T[data.close_us_T <= test_start - embargo_us]
    first = bisect_left(range(closes.shape[0]), True, key=lambda i: enough(int(closes[i])))
    if first == closes.shape[0]:
        return (
            f"{data.n_bars} {tf.value} bars, but no fit ending an embargo before the test start "
            f"({fmt_time(test_start)}) holds {min_fit_windows} labelled windows after the indicator warm-up and a "
            f"{cfg.cnn.horizon(tf)}-bar label horizon; give the market more history or drop {tf.value} from "
            "cnn.timeframes"
        )
    start = max(splits.train.start_us // tf.us * tf.us, ceil_to_grid(int(closes[first]) + embargo_us, tf.us))
    if start >= test_start:
        return (
            f"its first fit needs the history up to {fmt_time(int(closes[first]))}, so it could serve only from the "
            f"test start ({fmt_time(test_start)}) on: the agent would train without it and be tested with it"
        )
    # Fold ranges shorter than a bar would coincide: at most one fold per bar before the test start.
    folds = min(n_folds, max(1, (test_start - start) // tf.us))
    if start > splits.train.start_us:
        logger.info(
            "%s CNN rows start at %s, after the agent's training start: its first fit needs the history before",
            tf.value,
            fmt_time(start),
        )
    plans = plan_folds(
        data,
        TimeRange(start, test_start),
        folds,
        embargo_us=embargo_us,
        validation_fraction=vf,
        history_start_us=history,
    )
    plans[-1] = replace(plans[-1], predict=TimeRange(plans[-1].predict.start_us, int(data.close_us_T[-1]) + 1))
    return data, plans


def _scores(data: TimeframeData, results: list[FoldResult], horizon: int) -> dict[str, Any]:
    """Out-of-sample metrics per fold and pooled, of the CNN and the two baselines (models.evaluate)."""
    folds: list[dict[str, Any]] = []
    probs: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in PREDICTORS}
    labels: list[npt.NDArray[np.int64]] = []
    for res in results:
        *fold_probs, y = fold_predictions(data, res, horizon)
        labels.append(y)
        for name, p in zip(PREDICTORS, fold_probs, strict=True):
            probs[name].append(p)
        info = res.trained.info
        folds.append(
            {
                "fold": res.plan.index,
                "file": model_file(data.tf, res.plan.index),
                "train": info.train.to_dict(),
                "validation": None if info.validation is None else info.validation.to_dict(),
                "predict": res.plan.predict.to_dict(),
                "fit_end_us": info.fit_end_us,
                "epochs": info.epochs,
                "best_epoch": info.best_epoch,
                "fit_seconds": info.seconds,
                "flat_band": info.flat_band,
                **{name: class_metrics(p, y).to_dict() for name, p in zip(PREDICTORS, fold_probs, strict=True)},
            }
        )
    y_all = np.concatenate(labels)
    return {
        "folds": folds,
        "serves_from_us": results[0].plan.predict.start_us,
        "pooled": {name: class_metrics(np.concatenate(probs[name]), y_all).to_dict() for name in PREDICTORS},
    }


def serve_cnn_blocks(
    frames: MarketFrames,
    models: Mapping[Timeframe, tuple[TrainedCnn, ...]],
    cfg: Config,
    *,
    embargo_us: int,
) -> CnnBlocks:
    """Compute the walk-forward rows of fixed fold models over ``frames``.

    Fold k fills the bars closing in its recorded prediction range (``extra["predict"]``), as
    :func:`walk_forward_outputs` assembled them.
    """
    outputs: dict[Timeframe, CnnOutputs] = {}
    for tf, fold_models in models.items():
        data = build_timeframe_data(frames, tf, fold_models[0].config, cfg.features, with_labels=False)
        ranges = [TimeRange(**m.extra["predict"]) for m in fold_models]
        first = int(np.searchsorted(data.close_us_T, ranges[0].start_us, side="left"))
        n = data.n_bars - first
        hidden = np.zeros((n, fold_models[0].model.shape.hidden), np.float32)
        preds = np.zeros((n, 4), np.float32)
        ids = np.full(n, NO_MODEL, np.int32)
        for k, (trained, predict) in enumerate(zip(fold_models, ranges, strict=True)):
            rows = data.rows_in(predict)
            hidden[rows - first], preds[rows - first] = compute_rows(trained, data, rows)
            ids[rows - first] = row_model_ids(trained, data, rows, k, embargo_us)
        outputs[tf] = CnnOutputs(tf, data.close_us_T[first:], hidden, preds, ids)
    return CnnBlocks(outputs)


def load_cnn_stage(frames: MarketFrames, cfg: Config, splits: Fold, folder: Path) -> CnnStageResult:
    """Load the fold models saved in ``folder`` by :meth:`CnnStageResult.save`; recompute their rows over ``frames``."""
    metrics = json.loads((folder / METRICS_FILE).read_text())
    embargo_us = cfg.splits.embargo_us
    if metrics["test_start_us"] != splits.test.start_us or metrics["embargo_us"] != embargo_us:
        raise CnnStageError(
            f"{folder}: the CNNs were fitted for a test range starting at {fmt_time(metrics['test_start_us'])} with "
            f"embargo {metrics['embargo_us']} µs, not {fmt_time(splits.test.start_us)} and {embargo_us} µs; "
            "retrain the run"
        )
    models: dict[Timeframe, tuple[TrainedCnn, ...]] = {}
    for name, entry in metrics["timeframes"].items():
        fold_models = tuple(load_cnn(folder / f["file"]) for f in entry["folds"])
        if any(m.config != cfg.cnn for m in fold_models):
            raise CnnStageError(f"{folder}: the {name} CNN models were fitted with another cnn config; retrain the run")
        models[Timeframe(name)] = fold_models
    blocks = serve_cnn_blocks(frames, models, cfg, embargo_us=embargo_us)
    return CnnStageResult(blocks, models, metrics, loaded=True)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN (a metric over no window) as None: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


__all__ = [
    "CnnStageError",
    "CnnStageResult",
    "fit_cnn_blocks",
    "load_cnn_stage",
    "needs_cnn",
    "run_cnn_stage",
    "serve_cnn_blocks",
]
