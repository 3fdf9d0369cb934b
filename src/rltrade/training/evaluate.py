"""Evaluate a run folder on a held-out period beside the baselines, with the same fills and costs.

The agent (``best.pt``: the checkpoint chosen on the validation range) is backtested greedily on the
test range (or any period after everything the run was fitted on); flat, buy-and-hold, random
(several seeds), momentum and, on a synthetic market with a planted signal, the fee-aware oracle run on
the same period. Metrics are PnL after costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rltrade.data.splits import TimeRange
from rltrade.data.synthetic import SignalTruth
from rltrade.env.prices import build_period
from rltrade.training.backtest import BacktestResult, backtest_actions
from rltrade.training.baselines import (
    buy_and_hold_actions,
    flat_actions,
    momentum_actions,
    oracle_actions,
    random_actions,
)
from rltrade.training.bundle import open_bundle, write_json_atomic
from rltrade.training.loop import evaluate, load_learner, prepare


def evaluate_run(run_dir: Path, *, period: TimeRange | None = None, random_seeds: int = 3) -> dict[str, dict[str, Any]]:
    """Metrics per policy on ``period`` (default: the run's test range); written to ``<run>/eval/``."""
    bundle = open_bundle(run_dir)
    cfg = bundle.config
    prep = prepare(cfg, stats=bundle.feature_stats)
    target = period if period is not None else bundle.split("test")
    bundle.refuse_overlap(target, what=f"backtest of {run_dir}")
    per = build_period(prep.builder.features, target, cfg.env, cfg.reward) if period is not None else prep.test_period
    learner = load_learner(run_dir, prep, cfg, which="best")
    results: dict[str, BacktestResult] = {"agent": evaluate(learner, prep, per, cfg)}
    results["flat"] = backtest_actions(per, flat_actions(per), cfg.env)
    results["buy_and_hold"] = backtest_actions(per, buy_and_hold_actions(per), cfg.env)
    results["momentum"] = backtest_actions(per, momentum_actions(per), cfg.env)
    for s in range(random_seeds):
        results[f"random_{s}"] = backtest_actions(per, random_actions(per, np.random.default_rng(s)), cfg.env)
    truth = prep.frames.extras.get("signal_truth")
    if isinstance(truth, SignalTruth):
        results["oracle"] = backtest_actions(per, oracle_actions(per, truth, cfg.env), cfg.env)
    out_dir = run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    results["agent"].trades.write_parquet(out_dir / "agent_trades.parquet")
    results["agent"].steps.write_parquet(out_dir / "agent_steps.parquet")
    metrics = {name: r.metrics for name, r in results.items()}
    write_json_atomic(out_dir / "metrics.json", {"period": target.to_dict(), "metrics": metrics})
    return metrics
