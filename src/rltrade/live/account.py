"""The account block of the live observation, built as the env builds it, and the decision-time marks.

The env (:class:`rltrade.env.trading_env.EpisodeBatch`) shows the agent a *mark equity*
(:mod:`rltrade.env.fills`): after decision ``i`` (target ``p_i``) it applies
``position_log_return(p_i, p_{i−1}, log m_{i+1} − log m_i, carry_i)`` with ``m_i`` the close of the last
step bar closed by ``t_i``. Live, ``m_{i+1}`` is known only at ``t_{i+1}``, so :class:`LiveAccount` keeps
decision ``i`` pending and applies it, with the same :class:`~rltrade.env.fills.AccountBook`, just before
the observation at ``t_{i+1}`` is read: the vectors are the env's.

``m_i`` is the last traded price strictly before ``t_i`` (the close of the last step bar closed by a clock
time on the step grid), carried over quiet bars: :class:`MarkTracker` follows it from the trades.
In the live book ``log_equity`` is the mark equity too: the true (fill) equity is the broker's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import EnvConfig
from rltrade.data.market import MarketFrames
from rltrade.env.fills import AccountBook, CostModel, position_log_return, short_carry


class MarkTracker:
    """The last traded price before a time, from trades fed in time order (module docstring)."""

    def __init__(self, last_us: int, last_price: float, prev_price: float) -> None:
        self.last_us = last_us
        self.last_price = last_price
        """Price of the newest trade (the last one at ``last_us``)."""
        self.prev_price = prev_price
        """Price of the last trade strictly before ``last_us``."""

    @classmethod
    def from_history(cls, history: MarketFrames, role: str, t0_us: int, step_us: int) -> MarkTracker:
        """Start from the trades of ``role`` at or before ``t0_us`` (or the last bar closed by it without trades)."""
        trades = history.trades.get(role)
        if trades is not None:
            trades = trades.filter(pl.col("ts_us") <= t0_us)
        if trades is not None and trades.height:
            last_us = int(trades.item(-1, "ts_us"))
            before = trades.filter(pl.col("ts_us") < last_us)
            last = float(trades.item(-1, "price"))
            return cls(last_us, last, float(before.item(-1, "price")) if before.height else last)
        tf = next((tf for tf in history.bars.get(role, {}) if tf.us == step_us), None)
        bars = history.bars[role][tf].filter(pl.col("open_us") + step_us <= t0_us) if tf is not None else None
        if bars is None or bars.height == 0:
            raise ValueError(
                f"no {role} trade or bar closed by {t0_us} µs in the history: the live engine needs a last price to "
                "value the account; warm start later or load more history"
            )
        close = float(bars.item(-1, "close"))
        return cls(int(bars.item(-1, "open_us")), close, close)

    def on_trade(self, ts_us: int, price: float) -> None:
        """Feed the next trade's time and price (in time order); the previous price moves on only when the time does."""
        if ts_us > self.last_us:
            self.prev_price = self.last_price
            self.last_us = ts_us
        self.last_price = price

    def mark_before(self, t_us: int) -> float:
        """Price of the last trade with time ``< t_us`` (``t_us`` ≥ the newest trade fed)."""
        return self.last_price if self.last_us < t_us else self.prev_price


class LiveAccount:
    """An :class:`AccountBook` of one episode, fed decision by decision (module docstring)."""

    def __init__(self, env_cfg: EnvConfig, funding: pl.DataFrame | None = None) -> None:
        self.env_cfg = env_cfg
        self.costs = CostModel.from_config(env_cfg)
        self.funding = funding
        self.book = AccountBook.zeros(1)
        self.pending: tuple[int, int, float, float] | None = None
        """Decision not yet applied: ``(t_idx, position, mark, carry)``."""

    def vector(self, t_idx: int, mark: float) -> npt.NDArray[np.float32]:
        """Return the account block ``float32 [1, ACCOUNT_DIM]`` at step ``t_idx`` whose mark is ``mark``."""
        if self.pending is not None:
            i, p, m0, carry = self.pending
            mark_change, cost = position_log_return(
                p, int(self.book.position[0]), np.log(mark) - np.log(m0), carry, self.costs
            )
            change = np.atleast_1d(mark_change)
            self.book.apply(np.array([p], np.int8), change, change, np.atleast_1d(cost), np.array([i], np.int64))
            self.pending = None
        return self.book.vectors(np.array([t_idx], np.int64))

    def record(self, t_idx: int, decision_us: int, position: int, mark: float) -> None:
        """Decision ``t_idx`` at ``decision_us``: target ``position``, mark ``mark``; applied at the next step."""
        t = np.array([decision_us, decision_us + self.env_cfg.step.us], np.int64)
        self.pending = (t_idx, position, mark, float(short_carry(t, self.env_cfg, self.funding)[0]))

    def state_dict(self) -> dict[str, Any]:
        """Return the book and the pending fill as JSON-ready values."""
        book = {name: np.asarray(getattr(self.book, name)).tolist() for name in _BOOK_FIELDS}
        return {"book": book, "pending": None if self.pending is None else list(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state :meth:`state_dict` returned."""
        for name in _BOOK_FIELDS:
            cur = getattr(self.book, name)
            setattr(self.book, name, np.asarray(state["book"][name], dtype=cur.dtype))
        pend = state["pending"]
        self.pending = None if pend is None else (int(pend[0]), int(pend[1]), float(pend[2]), float(pend[3]))


_BOOK_FIELDS = ("position", "log_equity", "mark_log_equity", "mark_peak", "entry_mark_log", "entry_step", "fees_paid")
