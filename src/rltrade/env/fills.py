"""Fills, costs and the account.

What a position change costs, what holding a short costs, and the per-episode account the observation shows.

Position model. A position is ``s = position_fraction · p`` with ``p ∈ {-1, 0, +1}`` (short, flat, long).
Held from the fill price ``P_i`` of decision ``i`` to the fill price ``P_{i+1}`` of the next decision, it
multiplies equity by ``(P_{i+1} / P_i) ** s``: log equity moves by ``s · log(P_{i+1} / P_i)``. This is exact
for a fully invested long (equity tracks units × price) and makes long and short exactly symmetric in log
terms (SPEC §2.5: a mirrored price path gives the negated PnL). For a short it equals re-sizing the short to
``s · equity`` at every step at no cost; against holding a fixed number of coins short it is optimistic by
about the squared log move over the hold (0.5 bp of equity for a 1 % move).

Costs of a change ``Δ = |p_i − p_{i−1}|`` (0, 1 or 2), charged on the equity at the fill: the traded
fraction of equity ``q = position_fraction · Δ`` pays ``q · (taker_fee + (half_spread_bps + impact_bps · q)
· 1e-4)``, i.e. log equity moves by ``log1p(−that)``. Carry, ``carry_i`` per unit of short fraction over the
step, enters as ``log1p(s · carry_i)``:

* spot (no funding table): a short pays the borrow rate, ``borrow_annual_rate · step / year`` (a year is
  365.25 days); a long pays nothing;
* perpetual futures (``env.funding_file``): ``carry_i`` is minus the funding rates of the events in
  ``(t_i, t_{i+1}]``, and *both* sides hold it: a long pays a positive rate and a short receives it (the
  exchange's rule: longs pay shorts when the rate is positive), so carry can be negative.

The account block (``features.account``) must be causal, but the fill of the decision just taken prints
after the next state's time. So the account tracks a *mark equity*: the same formula with decision-time
marks ``m_i`` (the last price before ``t_i``) in place of fills. It differs from the true equity only
by the slippage between decision marks and fills, which is not known at ``t``. Rewards, metrics and the
ruin test use the true equity. ``time_in_trade`` counts the steps since the current long or short was
entered (0 when flat).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import EnvConfig, trade_cost_fraction
from rltrade.data.importers import median_half_spread_bps, read_book_ticker
from rltrade.features.account import ACCOUNT_DIM, TIME_IN_TRADE_SCALE
from rltrade.types import US_PER_DAY

YEAR_US = int(365.25 * US_PER_DAY)
"""A year of a 24/7 market (365.25 days), in µs: the unit of annual rates and of annualisation."""

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CostModel:
    """The cost scalars of :class:`EnvConfig` (see the module docstring for the formulas)."""

    taker_fee: float
    half_spread_bps: float
    impact_bps: float
    position_fraction: float
    funding: bool = False
    """Perpetual futures: longs hold the carry too (with the opposite sign), not only shorts."""

    @classmethod
    def from_config(cls, cfg: EnvConfig) -> CostModel:
        """Return the cost model of the env config (fee, half spread, impact, position fraction, funding)."""
        return cls(
            cfg.taker_fee, cfg.half_spread_bps, cfg.impact_bps, cfg.position_fraction, cfg.funding_file is not None
        )

    def cost_fraction(self, delta_units: npt.ArrayLike) -> F64:
        """Fraction of equity paid for changing the position by ``delta_units`` (``|p_i − p_{i−1}|``)."""
        q = self.position_fraction * np.abs(np.asarray(delta_units, dtype=np.float64))
        return trade_cost_fraction(q, self.taker_fee, self.half_spread_bps, self.impact_bps)

    @property
    def round_trip(self) -> float:
        """Log cost, per unit of position fraction, of entering and later leaving a position (two trades)."""
        return float(-2.0 * np.log1p(-self.cost_fraction(1.0)) / self.position_fraction)


def with_measured_spread(cfg: EnvConfig, book_ticker: str | Path) -> EnvConfig:
    """``cfg`` with ``half_spread_bps`` measured on a book-ticker file (median over its updates)."""
    return cfg.model_copy(update={"half_spread_bps": median_half_spread_bps(read_book_ticker(book_ticker))})


def position_log_return(
    position: npt.ArrayLike,
    prev_position: npt.ArrayLike,
    log_ret: npt.ArrayLike,
    carry: npt.ArrayLike,
    costs: CostModel,
) -> tuple[F64, F64]:
    """Log equity change of a step and the fraction of equity paid in trading costs.

    ``position`` is the target held over the step (``p_i``), ``prev_position`` the one held before
    (``p_{i−1}``), ``log_ret`` the price log return over the step, ``carry`` the short carry per unit of
    short fraction. Returns ``(s · log_ret + log1p(−cost) + [holds carry] · log1p(s · carry), cost)``, where
    a short always holds the carry and a long only under ``costs.funding`` (module docstring).
    """
    p = np.asarray(position, dtype=np.float64)
    cost = costs.cost_fraction(p - np.asarray(prev_position, dtype=np.float64))
    s = costs.position_fraction * p
    holds = (p != 0) if costs.funding else (p < 0)
    carry_log = np.where(holds, np.log1p(s * np.asarray(carry, dtype=np.float64)), 0.0)
    return s * np.asarray(log_ret, dtype=np.float64) + np.log1p(-cost) + carry_log, cost


def short_carry(times_us: npt.NDArray[np.int64], cfg: EnvConfig, funding: pl.DataFrame | None = None) -> F64:
    """Carry per unit of short fraction for each step ``(times_us[i], times_us[i+1]]`` (``len − 1`` values).

    Without ``funding``: the constant borrow rate, pro rata. With ``funding`` (a
    :func:`rltrade.data.importers.read_funding` frame): minus the sum of the funding rates of the events
    inside each step (a short on a perpetual receives positive funding, a long pays it:
    :func:`position_log_return` under ``CostModel.funding``). The table must cover the steps.
    """
    t = np.asarray(times_us, dtype=np.int64)
    if funding is None:
        return cfg.borrow_annual_rate * (np.diff(t) / YEAR_US)
    if funding.is_empty():
        raise ValueError("funding table is empty; pass None to use borrow_annual_rate instead")
    ts = funding["ts_us"].to_numpy().astype(np.int64)
    gap = int(np.max(np.diff(ts))) if ts.size > 1 else YEAR_US
    if ts[0] > t[0] or ts[-1] + gap < t[-1]:
        raise ValueError(
            f"funding table covers {ts[0]}..{ts[-1]} µs but the steps run {t[0]}..{t[-1]} µs; "
            "pass a funding file covering the period, or none to use borrow_annual_rate"
        )
    cum = np.concatenate([[0.0], np.cumsum(funding["funding_rate"].to_numpy().astype(np.float64))])
    # Events with t_i < ts <= t_{i+1}: cum up to searchsorted(right) differences.
    k = np.searchsorted(ts, t, side="right")
    return -np.diff(cum[k])


def held_positions(
    wanted: npt.NDArray[np.int8], position: npt.NDArray[np.int8], held_steps: npt.NDArray[np.int64], min_hold: int
) -> npt.NDArray[np.int8]:
    """Apply a minimum holding time to the ``wanted`` positions.

    ``position`` is kept where it is long or short and has been held for fewer than ``min_hold`` steps
    (``held_steps``: steps since it was opened); elsewhere ``wanted`` is taken.
    """
    if min_hold <= 1:
        return wanted
    locked = (position != 0) & (held_steps < min_hold)
    return np.where(locked, position, wanted).astype(np.int8)


@dataclass(eq=False)
class AccountBook:
    """The accounts of ``E`` parallel episodes (arrays ``[E]``), updated in place step by step.

    ``log_equity`` is the true log equity since the episode start (fills), the ``mark_*`` fields the
    causal mark equity the observation shows (module docstring). Equity starts at 1 every episode.
    """

    position: npt.NDArray[np.int8]
    log_equity: F64
    mark_log_equity: F64
    mark_peak: F64
    entry_mark_log: F64
    entry_step: npt.NDArray[np.int64]
    fees_paid: F64
    """Trading costs paid in the episode, in units of the episode's starting equity."""

    @classmethod
    def zeros(cls, n: int) -> AccountBook:
        """Return the books of ``n`` episodes at their start: flat, equity 1, nothing paid."""
        f = np.zeros(n, np.float64)
        return cls(np.zeros(n, np.int8), f.copy(), f.copy(), f.copy(), f.copy(), np.zeros(n, np.int64), f.copy())

    def reset(self, mask: npt.NDArray[np.bool_]) -> None:
        """Start a new episode (flat, equity 1) where ``mask`` is set."""
        for arr in (self.log_equity, self.mark_log_equity, self.mark_peak, self.entry_mark_log, self.fees_paid):
            arr[mask] = 0.0
        self.position[mask] = 0
        self.entry_step[mask] = 0

    def apply(
        self,
        new_position: npt.NDArray[np.int8],
        log_change: F64,
        mark_log_change: F64,
        cost: F64,
        t_idx: npt.NDArray[np.int64],
    ) -> None:
        """Record decision ``new_position`` taken at step ``t_idx`` and the step's true and mark changes."""
        entering = new_position != self.position
        self.fees_paid += cost * np.exp(self.log_equity)
        self.entry_mark_log = np.where(entering, self.mark_log_equity, self.entry_mark_log)
        self.entry_step = np.where(entering, t_idx, self.entry_step)
        self.log_equity += log_change
        self.mark_log_equity += mark_log_change
        np.maximum(self.mark_peak, self.mark_log_equity, out=self.mark_peak)
        self.position[:] = new_position

    def vectors(self, t_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Account blocks ``float32 [E, ACCOUNT_DIM]`` at steps ``t_idx`` (as ``features.account_vector``)."""
        held = self.position != 0
        out = np.empty((self.position.shape[0], ACCOUNT_DIM), np.float32)
        out[:, 0] = self.position
        out[:, 1] = np.where(held, self.mark_log_equity - self.entry_mark_log, 0.0)
        out[:, 2] = np.log1p(np.where(held, t_idx - self.entry_step, 0)) / TIME_IN_TRADE_SCALE
        out[:, 3] = self.mark_log_equity
        out[:, 4] = self.mark_log_equity - self.mark_peak
        return out
