"""Small shared types: timeframes, sides, regimes, and the shape-suffix legend.

Time is always an ``int64`` count of **microseconds since the Unix epoch, UTC** (``*_us``).
A bar is identified by its open time; it is *visible* from its close time ``open_us + tf.us``
(a 1h bar opened at 14:00 can be used from 15:00 on, never earlier).

Shape suffixes used in names across the package::

    T  time steps (bars or base-clock steps)     B  batch
    W  window length (bars in a state window)    C  channels per bar
    N  trades                                    A  actions
    L  pivot levels                              F  features
"""

from __future__ import annotations

import enum
from typing import Final

US_PER_SECOND: Final = 1_000_000
US_PER_MINUTE: Final = 60 * US_PER_SECOND
US_PER_HOUR: Final = 60 * US_PER_MINUTE
US_PER_DAY: Final = 24 * US_PER_HOUR


def ceil_to_grid(t: int, step: int) -> int:
    """Return the smallest multiple of ``step`` at or after ``t`` (integer µs; ``t // step * step`` floors)."""
    return -(-t // step) * step


class TimeframeError(ValueError):
    """A timeframe name rltrade does not handle."""


class Timeframe(enum.StrEnum):
    """Bar timeframes handled by rltrade, from finest to coarsest."""

    S1 = "1s"
    M1 = "1m"
    H1 = "1h"
    D1 = "1d"

    @property
    def us(self) -> int:
        """Bar length in microseconds."""
        return _TF_US[self]

    @property
    def seconds(self) -> int:
        """The bar length in whole seconds."""
        return self.us // US_PER_SECOND

    @classmethod
    def parse(cls, value: str) -> Timeframe:
        """Parse ``"1s" | "1m" | "1h" | "1d"`` with an actionable error."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise TimeframeError(f"unknown timeframe {value!r}; use one of: {allowed}") from None

    def parent(self) -> Timeframe | None:
        """Return the next coarser timeframe (``1s → 1m → 1h → 1d``), or None for 1d."""
        order = list(Timeframe)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


_TF_US: Final[dict[Timeframe, int]] = {
    Timeframe.S1: US_PER_SECOND,
    Timeframe.M1: US_PER_MINUTE,
    Timeframe.H1: US_PER_HOUR,
    Timeframe.D1: US_PER_DAY,
}


class Regime(enum.IntEnum):
    """Market regimes, shared by the synthetic generator, the classifier and reports."""

    TREND_UP = 0
    TREND_DOWN = 1
    RANGE = 2
    VOLATILE = 3


class Kind(enum.StrEnum):
    """What a stored dataset holds."""

    TRADES = "trades"
    BARS = "bars"
