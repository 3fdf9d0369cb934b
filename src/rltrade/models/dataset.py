"""One timeframe's CNN inputs and targets: per-bar channels of both symbols, labels, and window gathers.

A CNN sample is the window whose last bar is ``e`` of the traded symbol's bars at that timeframe:

* inputs ``[W, C]``: the state's bar channels (:mod:`rltrade.features.bar_channels`, relative to the
  close of bar ``e``) of the ``W`` traded-symbol bars ending at ``e``, and with ``use_reference`` the
  reference symbol's ``W`` bars closed by ``close_us[e]`` beside them (``C = 16``). Everything is known
  at ``close_us[e]``: the window is what the state's bar block holds from that close until the next;
* targets: :mod:`rltrade.models.labels` (looking ahead, each with the time its window ends).

Sample selection for fitting on a range ``R = [a, b)`` (:meth:`TimeframeData.fit_rows`): windows whose
last bar closes in ``R``, whose traded-symbol bar is past the indicator warm-up, and whose class label
window ends by ``b``; the next-pivot target of such a row is used only when it, too, is confirmed by
``b``. This is an exact purge: no target of a range ever reads data after the range.

Windows are gathered on demand per batch (``[B, W, C]`` float32), never materialised for a whole series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rltrade.config import CnnConfig, FeaturesConfig
from rltrade.data.align import BarArrays, last_closed_index
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange
from rltrade.features.bar_channels import N_BAR_CHANNELS, BarChannels, BarChannelSpec, bar_windows, compute_bar_channels
from rltrade.features.layout import build_layout
from rltrade.features.market_features import FeatureSpec, FeatureStats
from rltrade.models.labels import Labels, make_labels
from rltrade.types import Timeframe

ATR_CLOSE_CHANNEL = 3
"""Column of ``BarChannels.per_bar_T4`` holding ATR / close (bar channel 7)."""


class CnnDataError(ValueError):
    """The market lacks what a CNN needs (bars of a timeframe, the reference symbol), or a range is empty."""


def bar_spec(cfg: FeaturesConfig) -> BarChannelSpec:
    """Return the bar-channel parameters of the state (so CNN inputs are exactly the state's windows)."""
    return FeatureSpec.from_config(cfg, build_layout(cfg.layout), FeatureStats()).bar


@dataclass(frozen=True, eq=False)
class TimeframeData:
    """Inputs and targets of one timeframe's CNN (see the module docstring)."""

    tf: Timeframe
    window: int
    eth: BarArrays
    eth_channels: BarChannels
    btc_channels: BarChannels | None
    """Reference-symbol channels, or None when the CNN uses the traded symbol only."""
    btc_index_T: npt.NDArray[np.int64]
    """Per traded-symbol bar ``e``: the reference bar closed by ``close_us[e]`` (-1 before the first)."""
    labels: Labels | None
    """None when built for inference only."""

    @property
    def n_bars(self) -> int:
        """The number of bars of the traded symbol."""
        return len(self.eth)

    @property
    def close_us_T(self) -> npt.NDArray[np.int64]:
        """The close time of each bar of the traded symbol."""
        return self.eth.close_us_T

    @property
    def n_channels(self) -> int:
        """The number of input channels: the traded symbol's bar channels, and the reference's when present."""
        return N_BAR_CHANNELS * (2 if self.btc_channels is not None else 1)

    @property
    def valid_T(self) -> npt.NDArray[np.bool_]:
        """The traded symbol's bar is past the indicator warm-up (windows ending elsewhere are masked)."""
        return self.eth_channels.valid_T

    def windows(self, rows_B: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Input windows ``float32 [B, W, C]`` ending at bars ``rows_B`` (see the module docstring)."""
        rows = np.asarray(rows_B, dtype=np.int64).reshape(-1)
        x_eth, _ = bar_windows(self.eth_channels, rows, self.window)
        if self.btc_channels is None:
            return x_eth
        x_btc, _ = bar_windows(self.btc_channels, self.btc_index_T[rows], self.window)
        return np.concatenate([x_eth, x_btc], axis=2)

    def rows_in(self, rng: TimeRange) -> npt.NDArray[np.int64]:
        """Bars whose close lies in ``rng``."""
        lo, hi = np.searchsorted(self.close_us_T, [rng.start_us, rng.end_us], side="left")
        return np.arange(lo, hi, dtype=np.int64)

    def fit_rows(self, rng: TimeRange) -> npt.NDArray[np.int64]:
        """Rows a model fitted on ``rng`` may learn from: closed in it, valid, class label ended by its end."""
        if self.labels is None:
            raise CnnDataError(f"{self.tf.value} data was built without labels; it cannot be fitted on")
        rows = self.rows_in(rng)
        keep = self.valid_T[rows] & (self.labels.class_end_us_T[rows] <= rng.end_us)
        return rows[keep]

    def pivot_target(
        self, rows: npt.NDArray[np.int64], end_us: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """Next-pivot targets of ``rows`` and whether each is usable when fitting a range ending at ``end_us``."""
        assert self.labels is not None
        dist = self.labels.pivot_dist_T[rows]
        ok = np.isfinite(dist) & (self.labels.pivot_end_us_T[rows] <= end_us)
        return np.where(ok, dist, 0.0).astype(np.float32), ok

    def label_end_us(self, rows: npt.NDArray[np.int64], end_us: int) -> int:
        """When the latest label used by a fit on ``rows`` (range ending at ``end_us``) ends."""
        assert self.labels is not None
        if rows.size == 0:
            return int(np.iinfo(np.int64).min)
        ends = self.labels.class_end_us_T[rows]
        piv = self.labels.pivot_end_us_T[rows]
        return int(max(ends.max(), piv[piv <= end_us].max(initial=np.iinfo(np.int64).min)))


def build_timeframe_data(
    frames: MarketFrames,
    tf: Timeframe,
    cfg: CnnConfig,
    features: FeaturesConfig,
    *,
    with_labels: bool = True,
) -> TimeframeData:
    """Channels (and labels) of ``tf`` for the CNN, from ``frames``' bars of both symbols."""
    spec = bar_spec(features)
    eth_df = frames.bars.get("eth", {}).get(tf)
    if eth_df is None or eth_df.height == 0:
        raise CnnDataError(
            f"the {tf.value} CNN needs {tf.value} bars of {frames.symbols.get('eth', 'the traded symbol')}; "
            "the market has none (add the timeframe to data.timeframes or drop it from cnn.timeframes)"
        )
    eth = BarArrays.from_frame(eth_df, tf)
    what = f"{frames.symbols.get('eth', 'eth')} {tf.value}"
    eth_ch = compute_bar_channels(eth.open_T, eth.high_T, eth.low_T, eth.close_T, eth.volume_T, spec, what=what)
    btc_ch: BarChannels | None = None
    btc_index = np.full(len(eth), -1, np.int64)
    if cfg.use_reference:
        btc_df = frames.bars.get("btc", {}).get(tf)
        if btc_df is None or btc_df.height == 0:
            raise CnnDataError(
                f"the {tf.value} CNN uses the reference symbol but the market has no {tf.value} bars of "
                f"{frames.symbols.get('btc', 'the reference')}; set use_reference: false or add them"
            )
        btc = BarArrays.from_frame(btc_df, tf)
        btc_ch = compute_bar_channels(
            btc.open_T, btc.high_T, btc.low_T, btc.close_T, btc.volume_T, spec, what=f"{what} reference"
        )
        btc_index = np.asarray(last_closed_index(btc, eth.close_us_T), dtype=np.int64)
    labels = None
    if with_labels:
        labels = make_labels(
            eth,
            eth_ch.per_bar_T4[:, ATR_CLOSE_CHANNEL],
            horizon=cfg.horizon(tf),
            pivot_n=cfg.pivot_n,
            clip=cfg.distance_clip,
        )
    return TimeframeData(tf, cfg.window, eth, eth_ch, btc_ch, btc_index, labels)
