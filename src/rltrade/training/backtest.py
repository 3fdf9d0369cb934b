"""Backtest engine: a policy or an action sequence over a whole period, with the env's fills and costs.

The clock is stepped deterministically from the period's first step to its last (no random start, no
ruin stop). :func:`backtest_policy` runs a policy ``obs_BF -> actions_B`` on the same observations as the
env (market state + account block, gathered in chunks) through the env's own episode core, then hands its
actions to :func:`backtest_actions`, which does the accounting vectorised:

* ``log E_{i+1} − log E_i = position_log_return(p_i, p_{i−1}, log(P_{i+1}/P_i), carry_i)`` (``rltrade.env.fills``);
* the position still open after the last decision is closed at ``P_n``, paying its costs, so the final
  equity and every metric are after every cost;
* ``steps``: one row per decision step plus the final one: ``t_idx``, ``time_us`` (decision time),
  ``fill_us``, ``fill_price``, ``position`` (held after the decision; 0 after the final liquidation),
  ``cost`` (fraction of equity paid at that fill), ``equity`` (before that step's trade; the last row after
  liquidation);
* ``trades``: one row per position held: ``entry_us`` / ``exit_us`` (fill times), ``entry_step`` /
  ``exit_step``, ``side`` (``long`` / ``short``), ``entry_price`` / ``exit_price``, ``fees`` (quote), ``pnl``
  (quote, after fees and carry) and ``log_return``. A reversal's cost is split half to the trade it closes
  and half to the one it opens, so the trades' pnl sums exactly to the final minus the initial equity;
* ``metrics``: :func:`rltrade.training.metrics.compute_metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.fills import CostModel, position_log_return
from rltrade.env.prices import PeriodData
from rltrade.env.trading_env import EpisodeBatch
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.training.metrics import BacktestMetrics, compute_metrics

Policy = Callable[[npt.NDArray[np.float32]], npt.ArrayLike]
"""Maps observations ``float32 [B, F]`` to actions ``[B]`` in {0: short, 1: flat, 2: long}."""

RowPolicy = Callable[[int, npt.NDArray[np.float32]], npt.ArrayLike]
"""``act(j, obs_1F)``: the action at row ``j`` of an encoded chunk, given that step's observation."""


@runtime_checkable
class ChunkPolicy(Protocol):
    """A policy that can do its market-state work on a chunk of states before the steps come one by one.

    ``encode(states_BF)`` returns ``act(j, obs_1F)`` for row ``j`` of the chunk (its observation: state and
    account), or None to be called per observation as a plain :data:`Policy`. The actions must be those
    the plain call gives, up to float rounding (:class:`rltrade.training.bundle.GreedyPolicy`).
    """

    def __call__(self, obs: npt.NDArray[np.float32]) -> npt.ArrayLike:
        """Actions for observations, as a plain :data:`Policy`."""
        ...

    def encode(self, states_BF: npt.NDArray[np.float32]) -> RowPolicy | None:
        """Acting on the rows of ``states_BF`` one step at a time, or None."""
        ...


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-step equity curve, trades table and metrics (module docstring)."""

    steps: pl.DataFrame
    trades: pl.DataFrame
    metrics: BacktestMetrics

    @property
    def equity_T(self) -> npt.NDArray[np.float64]:
        """The equity after each decision step (from ``steps``)."""
        return self.steps["equity"].to_numpy()

    def metrics_json(self) -> str:
        """Return the metrics as indented JSON with sorted keys."""
        return json.dumps(self.metrics, indent=2, sort_keys=True)


def backtest_actions(
    period: PeriodData, actions_T: npt.ArrayLike, env_cfg: EnvConfig, *, initial_equity: float = 10_000.0
) -> BacktestResult:
    """Account for ``actions_T`` (one per decision step, 0 short / 1 flat / 2 long) over ``period``."""
    a = np.asarray(actions_T)
    n = period.n_steps
    if a.shape != (n,) or not np.isin(a, (0, 1, 2)).all():
        raise ValueError(f"need {n} actions in {{0, 1, 2}} for the period's {n} steps, got shape {a.shape}")
    costs = CostModel.from_config(env_cfg)
    p = (a - 1).astype(np.int8)
    prev = np.concatenate([[0], p[:-1]])
    net, cost = position_log_return(p, prev, period.log_ret_T, period.carry_T, costs)
    cost_all = np.concatenate([cost, costs.cost_fraction([abs(int(p[-1]))])])
    e_pre = initial_equity * np.exp(np.concatenate([[0.0], np.cumsum(net)]))
    equity = e_pre.copy()
    equity[-1] *= 1.0 - cost_all[-1]
    trades = _trades(period, p, e_pre, cost_all)
    steps = pl.DataFrame(
        {
            "t_idx": np.arange(n + 1, dtype=np.int64),
            "time_us": period.time_us_T,
            "fill_us": period.fill_us_T,
            "fill_price": period.fill_price_T,
            "position": np.concatenate([p, [0]]).astype(np.int8),
            "cost": cost_all,
            "equity": equity,
        }
    )
    metrics = compute_metrics(
        equity_T=equity,
        position_T=p,
        log_ret_T=period.log_ret_T,
        trades=trades,
        fees_paid=float(np.sum(e_pre * cost_all)),
        step_us=period.clock.step_us,
        position_fraction=env_cfg.position_fraction,
    )
    return BacktestResult(steps, trades, metrics)


def backtest_policy(
    builder: BatchStateBuilder,
    period: PeriodData,
    policy: Policy,
    env_cfg: EnvConfig,
    *,
    initial_equity: float = 10_000.0,
    chunk: int = 1024,
) -> BacktestResult:
    """Run ``policy`` on the env's observations at every step of ``period``, then account for its actions."""
    n = period.n_steps
    core = EpisodeBatch(
        builder, period, env_cfg.model_copy(update={"ruin_equity": 0.0}), RewardConfig(), 1, episode_steps=n
    )
    core.begin(np.ones(1, bool), np.zeros(1, np.int64))
    actions = np.empty(n, np.int64)
    for c0 in range(0, n, chunk):
        idx = np.arange(c0, min(c0 + chunk, n))
        states = builder.gather(period.clock.time_of(idx))
        act_at = policy.encode(states) if isinstance(policy, ChunkPolicy) else None
        for j, i in enumerate(idx):
            obs = core.observe(states[j : j + 1])
            act = np.asarray(policy(obs) if act_at is None else act_at(j, obs)).reshape(-1)
            if act.shape != (1,):
                raise ValueError(f"policy returned {act.shape[0]} actions for 1 observation at step {i}")
            core.advance(act)
            actions[i] = int(core.book.position[0]) + 1  # what took effect (env.min_hold_steps may keep a position)
    return backtest_actions(period, actions, env_cfg, initial_equity=initial_equity)


def _trades(
    period: PeriodData, p: npt.NDArray[np.int8], e_pre: npt.NDArray[np.float64], cost: npt.NDArray[np.float64]
) -> pl.DataFrame:
    """Build the trades table from positions ``p`` (decisions 0..n-1; the position is closed at decision n)."""
    pp = np.concatenate([[0], p, [0]]).astype(np.int64)  # pp[k + 1]: position after decision k
    changed = pp[1:] != pp[:-1]
    change_k = np.flatnonzero(changed)
    entry = np.flatnonzero(changed & (pp[1:] != 0))
    exit_ = change_k[np.searchsorted(change_k, entry, side="right")]
    w_in = np.where(pp[entry] == 0, 1.0, 0.5)
    w_out = np.where(pp[exit_ + 1] == 0, 1.0, 0.5)
    start = e_pre[entry] * (1.0 - cost[entry]) ** (1.0 - w_in)
    end = e_pre[exit_] * (1.0 - cost[exit_]) ** w_out
    return pl.DataFrame(
        {
            "entry_us": period.fill_us_T[entry],
            "exit_us": period.fill_us_T[exit_],
            "entry_step": entry.astype(np.int64),
            "exit_step": exit_.astype(np.int64),
            "side": np.where(pp[entry + 1] > 0, "long", "short"),
            "entry_price": period.fill_price_T[entry],
            "exit_price": period.fill_price_T[exit_],
            "fees": w_in * cost[entry] * e_pre[entry] + w_out * cost[exit_] * e_pre[exit_],
            "pnl": end - start,
            "log_return": np.log(end / start),
        },
        schema={
            "entry_us": pl.Int64,
            "exit_us": pl.Int64,
            "entry_step": pl.Int64,
            "exit_step": pl.Int64,
            "side": pl.String,
            "entry_price": pl.Float64,
            "exit_price": pl.Float64,
            "fees": pl.Float64,
            "pnl": pl.Float64,
            "log_return": pl.Float64,
        },
    )
