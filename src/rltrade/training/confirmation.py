"""A training run's do-no-harm selection (:mod:`rltrade.training.selection`): which policy the run trades.

The run's validation range is cut in two (:meth:`rltrade.training.pipeline.Prepared.selection_windows`): the
first ``1 − selection.confirm_fraction`` (the **selection window**) is where the loop backtests its checkpoints
(its first ``train.eval_max_steps`` steps, :meth:`~rltrade.training.pipeline.Prepared.validation_slice`) and
keeps the best as ``best.pt``; the last ``selection.confirm_fraction`` (the **confirmation window**) is read
once, after training, by :func:`select_run`:

* candidates: ``flat``, ``buy_and_hold`` and ``agent`` (the best checkpoint), scored by their total return
  after costs on the selection window as the loop backtests it;
* PBO over every checkpoint's and both baselines' per-step returns on the selection window (when there are
  enough steps), reported as ``checkpoint_pbo`` but not enforced: a converged agent's checkpoints are about
  equally good, and the PBO of equally good candidates is about 0.5 whatever their skill (the in-sample
  winner is a random one of them). Sweeps, whose trials differ, enforce it;
* the agent, if it wins, is confirmed against both baselines on the confirmation window.

The outcome is written to ``<run>/selection.json`` (``Selection.to_dict`` plus the two windows) and read by the
backtest, walk-forward and report tables. Nothing here reads the test range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from rltrade.data.atomic import atomic_write, write_json_atomic
from rltrade.data.splits import TimeRange
from rltrade.env.prices import PeriodData, PeriodError
from rltrade.training.backtest import Policy, backtest_actions, backtest_policy
from rltrade.training.baselines import buy_and_hold_actions, flat_actions
from rltrade.training.metrics import simple_returns
from rltrade.training.pipeline import Prepared
from rltrade.training.selection import BASELINES, Pbo, Selection, decide, pbo_cscv

F64 = npt.NDArray[np.float64]

SELECTION_FILE: Final = "selection.json"
RETURNS_FILE: Final = "selection_returns.npz"
"""Per-step returns of every evaluated checkpoint on the selection window (kept so a resumed run's PBO sees all)."""
DETAIL_FILE: Final = "selection_detail.npz"
"""Per-step returns of the candidates the selection compared: ``<policy>_selection`` (the selection window) and
``<policy>_confirmation`` (the confirmation window, when it could be backtested) for ``agent``, ``flat`` and
``buy_and_hold``; a sweep pools them across its runs."""


def policy_returns(prep: Prepared, period: PeriodData, policy: Policy) -> F64:
    """Per-step simple returns after costs of the greedy ``policy`` on ``period``."""
    return simple_returns(backtest_policy(prep.builder, period, policy, prep.cfg.env).equity_T)


def baseline_returns(prep: Prepared, period: PeriodData) -> dict[str, F64]:
    """``flat`` and ``buy_and_hold`` per-step returns on ``period`` (same fills and costs as the agent)."""
    env = prep.cfg.env
    return {
        "flat": simple_returns(backtest_actions(period, flat_actions(period), env).equity_T),
        "buy_and_hold": simple_returns(backtest_actions(period, buy_and_hold_actions(period), env).equity_T),
    }


def save_checkpoint_returns(run_dir: Path, returns: Mapping[str, F64]) -> None:
    """Write every checkpoint's selection-window returns to ``<run>/selection_returns.npz`` (atomically)."""
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in returns.items()}
    atomic_write(run_dir / RETURNS_FILE, lambda f: np.savez(f, **arrays))


def load_checkpoint_returns(run_dir: Path) -> dict[str, F64]:
    """Read what :func:`save_checkpoint_returns` wrote (empty when nothing was)."""
    return _read_float_arrays(run_dir / RETURNS_FILE)


def total_return(returns_T: F64) -> float:
    """Compounded return of a per-step return series."""
    return float(np.prod(1.0 + returns_T) - 1.0)


def select_run(
    run_dir: Path,
    prep: Prepared,
    policy: Policy,
    checkpoint_returns: Mapping[str, F64],
    *,
    best: str | None,
) -> Selection | None:
    """Decide what the run trades (module docstring) and write ``<run>/selection.json``.

    ``policy`` is the best checkpoint's greedy policy, ``best`` the key of its returns in ``checkpoint_returns``
    (None: score ``policy`` now). Returns None (and writes nothing) when the run has no validation range.
    """
    period, confirm_range = prep.validation_slice(), prep.confirmation_range()
    if period is None or confirm_range is None:
        return None
    s = prep.cfg.selection
    base = baseline_returns(prep, period)
    agent = (
        checkpoint_returns[best]
        if best is not None and best in checkpoint_returns
        else policy_returns(prep, period, policy)
    )
    scores = {name: total_return(r) for name, r in base.items()} | {"agent": total_return(agent)}
    pbo = _pbo({**base, **(dict(checkpoint_returns) or {"agent": agent})})
    confirm: dict[str, F64] | None
    try:
        cper = prep.period(confirm_range)
    except PeriodError:
        confirm = None
    else:
        confirm = baseline_returns(prep, cper) | {"agent": policy_returns(prep, cper, policy)}
    detail = {f"{k}_selection": v for k, v in {**base, "agent": agent}.items()}
    detail |= {f"{k}_confirmation": v for k, v in (confirm or {}).items()}
    arrays: dict[str, Any] = dict(detail)
    atomic_write(run_dir / DETAIL_FILE, lambda f: np.savez(f, **arrays))
    rng = np.random.default_rng(np.random.SeedSequence([prep.cfg.seed, 0x5E1EC7]))
    sel = decide(scores, confirm, rng=rng, n_resamples=s.n_resamples, level=s.level)
    start, step = int(period.clock.time_of(0)), prep.cfg.env.step.us
    write_json_atomic(
        run_dir / SELECTION_FILE,
        {
            **sel.to_dict(),
            "selection_window": TimeRange(start, start + period.n_steps * step).to_dict(),
            "confirmation_window": confirm_range.to_dict(),
            "checkpoint_pbo": None if pbo is None else pbo.to_dict(),
            "checkpoints": sorted(checkpoint_returns),
            "best_checkpoint": best,
        },
    )
    return sel


def _pbo(returns: Mapping[str, F64]) -> Pbo | None:
    """PBO over the candidates, or None when they are too few or too short to split."""
    if len(returns) < len(BASELINES) + 1:
        return None
    try:
        return pbo_cscv(returns)
    except ValueError:
        return None


def read_selection_detail(run_dir: Path) -> dict[str, F64]:
    """Read ``<run>/selection_detail.npz`` (:data:`DETAIL_FILE`; empty when the run has none)."""
    return _read_float_arrays(run_dir / DETAIL_FILE)


def read_selection(run_dir: Path) -> dict[str, Any] | None:
    """``<run>/selection.json`` (None when the run made none: trained before selections, or without validation)."""
    path = run_dir / SELECTION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else None


def _read_float_arrays(path: Path) -> dict[str, F64]:
    """Read every array of the ``.npz`` at ``path`` as float64 (empty when the file does not exist)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
