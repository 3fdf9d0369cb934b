"""Supervised targets of the per-timeframe CNNs. These look ahead by design: never a state feature.

Kept apart from :mod:`rltrade.features` (vectorbt keeps ``labels`` apart from its indicators the same
way): everything here at bar ``e`` reads bars *after* ``e``. What makes them safe to train on is that
each label records the time its window **ends**, and walk-forward fitting only uses labels that ended
before the period they feed (:mod:`rltrade.models.walkforward`).

For the window whose last bar is ``e`` (visible from its close ``close_us[e]``), with horizon ``h``:

* **class**: ``r = log(close[e+h] / close[e])``; down (0) when ``r < -band``, up (2) when ``r > band``,
  flat (1) otherwise. Its window ends at ``close_us[e+h]``, the close of the bar that decides it. Bars
  count stored bars: across an outage the horizon spans more time, as the state windows do.
* **next-pivot distance**: the next level-0 Williams pivot (:mod:`rltrade.features.pivots`, high or low)
  to be *confirmed* after ``close_us[e]`` (so it may sit on bar ``e`` itself or up to ``n`` bars before it:
  it was not known yet), as ``log(pivot price / close[e])`` in units of the bar's ATR / close (the state's
  ``atr_close`` channel), clipped to ±``clip``. Its window ends at that pivot's confirmation time. A bar
  that is both a swing high and a swing low (an outside bar) counts as the high.

A label whose window would end after the data is missing: class -1 / distance NaN, end :data:`END_NEVER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from rltrade.data.align import BarArrays
from rltrade.features.pivots import compute_pivots
from rltrade.types import Timeframe

END_NEVER: Final = np.iinfo(np.int64).max
"""Window end of a label that the data cannot decide (its future is not in the data)."""
DOWN, FLAT, UP = 0, 1, 2
CLASS_NAMES: Final = ("down", "flat", "up")
N_CLASSES: Final = 3


@dataclass(frozen=True, eq=False)
class Labels:
    """Targets of every window of one timeframe's traded-symbol bars, indexed by the window's last bar."""

    tf: Timeframe
    horizon: int
    fwd_ret_T: npt.NDArray[np.float64]
    """``log(close[e+h] / close[e])``; NaN where bar ``e+h`` is not in the data."""
    class_end_us_T: npt.NDArray[np.int64]
    """Close of bar ``e+h``: when the class label's window ends (:data:`END_NEVER` where missing)."""
    pivot_dist_T: npt.NDArray[np.float32]
    """Signed distance to the next pivot confirmed after the window, in ATRs; NaN where none or no ATR."""
    pivot_end_us_T: npt.NDArray[np.int64]
    """That pivot's confirmation time (:data:`END_NEVER` where none)."""

    def __len__(self) -> int:
        """Return the number of windows."""
        return int(self.fwd_ret_T.shape[0])

    def classes(self, band: float) -> npt.NDArray[np.int8]:
        """Class of every window with flat band ``band`` (-1 where the label is missing)."""
        return classify(self.fwd_ret_T, band)


def forward_returns(bars: BarArrays, horizon: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """``(log(close[e+h] / close[e]), close_us[e+h])`` per bar ``e``; NaN / :data:`END_NEVER` past the data."""
    if horizon < 1:
        raise ValueError(f"label horizon must be >= 1 bar, got {horizon}")
    n = len(bars)
    ret = np.full(n, np.nan)
    end = np.full(n, END_NEVER, np.int64)
    if n > horizon:
        ret[: n - horizon] = np.log(bars.close_T[horizon:] / bars.close_T[: n - horizon])
        end[: n - horizon] = bars.close_us_T[horizon:]
    return ret, end


def next_pivot(bars: BarArrays, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Price and confirmation time of the first level-0 pivot confirmed after each bar's close.

    NaN / :data:`END_NEVER` where no pivot is confirmed after that bar within the data.
    """
    if len(bars) == 0:
        return np.empty(0), np.empty(0, np.int64)
    piv = compute_pivots(bars.high_T, bars.low_T, bars.open_us_T, bars.tf.us, n=n, levels=1)
    highs, lows = piv.highs[0], piv.lows[0]
    confirm = np.concatenate([highs.confirm_us_P, lows.confirm_us_P])
    price = np.concatenate([highs.price_P, lows.price_P])
    # Stable sort with highs first: on an outside bar (high and low pivot at once) the high comes first.
    order = np.argsort(confirm, kind="stable")
    confirm, price = confirm[order], price[order]
    if confirm.shape[0] == 0:
        return np.full(len(bars), np.nan), np.full(len(bars), END_NEVER, np.int64)
    k = np.searchsorted(confirm, bars.close_us_T, side="right")
    found = k < confirm.shape[0]
    safe = np.minimum(k, confirm.shape[0] - 1)
    return np.where(found, price[safe], np.nan), np.where(found, confirm[safe], END_NEVER)


def make_labels(
    bars: BarArrays,
    atr_close_T: npt.ArrayLike,
    *,
    horizon: int,
    pivot_n: int = 2,
    clip: float = 10.0,
) -> Labels:
    """Both targets for every window of ``bars`` (see the module docstring).

    ``atr_close_T`` is ATR / close per bar (the ``atr_close`` bar channel, 0 in its warm-up, where the
    distance is missing).
    """
    atr = np.asarray(atr_close_T, dtype=np.float64)
    if atr.shape != (len(bars),):
        raise ValueError(f"atr_close_T has shape {atr.shape}, expected ({len(bars)},)")
    ret, class_end = forward_returns(bars, horizon)
    price, pivot_end = next_pivot(bars, pivot_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.log(price / bars.close_T) / atr
    ok = np.isfinite(dist) & (atr > 0)
    dist = np.where(ok, np.clip(dist, -clip, clip), np.nan).astype(np.float32)
    return Labels(bars.tf, horizon, ret, class_end, dist, np.where(ok, pivot_end, END_NEVER))


def classify(fwd_ret: npt.ArrayLike, band: float) -> npt.NDArray[np.int8]:
    """Classify: down 0 / flat 1 / up 2 for ``r < -band`` / ``|r| <= band`` / ``r > band``; -1 where ``r`` is NaN."""
    r = np.asarray(fwd_ret, dtype=np.float64)
    out = np.full(r.shape, FLAT, np.int8)
    out[r < -band] = DOWN
    out[r > band] = UP
    out[~np.isfinite(r)] = -1
    return out


def fit_flat_band(fwd_ret: npt.ArrayLike, quantile: float) -> float:
    """Find the band putting a ``quantile`` share of ``fwd_ret`` (training labels only) in the flat class."""
    r = np.abs(np.asarray(fwd_ret, dtype=np.float64))
    r = r[np.isfinite(r)]
    if r.size == 0:
        raise ValueError("cannot fit a flat band on no labels")
    return float(np.quantile(r, quantile))


def class_frequencies(classes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Share of down / flat / up among the labelled entries (missing ones, -1, left out)."""
    c = np.asarray(classes)
    c = c[c >= 0]
    counts = np.bincount(c.astype(np.int64), minlength=N_CLASSES)[:N_CLASSES].astype(np.float64)
    return counts / max(float(counts.sum()), 1.0)
