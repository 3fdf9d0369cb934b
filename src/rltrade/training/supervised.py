"""The supervised baseline: a LightGBM classifier on the ``basic`` layout's state, traded by a probability threshold.

Does RL add anything over a classifier that sees the same market? This baseline answers it on the same fills
and costs as the agent (:func:`rltrade.training.backtest.backtest_actions`).

* **Features.** The ``basic`` layout's market state (``features.layout``: the last 30 ETH and BTC 1 s log
  returns, the last 15 of each on 1 m, the 10 regime features and the availability flags), gathered at each
  decision time by the run's state builder on the run's market, with its feature statistics fitted on the
  training range (:func:`rltrade.training.pipeline.prepare`). Every value at step ``i`` uses data up to
  ``t_i`` only (the builder's causality, checked by ``features.lookahead``).
* **Label** of step ``i``: the class of ``r_i = log(P_{i+k} / P_i)``, the log move between the fill of step
  ``i`` and the fill ``k`` decision steps later (the horizon: ``horizon_steps`` × the decision step). Fee-aware:
  ``up`` (class 2) when ``r_i > c``, ``down`` (class 0) when ``r_i < −c``, else ``flat`` (class 1), with ``c``
  the round-trip log cost of a full position (:attr:`rltrade.env.fills.CostModel.round_trip`: two fills of fee,
  half spread and impact). The class numbers are the actions (0 short, 1 flat, 2 long).
* **Purge.** Only steps whose horizon fill is before the period's last decision time get a label, so no label of
  the training range reads a price of the validation range (the splits' purge and embargo come on top).
* **Fit.** On the training range only; deterministic (``deterministic=True``, one thread, ``seed``). At most
  ``max_train_rows`` rows, evenly strided when the range has more.
* **Policy.** At step ``i`` with class probabilities ``p``, the signal is long when ``p_up > τ`` and
  ``p_up ≥ p_down``, short when ``p_down > τ`` and ``p_down > p_up``, none otherwise. A signal sets the position
  for the label's horizon (``k`` steps) unless a newer one replaces it; with no signal in the last ``k`` steps the
  policy is flat. ``τ`` is chosen on the validation range only (its
  selection window, the one the agent's checkpoints are chosen on): the candidate of highest final log equity
  after costs, ties to the larger ``τ``; the candidate ``never`` (τ = 1, always flat) is among them, so the
  baseline does no harm on validation. Without a validation range ``τ`` is ``default_threshold``.
* **Cache** (:func:`save_model`, :func:`load_model`). A run folder keeps its fitted baseline in
  ``eval/supervised/<key>.txt`` (the booster in LightGBM's own text model format, never a pickle) and
  ``<key>.json`` (the threshold, the validation scores and the counts), both written atomically. The key
  (:func:`cache_key`) hashes everything the fit and the threshold read: the baseline's settings, the costs,
  the feature and data config, the train and validation ranges, their fill prices and the LightGBM version;
  so a second backtest of the same run loads the model instead of refitting it, and any change refits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from rltrade.config import EnvConfig
from rltrade.data.atomic import atomic_write, write_json_atomic
from rltrade.env.fills import CostModel
from rltrade.env.prices import PeriodData
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.training.backtest import BacktestResult, backtest_actions

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NO_LABEL: Final = -1
"""The label of a purged step (its horizon reaches past the period)."""

NEVER: Final = 1.0
"""The threshold that never trades (no probability exceeds 1)."""


@dataclass(frozen=True)
class SupervisedConfig:
    """The supervised baseline's fixed settings (module docstring)."""

    horizon_steps: int = 5
    """``k``: the label's horizon in decision steps."""
    thresholds: tuple[float, ...] = (0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, NEVER)
    """The candidate ``τ`` values tried on validation."""
    default_threshold: float = 0.5
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 50
    max_train_rows: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a horizon under one step and thresholds outside (0, 1]."""
        if self.horizon_steps < 1:
            raise ValueError(f"the supervised baseline's horizon must be ≥ 1 decision step, got {self.horizon_steps}")
        if not self.thresholds or any(not 0.0 < t <= NEVER for t in self.thresholds):
            raise ValueError(f"probability thresholds must lie in (0, 1], got {self.thresholds}")


@dataclass(frozen=True, eq=False)
class SupervisedModel:
    """A fitted classifier and its validation-chosen threshold."""

    booster: lgb.Booster | None
    """None when the training labels hold a single class (the model then always predicts it)."""
    only_class: int | None
    threshold: float
    cfg: SupervisedConfig
    round_trip_cost: float
    train_rows: int
    class_counts: dict[int, int]
    validation_returns: dict[float, float] = field(default_factory=dict)
    """Candidate ``τ`` → final log equity on the validation selection window (empty without validation)."""

    def proba(self, x_NF: F32) -> F64:
        """Class probabilities ``[N, 3]`` (columns: down, flat, up)."""
        if self.booster is None:
            out = np.zeros((x_NF.shape[0], 3))
            out[:, self.only_class] = 1.0
            return out
        return np.asarray(self.booster.predict(x_NF, num_threads=1), dtype=np.float64).reshape(-1, 3)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (written to ``eval/supervised.json``)."""
        return {
            "model": "LightGBM multiclass (down / flat / up)",
            "features": "basic layout market state",
            "horizon_steps": self.cfg.horizon_steps,
            "round_trip_log_cost": self.round_trip_cost,
            "threshold": self.threshold,
            "train_rows": self.train_rows,
            "class_counts": {str(k): v for k, v in self.class_counts.items()},
            "validation_log_equity": {str(k): v for k, v in self.validation_returns.items()},
            "seed": self.cfg.seed,
        }


def horizon_labels(period: PeriodData, horizon_steps: int, round_trip_cost: float) -> I64:
    """Fee-aware class of each step's ``horizon_steps``-step fill-to-fill log move; ``NO_LABEL`` where purged."""
    n, k = period.n_steps, horizon_steps
    labels = np.full(n, NO_LABEL, np.int64)
    idx = np.arange(n)
    ok = (idx + k <= n) & (period.fill_us_T[np.minimum(idx + k, n)] < period.time_us_T[n])
    i = idx[ok]
    r = np.log(period.fill_price_T[i + k] / period.fill_price_T[i])
    labels[i] = np.where(r > round_trip_cost, 2, np.where(r < -round_trip_cost, 0, 1))
    return labels


def period_states(builder: BatchStateBuilder, period: PeriodData, steps: I64 | None = None) -> F32:
    """Gather the market states ``[N, F]`` at the period's decision steps ``steps`` (default: all of them)."""
    idx = np.arange(period.n_steps) if steps is None else steps
    return np.asarray(builder.gather(period.clock.time_of(idx)), dtype=np.float32)


def threshold_actions(proba_N3: F64, threshold: float, hold_steps: int = 1) -> I64:
    """Actions of the threshold policy (module docstring) from class probabilities ``[N, 3]``.

    A signal at step ``j`` sets the position for steps ``j .. j + hold_steps − 1`` (the label's horizon) unless
    a newer signal replaces it; with no signal in the last ``hold_steps`` steps the policy is flat.
    """
    down, up = proba_N3[:, 0], proba_N3[:, 2]
    long = (up > threshold) & (up >= down)
    short = (down > threshold) & (down > up)
    signal = np.where(long, 2, np.where(short, 0, 1)).astype(np.int64)
    idx = np.arange(signal.size)
    last = np.maximum.accumulate(np.where(signal != 1, idx, -1)) if signal.size else idx
    active = (last >= 0) & (idx - last < hold_steps)
    return np.where(active, signal[np.maximum(last, 0)], 1).astype(np.int64)


def fit_classifier(
    builder: BatchStateBuilder, train: PeriodData, env_cfg: EnvConfig, cfg: SupervisedConfig
) -> SupervisedModel:
    """Fit the classifier on the training period's labelled steps (threshold still the default)."""
    cost = CostModel.from_config(env_cfg).round_trip
    labels = horizon_labels(train, cfg.horizon_steps, cost)
    steps = np.flatnonzero(labels != NO_LABEL)
    if steps.size == 0:
        raise ValueError(
            f"the training range has {train.n_steps} decision steps, too few for a {cfg.horizon_steps}-step label"
        )
    if steps.size > cfg.max_train_rows:
        steps = steps[np.linspace(0, steps.size - 1, cfg.max_train_rows).round().astype(np.int64)]
    y = labels[steps]
    classes, counts = np.unique(y, return_counts=True)
    class_counts = {int(c): int(n) for c, n in zip(classes, counts, strict=True)}
    common = (cost, int(steps.size), class_counts)
    if classes.size < 2:
        return SupervisedModel(None, int(classes[0]), cfg.default_threshold, cfg, *common)
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_child_samples,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(period_states(builder, train, steps), label=y, params={"verbosity": -1})
    booster = lgb.train(params, data, num_boost_round=cfg.n_estimators)
    return SupervisedModel(booster, None, cfg.default_threshold, cfg, *common)


def choose_threshold(
    model: SupervisedModel, builder: BatchStateBuilder, validation: PeriodData, env_cfg: EnvConfig
) -> SupervisedModel:
    """Return ``model`` with ``τ`` chosen on ``validation`` (highest final log equity, ties to the larger ``τ``)."""
    proba = period_proba(model, builder, validation)
    scores: dict[float, float] = {}
    for tau in model.cfg.thresholds:
        actions = threshold_actions(proba, tau, model.cfg.horizon_steps)
        equity = backtest_actions(validation, actions, env_cfg, initial_equity=1.0).equity_T
        scores[tau] = float(np.log(equity[-1]))
    best = max(sorted(scores, reverse=True), key=lambda t: scores[t])
    return SupervisedModel(
        model.booster,
        model.only_class,
        best,
        model.cfg,
        model.round_trip_cost,
        model.train_rows,
        model.class_counts,
        scores,
    )


def fit_supervised(
    builder: BatchStateBuilder,
    train: PeriodData,
    validation: PeriodData | None,
    env_cfg: EnvConfig,
    cfg: SupervisedConfig = SupervisedConfig(),
) -> SupervisedModel:
    """Fit on ``train``, choose ``τ`` on ``validation`` (module docstring)."""
    model = fit_classifier(builder, train, env_cfg, cfg)
    return model if validation is None else choose_threshold(model, builder, validation, env_cfg)


def period_proba(model: SupervisedModel, builder: BatchStateBuilder, period: PeriodData, *, chunk: int = 65_536) -> F64:
    """Class probabilities ``[n_steps, 3]`` at every decision step of ``period`` (states gathered in chunks)."""
    parts = [
        model.proba(period_states(builder, period, np.arange(c0, min(c0 + chunk, period.n_steps))))
        for c0 in range(0, period.n_steps, chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 3))


def supervised_actions(model: SupervisedModel, builder: BatchStateBuilder, period: PeriodData) -> I64:
    """Return the threshold policy's action at every decision step of ``period``."""
    return threshold_actions(period_proba(model, builder, period), model.threshold, model.cfg.horizon_steps)


def backtest_supervised(
    model: SupervisedModel, builder: BatchStateBuilder, period: PeriodData, env_cfg: EnvConfig
) -> BacktestResult:
    """Backtest the fitted baseline on ``period`` with the env's fills and costs."""
    return backtest_actions(period, supervised_actions(model, builder, period), env_cfg)


CACHE_FORMAT: Final = "rltrade.supervised"


def cache_key(parts: Mapping[str, Any], cfg: SupervisedConfig, *periods: PeriodData | None) -> str:
    """Hash of ``parts`` (the caller's config and ranges), ``cfg``, the periods' fill prices and LightGBM's version."""
    h = hashlib.sha256()
    doc = {"parts": parts, "cfg": dataclasses.asdict(cfg), "lightgbm": lgb.__version__}
    h.update(json.dumps(doc, sort_keys=True, default=str).encode())
    for p in periods:
        if p is not None:
            h.update(np.ascontiguousarray(p.time_us_T, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(p.fill_price_T, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def save_model(model: SupervisedModel, folder: Path, key: str) -> None:
    """Write ``model`` to ``folder/<key>.txt`` (LightGBM text format) and ``folder/<key>.json``, atomically."""
    if model.booster is not None:
        text = model.booster.model_to_string().encode()
        atomic_write(folder / f"{key}.txt", lambda fh: fh.write(text))
    write_json_atomic(
        folder / f"{key}.json",
        {
            "format": CACHE_FORMAT,
            "version": 1,
            "key": key,
            "cfg": dataclasses.asdict(model.cfg),
            "only_class": model.only_class,
            "threshold": model.threshold,
            "round_trip_cost": model.round_trip_cost,
            "train_rows": model.train_rows,
            "class_counts": [[k, v] for k, v in model.class_counts.items()],
            "validation_returns": [[k, v] for k, v in model.validation_returns.items()],
        },
    )


def load_model(folder: Path, key: str, cfg: SupervisedConfig) -> SupervisedModel | None:
    """Read what :func:`save_model` wrote under ``key`` (None when absent, incomplete or for other settings)."""
    meta_path, text_path = folder / f"{key}.json", folder / f"{key}.txt"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return None
    if meta.get("cfg") != json.loads(json.dumps(dataclasses.asdict(cfg))):
        return None
    booster = None
    if meta["only_class"] is None:
        if not text_path.is_file():
            return None
        booster = lgb.Booster(model_str=text_path.read_text())
    return SupervisedModel(
        booster,
        None if meta["only_class"] is None else int(meta["only_class"]),
        float(meta["threshold"]),
        cfg,
        float(meta["round_trip_cost"]),
        int(meta["train_rows"]),
        {int(k): int(v) for k, v in meta["class_counts"]},
        {float(k): float(v) for k, v in meta["validation_returns"]},
    )
