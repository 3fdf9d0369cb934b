"""Evaluate a run folder on a held-out period beside the baselines, with the same fills and costs.

The agent (``best.pt``: the checkpoint chosen on the validation range) is backtested greedily on the
test range, or on any period inside the data that overlaps nothing the run was fitted on. On the same
period and with the same costs run: flat, buy-and-hold, random (``random_seeds`` seeds), momentum, the
agent of a companion run trained on the ``basic`` layout (``agent_basic``, when given), the ``supervised``
baseline (a LightGBM classifier on the ``basic`` state, fitted on the training range, its threshold chosen on
validation: :mod:`rltrade.training.supervised`), the perfect-foresight
``oracle`` (the best action sequence on the realised fills after every cost: no policy ends above it) and, on a
synthetic market with a planted signal, the ``expected_move_oracle`` (the best plan on the planted expected
moves; :mod:`rltrade.training.oracle`). Metrics are PnL after costs.

Uncertainty (:mod:`rltrade.training.bootstrap`): every policy's annualised Sharpe gets a stationary
block-bootstrap percentile interval (``sharpe_ci_low`` / ``sharpe_ci_high``), and the agent's Sharpe minus
that of the **best baseline** (highest point Sharpe among the baselines; the oracles know the future or the
planted signal and are references, not baselines) gets a paired interval. Every interval draws from a fresh
generator seeded with ``seed``, so a policy's interval does not depend on which others are in the table.

Per regime (:mod:`rltrade.training.regimes`): rows for the classifier's labels always, and for the true
regimes the synthetic generator recorded when the market has them.

Written to ``<run>/eval/``: ``metrics.json`` (period, per-policy metrics with their intervals,
``diff_vs_best_baseline``, bootstrap settings, ``selection`` (the run's do-no-harm selection: which policy it
trades and why) and ``targets``: on a synthetic market with a planted signal,
the expected-move oracle's return on the validation range the training loop backtests, the scorecard's
convergence target), ``regimes.json`` (a list of per-regime rows), the agent's ``agent_steps.parquet`` /
``agent_trades.parquet``, ``returns.parquet`` (every policy's per-step return and the step's classifier regime:
what a walk-forward concatenates over folds), ``supervised.json`` (the supervised baseline's horizon, cost
threshold, class counts and chosen probability threshold), and ``feature_coverage.parquet``
(:mod:`rltrade.training.coverage`, on the
evaluated period).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import numpy as np
import polars as pl

from rltrade.agent.learner import DQNLearner
from rltrade.config import Config, EnvConfig, TradingTerms, costs_caption
from rltrade.data.atomic import write_json_atomic
from rltrade.data.splits import SplitError, TimeRange
from rltrade.data.synthetic import SignalTruth
from rltrade.env.prices import PeriodData, PeriodError
from rltrade.training.backtest import BacktestResult, backtest_actions, backtest_policy
from rltrade.training.baselines import (
    buy_and_hold_actions,
    flat_actions,
    momentum_actions,
    random_actions,
)
from rltrade.training.bootstrap import sharpe_ci, sharpe_diff_ci
from rltrade.training.bundle import BundleError, RunBundle, greedy_policy, load_learner, open_bundle
from rltrade.training.cnn_stage import METRICS_FILE
from rltrade.training.confirmation import read_selection
from rltrade.training.coverage import feature_coverage, write_coverage
from rltrade.training.metrics import BacktestMetrics, simple_returns
from rltrade.training.oracle import expected_move_oracle_actions, oracle_actions
from rltrade.training.pipeline import Prepared, decision_span, prepare
from rltrade.training.regimes import RegimeRow, regime_rows
from rltrade.training.supervised import (
    SupervisedConfig,
    SupervisedModel,
    backtest_supervised,
    cache_key,
    fit_supervised,
    load_model,
    save_model,
)
from rltrade.types import Timeframe

BASIC_TIMEFRAMES: Final = (Timeframe.S1, Timeframe.M1)
"""Bars the ``basic`` layout's return blocks read, for both symbols."""

NOT_BASELINES: Final = frozenset({"agent", "oracle", "expected_move_oracle"})
"""Policies never chosen as the best baseline: the agent itself and the oracles (they know the future prices or
the planted signal)."""


class PolicyMetrics(BacktestMetrics):
    """A policy's backtest metrics with the block-bootstrap interval of its Sharpe."""

    sharpe_ci_low: float
    sharpe_ci_high: float
    sharpe_ci_level: float
    sharpe_block_length: float
    """Mean block length of the stationary bootstrap, in steps."""


class Comparison(TypedDict):
    """The agent's Sharpe minus the best baseline's, with its paired bootstrap interval."""

    policy: str
    baseline: str
    sharpe_diff: float
    ci_low: float
    ci_high: float
    ci_level: float
    block_length: float
    n_resamples: int


class EvaluationPeriodError(SplitError):
    """The period asked for lies (partly) outside the data the run's market holds, or is too short to trade."""


@dataclass(frozen=True, eq=False)
class Evaluation:
    """What :func:`evaluate_bundle` computed (and wrote to ``<run>/eval/``)."""

    period: TimeRange
    metrics: dict[str, PolicyMetrics]
    """Policy → metrics (:func:`rltrade.training.metrics.compute_metrics`) plus ``sharpe_ci_*``."""
    comparison: Comparison
    """The agent's Sharpe minus the best baseline's."""
    regimes: list[RegimeRow]
    """Per-regime rows (:func:`rltrade.training.regimes.regime_rows`)."""
    selection: dict[str, Any] | None = None
    """The run's do-no-harm selection (``selection.json``; :mod:`rltrade.training.confirmation`), None when the
    run has none."""
    costs: str = ""
    """The costs every policy paid (:func:`rltrade.config.costs_caption`)."""


def _covering(cfg: Config, period: TimeRange) -> Config:
    """Return the run's config with ``data.start`` / ``data.end`` widened to load ``period`` too."""
    start, end = cfg.data.range_us
    if (start is None or start <= period.start_us) and (end is None or end >= period.end_us):
        return cfg

    def when(us: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(us // 1_000_000, tz=dt.UTC).replace(microsecond=us % 1_000_000)

    data = cfg.data.model_copy(
        update={
            "start": None if start is None else when(min(start, period.start_us)),
            "end": None if end is None else when(max(end, period.end_us)),
        }
    )
    return cfg.model_copy(update={"data": data})


def evaluate_bundle(
    run_dir: Path,
    *,
    period: TimeRange | None = None,
    basic_run: Path | None = None,
    random_seeds: int = 3,
    n_resamples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    env_overrides: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Backtest the run and the baselines on ``period`` (default: the run's test range); see the module docstring.

    ``env_overrides`` (``--fee``: ``taker_fee``, ``fee_tier``) change the costs every policy pays here; the
    agent and its checkpoint choice stay what training made under the run's own costs.
    """
    bundle = open_bundle(run_dir)
    cfg = run_config(bundle)
    target = period if period is not None else bundle.split("test")
    bundle.refuse_overlap(target, what=f"backtest of {run_dir}")
    if period is not None:
        cfg = _covering(cfg, period)
    basic = _open_basic(basic_run, cfg, target) if basic_run is not None else None
    if env_overrides:
        env = EnvConfig.model_validate({**cfg.env.model_dump(), **env_overrides})
        cfg = cfg.model_copy(update={"env": env})
    prep = prepare(cfg, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=run_dir / "cnn")
    per = period_in_span(prep, target) if period is not None else prep.test_period
    learner = load_learner(run_dir, prep.layout, cfg, which="best")
    results: dict[str, BacktestResult] = {"agent": backtest_learner(learner, prep, per)}
    if basic is not None:
        results["agent_basic"] = _basic_agent(basic, prep, target, per)
    sup_model, results["supervised"] = supervised_baseline(prep, target, per, cache_dir=run_dir / SUPERVISED_CACHE)
    results["flat"] = backtest_actions(per, flat_actions(per), cfg.env)
    results["buy_and_hold"] = backtest_actions(per, buy_and_hold_actions(per), cfg.env)
    results["momentum"] = backtest_actions(per, momentum_actions(per), cfg.env)
    for s in range(random_seeds):
        results[f"random_{s}"] = backtest_actions(per, random_actions(per, np.random.default_rng(s)), cfg.env)
    results["oracle"] = backtest_actions(per, oracle_actions(per, cfg.env), cfg.env)
    truth = prep.frames.extras.get("signal_truth")
    targets: dict[str, float | int] = {}
    if isinstance(truth, SignalTruth):
        results["expected_move_oracle"] = backtest_actions(
            per, expected_move_oracle_actions(per, truth, cfg.env), cfg.env
        )
        targets = validation_targets(prep, truth)

    selection = read_selection(run_dir)
    metrics, comparison = _with_intervals(results, n_resamples=n_resamples, level=ci_level, seed=seed)
    true_regimes = prep.frames.extras.get("regimes")
    rows = regime_rows(results, per, true_regimes=true_regimes if isinstance(true_regimes, Mapping) else None)
    out_dir = run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    results["agent"].trades.write_parquet(out_dir / "agent_trades.parquet")
    results["agent"].steps.write_parquet(out_dir / "agent_steps.parquet")
    write_coverage(feature_coverage(prep.builder, per), out_dir)
    write_returns(results, per, out_dir)
    bootstrap = {"method": "stationary (Politis-Romano), Politis-White block length, percentile", "seed": seed}
    write_json_atomic(
        out_dir / "metrics.json",
        {
            "period": target.to_dict(),
            "metrics": metrics,
            "diff_vs_best_baseline": comparison,
            "bootstrap": {**bootstrap, "n_resamples": n_resamples, "ci_level": ci_level},
            "targets": targets,
            "selection": selection,
            "costs": {"caption": costs_caption(cfg.env), "env": cfg.env.model_dump(mode="json")},
        },
    )
    write_json_atomic(out_dir / "regimes.json", rows)
    write_json_atomic(out_dir / "supervised.json", sup_model.summary())
    return Evaluation(target, metrics, comparison, rows, selection, costs_caption(cfg.env))


RETURNS_FILE: Final = "returns.parquet"
"""Per-step returns of every evaluated policy, in ``<run>/eval/``."""


def write_returns(results: Mapping[str, BacktestResult], per: PeriodData, out_dir: Path) -> None:
    """Write ``returns.parquet``: per decision step ``time_us``, ``regime`` (classifier) and each policy's return."""
    n = per.n_steps
    cols: dict[str, Any] = {
        "time_us": np.asarray(per.time_us_T[:n], dtype=np.int64),
        "regime": np.asarray(per.regime_T[:n], dtype=np.int8),
    }
    cols.update({name: simple_returns(r.equity_T) for name, r in results.items()})
    pl.DataFrame(cols).write_parquet(out_dir / RETURNS_FILE)


def evaluate_run(
    run_dir: Path,
    *,
    period: TimeRange | None = None,
    basic_run: Path | None = None,
    random_seeds: int = 3,
    n_resamples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, PolicyMetrics]:
    """Metrics per policy (with Sharpe intervals) of :func:`evaluate_bundle`."""
    return evaluate_bundle(
        run_dir,
        period=period,
        basic_run=basic_run,
        random_seeds=random_seeds,
        n_resamples=n_resamples,
        ci_level=ci_level,
        seed=seed,
    ).metrics


def run_config(bundle: RunBundle) -> Config:
    """Return the config to rebuild a run's states with: its own, with the CNN stage off if it had none.

    A run trained without a CNN stage has no ``cnn`` entry in its manifest (made before the CNN stage or with
    ``cnn.enabled: false``), so evaluation never fits CNNs the agent did not see. A run that had CNNs must
    still hold them.
    """
    cfg = bundle.config
    if "cnn" not in bundle.manifest:
        return cfg.model_copy(update={"cnn": cfg.cnn.model_copy(update={"enabled": False})})
    if not (bundle.root / "cnn" / METRICS_FILE).is_file():
        raise BundleError(
            f"{bundle.root} was trained with CNN blocks but {bundle.root / 'cnn'} does not hold its CNN models; "
            "restore the run folder's cnn/ directory (evaluation never refits them)"
        )
    return cfg


def best_baseline(metrics: Mapping[str, PolicyMetrics]) -> str:
    """Pick the baseline of highest point Sharpe (ties: the first in table order), never the agent or an oracle."""
    names = [name for name in metrics if name not in NOT_BASELINES]
    if not names:
        raise ValueError("no baseline to compare the agent with")
    return max(names, key=lambda name: metrics[name]["sharpe"])


def _with_intervals(
    results: dict[str, BacktestResult], *, n_resamples: int, level: float, seed: int
) -> tuple[dict[str, PolicyMetrics], Comparison]:
    returns = {name: simple_returns(r.equity_T) for name, r in results.items()}
    metrics: dict[str, PolicyMetrics] = {}
    for name, r in results.items():
        per_year = r.metrics["steps_per_year"]
        ci = sharpe_ci(returns[name], per_year, rng=np.random.default_rng(seed), n_resamples=n_resamples, level=level)
        metrics[name] = PolicyMetrics(
            **r.metrics,
            sharpe_ci_low=ci.low,
            sharpe_ci_high=ci.high,
            sharpe_ci_level=level,
            sharpe_block_length=ci.block_length,
        )
    base = best_baseline(metrics)
    diff = sharpe_diff_ci(
        returns["agent"],
        returns[base],
        metrics["agent"]["steps_per_year"],
        rng=np.random.default_rng(seed),
        n_resamples=n_resamples,
        level=level,
    )
    comparison = Comparison(
        policy="agent",
        baseline=base,
        sharpe_diff=diff.estimate,
        ci_low=diff.low,
        ci_high=diff.high,
        ci_level=diff.level,
        block_length=diff.block_length,
        n_resamples=diff.n_resamples,
    )
    return metrics, comparison


def validation_targets(prep: Prepared, truth: SignalTruth) -> dict[str, float | int]:
    """Backtest the expected-move oracle on the validation range as the training loop does; return its return.

    The range is the validation's selection window, its first ``train.eval_max_steps`` steps
    (:meth:`~rltrade.training.pipeline.Prepared.validation_slice`); the scorecard's convergence target
    is half of this return.
    """
    val = prep.validation_slice()
    if val is None:
        return {}
    env = prep.cfg.env
    oracle = backtest_actions(val, expected_move_oracle_actions(val, truth, env), env)
    return {
        "validation_expected_move_oracle_return": oracle.metrics["total_return"],
        "validation_steps": val.n_steps,
    }


SUPERVISED_CACHE: Final = Path("eval") / "supervised"
"""Where a run folder keeps its fitted supervised baselines (:func:`rltrade.training.supervised.save_model`)."""


def supervised_baseline(
    prep: Prepared, target: TimeRange, per: PeriodData, *, cache_dir: Path | None = None
) -> tuple[SupervisedModel, BacktestResult]:
    """Fit the supervised baseline (:mod:`rltrade.training.supervised`) on the run's splits and backtest it on ``per``.

    With ``cache_dir`` (the run's ``eval/supervised``) a model fitted before on the same settings, costs, ranges
    and prices is loaded instead of refitted (:func:`rltrade.training.supervised.cache_key`), and a new one is
    kept there.

    Its features are the ``basic`` layout's state on the run's market frames (statistics fitted on the training
    range, no CNN stage); it is fitted on the training range and its threshold chosen on the validation
    selection window, the window the agent's checkpoints are chosen on. A market without the ``basic`` layout's
    1 s and 1 m bars (the ``real-1h`` preset's 1h / 1d klines) gives it the run's own layout instead (CNN off).
    """
    cfg = prep.cfg
    has_basic_bars = all(tf in prep.frames.bars.get(role, {}) for role in ("eth", "btc") for tf in BASIC_TIMEFRAMES)
    layout = cfg.features.layout.model_copy(update={"name": "basic"}) if has_basic_bars else cfg.features.layout
    bcfg = cfg.model_copy(
        update={
            "features": cfg.features.model_copy(update={"layout": layout}),
            "cnn": cfg.cnn.model_copy(update={"enabled": False}),
        }
    )
    bprep = prepare(bcfg, frames=prep.frames, splits=prep.splits)
    validation = None
    if prep.splits.validation is not None:
        validation = bprep.period(bprep.selection_windows(prep.splits.validation)[0])
    settings = SupervisedConfig()
    model: SupervisedModel | None = None
    if cache_dir is not None:
        parts = {
            "env": cfg.env.model_dump(mode="json"),
            "features": bcfg.features.model_dump(mode="json"),
            "data": cfg.data.model_dump(mode="json"),
            "train": prep.splits.train.to_dict(),
            "validation": None if prep.splits.validation is None else prep.splits.validation.to_dict(),
        }
        key = cache_key(parts, settings, bprep.train_period, validation)
        model = load_model(cache_dir, key, settings)
    if model is None:
        model = fit_supervised(bprep.builder, bprep.train_period, validation, cfg.env, settings)
        if cache_dir is not None:
            save_model(model, cache_dir, key)
    bper = bprep.period(target)
    if bper.n_steps != per.n_steps:
        raise BundleError(f"the supervised baseline's period has {bper.n_steps} steps, the agent's {per.n_steps}")
    return model, backtest_supervised(model, bprep.builder, bper, cfg.env)


def backtest_learner(learner: DQNLearner, prep: Prepared, period: PeriodData) -> BacktestResult:
    """Greedy backtest of the learner on ``period`` of ``prep``'s run (PnL after costs), in eval mode throughout."""
    with learner.evaluating():
        return backtest_policy(prep.builder, period, greedy_policy(learner), prep.cfg.env)


def period_in_span(prep: Prepared, target: TimeRange) -> PeriodData:
    """``target``'s per-step arrays, refusing a period outside the decision span of the run's market."""
    cfg = prep.cfg
    span = decision_span(prep.frames, cfg)
    if target.start_us < span.start_us or target.end_us > span.end_us:
        raise EvaluationPeriodError(
            f"the period {_iso(target.start_us)} .. {_iso(target.end_us)} is not inside the data: the run's market "
            f"can be traded on its {cfg.env.step.value} clock from {_iso(span.start_us)} to {_iso(span.end_us)}; "
            "pick a period inside that span (and after the fitted ranges)"
        )
    try:
        return prep.period(target)
    except PeriodError as exc:
        raise EvaluationPeriodError(f"the period {_iso(target.start_us)} .. {_iso(target.end_us)}: {exc}") from exc


def _open_basic(basic_run: Path, cfg: Config, target: TimeRange) -> RunBundle:
    """Open the companion run.

    It is refused unless it is a ``basic``-layout run on the same market and costs that was not fitted on
    ``target``.
    """
    bundle = open_bundle(basic_run)
    bcfg = run_config(bundle)
    if bcfg.features.layout.name != "basic":
        raise BundleError(
            f"--basic-run {basic_run} was trained on the {bcfg.features.layout.name!r} layout; the baseline is an "
            "agent trained on the 'basic' layout (features.layout.name: basic) on the same market"
        )
    differ = [f for f, b, a in zip(TradingTerms._fields, bcfg.env.terms, cfg.env.terms, strict=True) if b != a]
    if differ or bcfg.data != cfg.data:
        what = ", ".join([f"env.{f}" for f in differ] + (["data"] if bcfg.data != cfg.data else []))
        raise BundleError(
            f"--basic-run {basic_run} differs from the evaluated run in {what}: baselines must trade the same "
            "market with the same clock and costs; train it from the same config with only the layout changed"
        )
    bundle.refuse_overlap(target, what=f"backtest of {basic_run}")
    return bundle


def _basic_agent(bundle: RunBundle, prep: Prepared, target: TimeRange, per: PeriodData) -> BacktestResult:
    """Backtest the companion ``basic``-layout run's agent on the evaluated run's period (and market frames)."""
    bcfg = run_config(bundle)
    bcfg = bcfg.model_copy(update={"env": prep.cfg.env})  # same terms (checked), with any --fee override
    bprep = prepare(
        bcfg, frames=prep.frames, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=bundle.root / "cnn"
    )
    bper = bprep.period(target)
    if bper.n_steps != per.n_steps:
        raise BundleError(f"--basic-run {bundle.root}: the period has {bper.n_steps} steps there, {per.n_steps} here")
    return backtest_learner(load_learner(bundle.root, bprep.layout, bcfg, which="best"), bprep, bper)


def _iso(t_us: int) -> str:
    return dt.datetime.fromtimestamp(t_us / 1_000_000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
