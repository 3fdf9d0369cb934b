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

**Selected per fold** (``selected``, when every run of the fold made a do-no-harm selection,
:mod:`rltrade.training.confirmation`): one choice per fold among the seeds' selected policies and both baselines,
by :func:`rltrade.training.selection.decide` on the fold's validation range. The candidates are ``flat``,
``buy_and_hold`` and ``seed<s>`` for every seed whose own run selected its agent (a seed whose run fell back to a
baseline brings only that baseline), each scored by its selection-window return as the run recorded it; a seed
that wins is confirmed against both baselines on the confirmation window (its run's ``selection_detail.npz``),
and a failure falls back to a baseline as every selection does. The ensemble is no candidate (it has no
validation record). The fold's ``selection`` holds the outcome and ``policies["selected"]`` the test returns of
what it selected: that seed's agent, or the baseline. PBO is not computed across seeds: the seeds of one
configuration are about equally good, like a run's checkpoints, so it would read about 0.5 whatever their skill.
:func:`with_fold_selection` adds the row to a verdict written without it, from the run folders.

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
from rltrade.training.confirmation import read_selection, read_selection_detail
from rltrade.training.metrics import sharpe
from rltrade.training.regimes import regime_name
from rltrade.training.selection import BASELINES, decide

F64 = npt.NDArray[np.float64]

VERDICT_POLICIES: Final = ("agent", "ensemble", "supervised", "flat", "buy_and_hold")
"""The policies of the verdict table, in table order (those a fold has)."""

SELECTED: Final = "selected"
"""The verdict's name of the policy selected per fold (module docstring)."""

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
    confirm_resamples: int = 1000,
    confirm_level: float = 0.95,
) -> dict[str, Any]:
    """Return the verdict of a walk-forward's job rows (``fold``, ``run_dir`` each): per fold, pooled, per regime.

    ``confirm_resamples`` and ``confirm_level`` are the confirmation test's of the selection per fold (the
    config's ``selection.n_resamples`` and ``selection.level``).
    """
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
    verdict = {
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
    return with_fold_selection(
        verdict, rows, per_year, confirm_resamples=confirm_resamples, confirm_level=confirm_level
    )


def fold_selection(
    runs: Mapping[str, Path], *, confirm_resamples: int, confirm_level: float, seed: int
) -> tuple[dict[str, Any], F64] | None:
    """Select one policy for a fold among its seeds' selected policies and both baselines (module docstring).

    ``runs`` maps ``seed<s>`` to the fold's run folders, first seed first. Returns the selection
    (:meth:`rltrade.training.selection.Selection.to_dict`, plus ``runs``: what each seed's run selected) and the
    per-step test returns of the selected policy, or None when a run holds no selection record.
    """
    sels = {name: read_selection(d) for name, d in runs.items()}
    details = {name: read_selection_detail(d) for name, d in runs.items()}
    if not runs or any(s is None or not details[n] for n, s in sels.items()):
        return None
    first = next(iter(runs))
    first_sel = sels[first]
    assert first_sel is not None
    scores = {b: float(first_sel["scores"][b]) for b in BASELINES}
    for name, s in sels.items():
        assert s is not None
        if s.get("selected") == "agent":
            scores[name] = float(s["scores"]["agent"])
    best = max(scores, key=lambda k: scores[k])
    confirm: dict[str, F64] | None = None
    if best not in BASELINES:
        d = details[best]
        keys = {best: "agent_confirmation", **{b: f"{b}_confirmation" for b in BASELINES}}
        if all(k in d for k in keys.values()):
            confirm = {name: d[k] for name, k in keys.items()}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF01D]))
    sel = decide(scores, confirm, rng=rng, n_resamples=confirm_resamples, level=confirm_level)
    source, column = (runs[first], sel.selected) if sel.selected in BASELINES else (runs[sel.selected], "agent")
    returns = read_returns(source)[column].to_numpy().astype(np.float64)
    runs_selected = {name: str(s["selected"]) for name, s in sels.items() if s is not None}
    return {**sel.to_dict(), "runs": runs_selected}, returns


def with_fold_selection(
    verdict: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    per_year: float,
    *,
    confirm_resamples: int = 1000,
    confirm_level: float = 0.95,
    resolve: Callable[[Mapping[str, Any]], Path] | None = None,
) -> dict[str, Any]:
    """Return ``verdict`` with the selection per fold (:func:`fold_selection`) and its ``selected`` figures.

    Each fold gets ``selection`` (None: a run of the fold has no selection record) and, when selected,
    ``policies["selected"]``; the aggregate gets the pooled ``selected`` figures when every fold has them.
    ``resolve`` finds a job row's run folder (default: its ``run_dir``). The intervals use the verdict's own
    ``n_resamples`` and ``seed``.
    """
    n_resamples, seed = int(verdict["n_resamples"]), int(verdict["seed"])
    where = resolve if resolve is not None else (lambda r: Path(r["run_dir"]))
    out = {**verdict, "folds": [dict(f) for f in verdict["folds"]]}
    pooled: list[F64] = []
    for f in out["folds"]:
        mine = sorted((r for r in rows if int(r["fold"]) == int(f["fold"])), key=lambda r: int(r["seed"]))
        got = fold_selection(
            {f"seed{r['seed']}": where(r) for r in mine},
            confirm_resamples=confirm_resamples,
            confirm_level=confirm_level,
            seed=seed,
        )
        f["selection"] = None if got is None else got[0]
        if got is not None:
            f["policies"] = {
                **f["policies"],
                SELECTED: policy_figures(got[1], per_year, n_resamples=n_resamples, seed=seed),
            }
            pooled.append(got[1])
    if pooled and len(pooled) == len(out["folds"]):
        agg = dict(out["aggregate"])
        agg["policies"] = {
            **agg["policies"],
            SELECTED: policy_figures(np.concatenate(pooled), per_year, n_resamples=n_resamples, seed=seed),
        }
        out["aggregate"] = agg
    return out


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
