"""Out-of-sample evaluation of a timeframe's CNN (``rltrade cnn eval``), beside two baselines.

Walk-forward (:mod:`rltrade.models.walkforward`): the timeframe's bars are cut into ``n_folds + 1``
equal chunks; fold ``k`` predicts chunk ``k + 1`` with a model fitted on everything before it (minus
the embargo), so every evaluated window is predicted using only data from before its period. The
windows of all test chunks are pooled; labels use each fold's own flat band (fitted on its training
range when ``flat_quantile`` is set). Rows the state would mask (indicator warm-up) are left out.

Baselines, fitted on the same fold's training windows only:

* **majority**: always the training range's class frequencies (so the arg-max is its majority class);
* **persistence**: the class of the *past* return over the same horizon, ``log(close[e] / close[e-h])``
  (known at the window's close), mapped to probabilities by the training range's transition frequencies
  ``P(next class | past class)`` (Laplace-smoothed). Fitted that way it follows momentum or reversal,
  whichever the training range shows (on 1 s closes, the bid-ask bounce makes it a reversal rule).

Metrics: :mod:`rltrade.models.metrics`. On a real market, skill far above the baselines is a leakage
suspect before it is a result: :attr:`TimeframeEval.leak_suspect` flags a direction accuracy above
:data:`LEAK_SUSPECT_DIRECTION`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rltrade.config import CnnConfig
from rltrade.data.splits import TimeRange
from rltrade.models.dataset import TimeframeData
from rltrade.models.labels import N_CLASSES, class_frequencies, classify
from rltrade.models.metrics import ClassMetrics, class_metrics
from rltrade.models.train import Progress
from rltrade.models.walkforward import FoldResult, plan_folds, walk_forward_outputs
from rltrade.types import Timeframe

LEAK_SUSPECT_DIRECTION = 0.6
"""Out-of-sample direction accuracy above which a real-market result is treated as a leak until explained."""


@dataclass(frozen=True)
class TimeframeEval:
    """One timeframe's pooled out-of-sample results."""

    tf: Timeframe
    source: str
    model: ClassMetrics
    majority: ClassMetrics
    persistence: ClassMetrics
    class_freq_test: tuple[float, ...]
    class_freq_train: tuple[float, ...]
    """Of the last fold's training range."""
    n_folds: int
    seconds: float
    folds: list[dict[str, object]] = field(default_factory=list)

    @property
    def leak_suspect(self) -> bool:
        """Whether the model's direction accuracy is high enough to suspect a look-ahead leak."""
        return bool(self.model.direction_accuracy > LEAK_SUSPECT_DIRECTION)


def past_classes(data: TimeframeData, rows: npt.NDArray[np.int64], horizon: int, band: float) -> npt.NDArray[np.int8]:
    """Class of the return over the ``horizon`` bars *ending* at each row (-1 where not enough bars)."""
    close = data.eth.close_T
    prev = rows - horizon
    ret = np.where(prev >= 0, np.log(close[rows] / close[np.maximum(prev, 0)]), np.nan)
    return classify(ret, band)


def _majority(train_y: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.float64]:
    counts = np.bincount(train_y[train_y >= 0], minlength=N_CLASSES)[:N_CLASSES] + 1.0
    return np.broadcast_to(counts / counts.sum(), (n, N_CLASSES))


def _persistence(
    train_prev: npt.NDArray[np.int8], train_y: npt.NDArray[np.int64], test_prev: npt.NDArray[np.int8]
) -> npt.NDArray[np.float64]:
    ok = (train_prev >= 0) & (train_y >= 0)
    table = np.ones((N_CLASSES, N_CLASSES))
    np.add.at(table, (train_prev[ok].astype(np.int64), train_y[ok]), 1.0)
    table /= table.sum(axis=1, keepdims=True)
    marginal = table.sum(axis=0) / N_CLASSES
    return np.where(test_prev[:, None] >= 0, table[np.maximum(test_prev, 0).astype(np.int64)], marginal)


def evaluate_timeframe(
    data: TimeframeData,
    cfg: CnnConfig,
    *,
    n_folds: int,
    embargo_us: int,
    seed: int,
    source: str = "",
    span: TimeRange | None = None,
    progress: Progress | None = None,
    log_dir: Path | None = None,
) -> TimeframeEval:
    """Walk-forward out-of-sample metrics of ``data``'s CNN and of the baselines (module docstring)."""
    assert data.labels is not None
    t0 = time.perf_counter()
    first, last = int(data.eth.open_us_T[0]), int(data.close_us_T[-1])
    span = span or TimeRange(first, last)
    chunk = span.duration_us // (n_folds + 1)
    plans = plan_folds(
        data,
        TimeRange(span.start_us + chunk, span.end_us),
        n_folds,
        embargo_us=embargo_us,
        validation_fraction=cfg.validation_fraction,
        history_start_us=span.start_us,
    )
    _, results = walk_forward_outputs(
        data, plans, cfg, embargo_us=embargo_us, seed=seed, progress=progress, log_dir=log_dir
    )
    probs, maj, pers, ys, folds = [], [], [], [], []
    horizon = cfg.horizon(data.tf)
    train_freq: tuple[float, ...] = ()
    for res in results:
        p_m, p_b, p_p, y = fold_predictions(data, res, horizon)
        probs.append(p_m)
        maj.append(p_b)
        pers.append(p_p)
        ys.append(y)
        train_freq = res.trained.info.class_freq_train
        folds.append(
            {
                "fold": res.plan.index,
                "predict": res.plan.predict.to_dict(),
                "n": int((y >= 0).sum()),
                "model_balanced_accuracy": class_metrics(p_m, y).balanced_accuracy,
                "epochs": res.trained.info.epochs,
                "fit_seconds": res.trained.info.seconds,
            }
        )
    y_all = np.concatenate(ys)
    return TimeframeEval(
        tf=data.tf,
        source=source,
        model=class_metrics(np.concatenate(probs), y_all),
        majority=class_metrics(np.concatenate(maj), y_all),
        persistence=class_metrics(np.concatenate(pers), y_all),
        class_freq_test=tuple(float(x) for x in class_frequencies(y_all)),
        class_freq_train=train_freq,
        n_folds=n_folds,
        seconds=time.perf_counter() - t0,
        folds=folds,
    )


def fold_predictions(
    data: TimeframeData, res: FoldResult, horizon: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Class probabilities of the model, majority and persistence on a fold's served rows, and their labels."""
    assert data.labels is not None
    band = res.trained.info.flat_band
    served = res.model_id_R >= 0
    rows = res.rows[served]
    y = data.labels.classes(band)[rows].astype(np.int64)
    train_rows = data.fit_rows(res.plan.train)
    train_y = data.labels.classes(band)[train_rows].astype(np.int64)
    p_model = res.preds_R4[served, :N_CLASSES].astype(np.float64)
    p_maj = np.array(_majority(train_y, rows.shape[0]))
    p_pers = _persistence(
        past_classes(data, train_rows, horizon, band), train_y, past_classes(data, rows, horizon, band)
    )
    return p_model, p_maj, p_pers, y


def fold_scores(data: TimeframeData, res: FoldResult, horizon: int) -> dict[str, ClassMetrics]:
    """Out-of-sample metrics of one fold: ``{"model", "majority", "persistence"}``."""
    p_m, p_b, p_p, y = fold_predictions(data, res, horizon)
    return {"model": class_metrics(p_m, y), "majority": class_metrics(p_b, y), "persistence": class_metrics(p_p, y)}
