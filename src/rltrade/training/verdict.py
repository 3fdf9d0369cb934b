"""The walk-forward verdict: every fold's test returns beside flat and buy-and-hold, with intervals, pooled.

Inputs are the run folders a walk-forward wrote: each job's ``eval/returns.parquet``
(:func:`rltrade.training.evaluate.write_returns`: one per-step return column per evaluated policy, on the fold's
test range, plus the step's classifier regime). Per fold:

* ``agent``: the fold's seeds held in equal parts (the mean of their per-step returns; with one seed, that seed);
* ``ensemble`` (when the fold has ≥ 2 seeds and :func:`ensemble_returns` is given the runs): one policy acting on
  the Q-values averaged over the fold's seeds, backtested on the test range with the same fills and costs;
* every baseline the evaluation wrote that :data:`VERDICT_POLICIES` names (``flat``, ``buy_and_hold`` and the
  supervised baseline, ``supervised``, whenever the evaluation has it), taken from the fold's first seed (a
  baseline does not depend on the agent's seed);
* each policy's total return, annualised Sharpe and its stationary-bootstrap interval
  (:func:`rltrade.training.bootstrap.sharpe_ci`), and the paired interval of the agent's Sharpe minus
  buy-and-hold's and minus flat's (:func:`rltrade.training.bootstrap.sharpe_diff_ci`).

Aggregate: each policy's test returns of all folds concatenated in time order (the folds' test ranges are
disjoint and follow each other), with the same intervals, the count of folds where the agent's return trails
buy-and-hold's / flat's, and per-regime aggregates of the pooled series:

* ``market`` (ex post, per fold): a fold's test range is ``bull`` when buy-and-hold returned more than
  :data:`TREND_THRESHOLD`, ``bear`` below minus that, else ``range``. It describes what the market did, after
  the fact; nothing is selected on it;
* ``classifier`` (per step, when the layout has the regime block): the rule-based regime label of each step.

Every interval draws from a fresh generator seeded with ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.training.bootstrap import sharpe_ci, sharpe_diff_ci
from rltrade.training.metrics import sharpe
from rltrade.training.regimes import regime_name

F64 = npt.NDArray[np.float64]

VERDICT_POLICIES: Final = ("agent", "ensemble", "supervised", "flat", "buy_and_hold")
"""The policies of the verdict table, in table order (those a fold has)."""

COMPARED_WITH: Final = ("buy_and_hold", "flat")
"""The baselines the agent's Sharpe is differenced against (paired intervals)."""

TREND_THRESHOLD: Final = 0.20
"""A fold's test range is ``bull`` / ``bear`` when buy-and-hold returned more than +20 % / less than −20 %."""

RETURNS_PATH: Final = Path("eval") / "returns.parquet"

EnsembleFn = Callable[[Sequence[Path]], F64 | None]
"""``ensemble(run folders of one fold) → per-step returns`` of the seed ensemble on the fold's test range (None:
no ensemble for these runs)."""


class VerdictError(ValueError):
    """The run folders do not hold what the verdict needs (the message says which and what to do)."""


def read_returns(run_dir: Path) -> pl.DataFrame:
    """Return a job's ``eval/returns.parquet``; :class:`VerdictError` when the run was never evaluated."""
    path = Path(run_dir) / RETURNS_PATH
    if not path.is_file():
        raise VerdictError(
            f"{path} is missing: the run was evaluated before per-step returns were written; "
            f"re-run `rltrade backtest {run_dir}` or the walk-forward"
        )
    return pl.read_parquet(path)


def total_return(r_T: F64) -> float:
    """Compounded return of the per-step returns ``r_T``."""
    return float(np.expm1(np.sum(np.log1p(r_T)))) if r_T.size else 0.0


def policy_figures(r_T: F64, per_year: float, *, n_resamples: int, seed: int) -> dict[str, float | int]:
    """Return the steps, total return, Sharpe and its bootstrap interval of one policy's returns."""
    ci = sharpe_ci(r_T, per_year, rng=np.random.default_rng(seed), n_resamples=n_resamples)
    return {
        "n_steps": int(r_T.size),
        "total_return": total_return(r_T),
        "sharpe": ci.estimate,
        "sharpe_ci_low": ci.low,
        "sharpe_ci_high": ci.high,
    }


def diff_figures(a_T: F64, b_T: F64, per_year: float, *, n_resamples: int, seed: int) -> dict[str, float]:
    """Paired interval of ``sharpe(a) − sharpe(b)``."""
    d = sharpe_diff_ci(a_T, b_T, per_year, rng=np.random.default_rng(seed), n_resamples=n_resamples)
    return {"sharpe_diff": d.estimate, "ci_low": d.low, "ci_high": d.high, "ci_level": d.level}


def fold_series(
    run_dirs: Sequence[Path], ensemble: EnsembleFn | None = None
) -> tuple[dict[str, F64], npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """Return ``(policy → per-step returns, time_us, regime)`` of one fold from its jobs' run folders."""
    frames = [read_returns(d) for d in run_dirs]
    first = frames[0]
    for d, f in zip(run_dirs[1:], frames[1:], strict=True):
        if not f["time_us"].equals(first["time_us"]):
            raise VerdictError(f"{d} was tested on other steps than {run_dirs[0]}: they are not the same fold")
    series: dict[str, F64] = {
        "agent": np.mean(np.stack([f["agent"].to_numpy().astype(np.float64) for f in frames]), axis=0)
    }
    joint = ensemble(run_dirs) if ensemble is not None and len(run_dirs) >= 2 else None
    if joint is not None:
        series["ensemble"] = np.asarray(joint, dtype=np.float64)
    for name in VERDICT_POLICIES:
        if name not in series and name in first.columns:
            series[name] = first[name].to_numpy().astype(np.float64)
    return series, first["time_us"].to_numpy(), first["regime"].to_numpy().astype(np.int8)


def market_label(buy_and_hold_return: float) -> str:
    """``bull`` / ``bear`` / ``range`` from a test range's buy-and-hold return (:data:`TREND_THRESHOLD`)."""
    if buy_and_hold_return > TREND_THRESHOLD:
        return "bull"
    if buy_and_hold_return < -TREND_THRESHOLD:
        return "bear"
    return "range"


def summarise(
    rows: Sequence[Mapping[str, Any]],
    per_year: float,
    *,
    ensemble: EnsembleFn | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Return the verdict of a walk-forward's job rows (``fold``, ``run_dir`` each): per fold, pooled, per regime."""
    by_fold: dict[int, list[Path]] = {}
    for r in sorted(rows, key=lambda r: (r["fold"], r["seed"])):
        by_fold.setdefault(int(r["fold"]), []).append(Path(r["run_dir"]))
    if not by_fold:
        raise VerdictError("no successful walk-forward job to judge")
    folds: list[dict[str, Any]] = []
    pooled: dict[str, list[F64]] = {}
    labels: dict[str, list[npt.NDArray[Any]]] = {"market": [], "classifier": []}
    for k, dirs in sorted(by_fold.items()):
        series, time_us, regime = fold_series(dirs, ensemble)
        if "buy_and_hold" not in series or "flat" not in series:
            raise VerdictError(f"fold {k}'s evaluation lacks flat or buy-and-hold returns ({dirs[0]})")
        figures = {name: policy_figures(r, per_year, n_resamples=n_resamples, seed=seed) for name, r in series.items()}
        market = market_label(figures["buy_and_hold"]["total_return"])
        folds.append(
            {
                "fold": k,
                "seeds": len(dirs),
                "start_us": int(time_us[0]),
                "end_us": int(time_us[-1]),
                "market": market,
                "policies": figures,
                "agent_vs": {
                    b: diff_figures(series["agent"], series[b], per_year, n_resamples=n_resamples, seed=seed)
                    for b in COMPARED_WITH
                },
            }
        )
        for name, returns in series.items():
            pooled.setdefault(name, []).append(returns)
        labels["market"].append(np.full(time_us.size, market))
        labels["classifier"].append(np.array([regime_name(int(x)) for x in regime]))
    complete = {name: np.concatenate(parts) for name, parts in pooled.items() if len(parts) == len(folds)}
    return {
        "folds": folds,
        "aggregate": {
            "n_folds": len(folds),
            "policies": {
                name: policy_figures(r, per_year, n_resamples=n_resamples, seed=seed) for name, r in complete.items()
            },
            "agent_vs": {
                b: diff_figures(complete["agent"], complete[b], per_year, n_resamples=n_resamples, seed=seed)
                for b in COMPARED_WITH
            },
            "agent_trails": {
                b: sum(f["policies"]["agent"]["total_return"] < f["policies"][b]["total_return"] for f in folds)
                for b in COMPARED_WITH
            },
        },
        "regimes": {
            source: _regime_rows(complete, np.concatenate(parts), per_year) for source, parts in labels.items()
        },
        "n_resamples": n_resamples,
        "seed": seed,
    }


def _regime_rows(series: Mapping[str, F64], label_T: npt.NDArray[Any], per_year: float) -> list[dict[str, Any]]:
    rows = []
    for regime in sorted(set(label_T.tolist())):
        mask = label_T == regime
        rows.append(
            {
                "regime": str(regime),
                "n_steps": int(mask.sum()),
                "policies": {
                    name: {"total_return": total_return(r[mask]), "sharpe": sharpe(r[mask], per_year)}
                    for name, r in series.items()
                },
            }
        )
    return rows
