"""Paper broker: executes the live engine's target positions with the backtest's fill rule, costs and accounting.

Decision ``i`` is taken at clock time ``t_i = start + i · step`` with a target position ``p_i ∈ {-1, 0, +1}``
(× ``position_fraction``). It fills at ``P_i``, the first trade of the traded symbol in the first step bar
opening at or after ``t_i + latency``: the open of the first *traded* bar opening at or after that time,
which is :func:`rltrade.env.prices.execution_prices`' rule on the bars the live trades make (a bar's open is
its first trade). ``fill_us`` is that bar's open time, as in the backtest; ``trade_us`` the trade's own time.
Every decision gets a fill, also when the position does not change: ``P_i`` is the price the hold from
decision ``i`` to ``i + 1`` starts at. Orders are pending until the trade that satisfies the rule arrives;
a trade can fill several pending orders (after a silent spell).

Accounting is :func:`rltrade.training.backtest.backtest_actions`' exactly: when ``P_{i+1}`` prints, log equity
moves by ``position_log_return(p_i, p_{i−1}, log P_{i+1} − log P_i, carry_i)`` (:mod:`rltrade.env.fills`:
fee, half spread and impact on the change, the carry (borrow or funding) over ``(t_i, t_{i+1}]``), and the fee of
decision ``i`` is paid on the equity before it. :meth:`PaperBroker.result` hands the session's fills to
``backtest_actions`` itself, so the report's equity curve, trades table and metrics are the backtest's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from rltrade.config import EnvConfig, RewardConfig
from rltrade.env.fills import CostModel, position_log_return, short_carry
from rltrade.env.prices import PeriodData, ewm_volatility
from rltrade.features.clock import DecisionClock
from rltrade.features.regime import REGIME_UNKNOWN
from rltrade.training.backtest import BacktestResult, backtest_actions


class BrokerError(RuntimeError):
    """An order that breaks the broker's contract (not the next clock step, or not a valid position)."""


@dataclass(frozen=True, slots=True)
class Fill:
    """Decision ``t_idx`` (target ``position``) filled at ``price``."""

    t_idx: int
    decision_us: int
    fill_us: int
    """Open time of the step bar holding the fill trade (the backtest's ``fill_us``)."""
    trade_us: int
    price: float
    position: int
    prev_position: int
    cost: float
    """Fraction of equity paid for the change (fee, half spread, impact)."""
    equity: float
    """Equity (quote) just before this fill's costs."""


def fill_after_us(decision_us: int, latency_us: int, step_us: int) -> int:
    """Open of the first step bar at or after ``decision_us + latency_us``: the first trade at or after it fills."""
    return -(-(decision_us + latency_us) // step_us) * step_us


class PaperBroker:
    """Pending orders, fills and equity of one paper session (module docstring)."""

    def __init__(
        self,
        env_cfg: EnvConfig,
        *,
        initial_equity: float = 10_000.0,
        funding: pl.DataFrame | None = None,
    ) -> None:
        self.env_cfg = env_cfg
        self.costs = CostModel.from_config(env_cfg)
        self.step_us = env_cfg.step.us
        self.latency_us = env_cfg.latency_us
        self.initial_equity = initial_equity
        self.funding = funding
        self.start_us: int | None = None
        self.target: list[int] = []
        """``p_i`` of every decision so far."""
        self.mark: list[float] = []
        """Decision-time mark ``m_i`` (last traded price before ``t_i``)."""
        self.fill_price: list[float] = []
        self.fill_us: list[int] = []
        self.trade_us: list[int] = []
        self.log_equity = 0.0
        """``log(E / E_0)`` just before the last fill's costs (the backtest's ``e_pre`` at the last fill)."""
        self.fees_paid = 0.0

    # ------------------------------------------------------------------ orders and fills
    @property
    def n_decisions(self) -> int:
        """The number of decisions submitted."""
        return len(self.target)

    @property
    def n_filled(self) -> int:
        """The number of decisions filled."""
        return len(self.fill_price)

    @property
    def position(self) -> int:
        """The target of the last filled decision: what is held now (0 before any fill)."""
        return self.target[self.n_filled - 1] if self.n_filled else 0

    def time_of(self, t_idx: int) -> int:
        """Return the clock time (µs) of decision ``t_idx``; the session must have started."""
        assert self.start_us is not None
        return self.start_us + t_idx * self.step_us

    def submit(self, t_idx: int, decision_us: int, position: int, mark: float) -> None:
        """Queue decision ``t_idx`` (the next clock step) at ``decision_us`` with target ``position``."""
        if position not in (-1, 0, 1):
            raise BrokerError(f"target position must be -1, 0 or +1, got {position} at step {t_idx}")
        if self.start_us is None:
            self.start_us = decision_us - t_idx * self.step_us
            if t_idx != 0:
                raise BrokerError(f"the first decision must be step 0, got step {t_idx}")
        if t_idx != self.n_decisions or decision_us != self.time_of(t_idx):
            raise BrokerError(
                f"decision {t_idx} at {decision_us} µs is not the next clock step "
                f"({self.n_decisions} at {self.time_of(self.n_decisions)} µs)"
            )
        self.target.append(int(position))
        self.mark.append(float(mark))

    def on_trade(self, ts_us: int, price: float) -> list[Fill]:
        """Feed a trade of the traded symbol (in time order): fill every pending order it satisfies."""
        fills: list[Fill] = []
        while self.n_filled < self.n_decisions:
            i = self.n_filled
            if ts_us < fill_after_us(self.time_of(i), self.latency_us, self.step_us):
                break
            fills.append(self._fill(i, ts_us, price))
        return fills

    def _fill(self, i: int, ts_us: int, price: float) -> Fill:
        if i >= 1:
            prev = self.target[i - 2] if i >= 2 else 0
            t = np.array([self.time_of(i - 1), self.time_of(i)], np.int64)
            log_ret = np.log(np.array([price]))[0] - np.log(np.array([self.fill_price[i - 1]]))[0]
            net, _ = position_log_return(
                self.target[i - 1], prev, log_ret, short_carry(t, self.env_cfg, self.funding)[0], self.costs
            )
            self.log_equity += float(net)
        p, prev_p = self.target[i], (self.target[i - 1] if i >= 1 else 0)
        cost = float(self.costs.cost_fraction(p - prev_p))
        equity = self.initial_equity * float(np.exp(self.log_equity))
        self.fees_paid += equity * cost
        bar_us = ts_us // self.step_us * self.step_us
        self.fill_price.append(float(price))
        self.fill_us.append(bar_us)
        self.trade_us.append(ts_us)
        return Fill(i, self.time_of(i), bar_us, ts_us, float(price), p, prev_p, cost, equity)

    # ------------------------------------------------------------------ valuation and report
    def equity_at(self, price: float | None = None) -> float:
        """Equity (quote) after the last fill's costs, marked to ``price`` when given (the held position's move)."""
        if not self.n_filled:
            return self.initial_equity
        i = self.n_filled - 1
        prev = self.target[i - 1] if i >= 1 else 0
        log_e = self.log_equity + float(np.log1p(-self.costs.cost_fraction(self.target[i] - prev)))
        if price is not None:
            s = self.costs.position_fraction * self.target[i]
            log_e += s * float(np.log(price / self.fill_price[i]))
        return self.initial_equity * float(np.exp(log_e))

    def session_period(self, n_steps: int | None = None) -> PeriodData | None:
        """Return the session's filled decisions as a :class:`PeriodData` (price fields only; None before 2 fills).

        ``n_steps`` decisions (default: every decision whose next fill is known), closed at ``P_{n_steps}``.
        Regime and pivot fields are unknown (-1): the report does not read them.
        """
        n = self.n_filled - 1 if n_steps is None else min(n_steps, self.n_filled - 1)
        if n < 1 or self.start_us is None:
            return None
        clock = DecisionClock(self.start_us, self.step_us, n + 1)
        fill_T = np.asarray(self.fill_price[: n + 1], np.float64)
        mark_T = np.asarray(self.mark[: n + 1], np.float64)
        log_ret = np.diff(np.log(fill_T))
        reward = RewardConfig()
        return PeriodData(
            clock=clock,
            n_steps=n,
            fill_price_T=fill_T,
            fill_us_T=np.asarray(self.fill_us[: n + 1], np.int64),
            mark_T=mark_T,
            log_ret_T=log_ret,
            mark_log_ret_T=np.diff(np.log(mark_T)),
            carry_T=short_carry(clock.time_of(np.arange(n + 1)), self.env_cfg, self.funding),
            vol_T=ewm_volatility(log_ret, reward.vol_halflife_steps, reward.vol_floor),
            regime_T=np.full(n, REGIME_UNKNOWN, np.int8),
            pivot_low_T=np.full(n, -1, np.int64),
            pivot_high_T=np.full(n, -1, np.int64),
        )

    def result(self, n_steps: int | None = None) -> BacktestResult | None:
        """Equity curve, trades and metrics of the session by ``backtest_actions`` (None before 2 fills)."""
        period = self.session_period(n_steps)
        if period is None:
            return None
        actions_T = np.asarray(self.target[: period.n_steps], np.int64) + 1
        return backtest_actions(period, actions_T, self.env_cfg, initial_equity=self.initial_equity)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (numbers and lists only)."""
        return {
            "start_us": self.start_us,
            "target": list(self.target),
            "mark": list(self.mark),
            "fill_price": list(self.fill_price),
            "fill_us": list(self.fill_us),
            "trade_us": list(self.trade_us),
            "log_equity": self.log_equity,
            "fees_paid": self.fees_paid,
            "initial_equity": self.initial_equity,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state :meth:`state_dict` returned."""
        self.start_us = None if state["start_us"] is None else int(state["start_us"])
        self.target = [int(x) for x in state["target"]]
        self.mark = [float(x) for x in state["mark"]]
        self.fill_price = [float(x) for x in state["fill_price"]]
        self.fill_us = [int(x) for x in state["fill_us"]]
        self.trade_us = [int(x) for x in state["trade_us"]]
        self.log_equity = float(state["log_equity"])
        self.fees_paid = float(state["fees_paid"])
        self.initial_equity = float(state["initial_equity"])
