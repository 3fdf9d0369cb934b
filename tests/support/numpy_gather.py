"""The numpy state gather the compiled kernels replaced: the reference the kernels are tested against, and
the "before" of ``benchmarks/bench_state.py`` and ``benchmarks/bench_full_speed.py``.

Bars: fancy-index the ``[B, W]`` rows, subtract the last close, zero the missing rows. Ticks: fancy-index
the rows, then the shared window arithmetic (:func:`rltrade.features.ticks._window_features`). The
builder allocates per-block arrays and copies them into the state matrix, and checks the pivot bars on
every call, as the batch builder did.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rltrade.data.align import last_closed_index
from rltrade.features.bar_channels import N_BAR_CHANNELS, BarChannels
from rltrade.features.cnn_blocks import CnnBlocks, cnn_flags
from rltrade.features.pivots import pivot_features
from rltrade.features.regime import regime_features_at
from rltrade.features.state_batch import BatchStateBuilder, assemble_flags
from rltrade.features.ticks import TradeSeries, _window_features


def numpy_bar_windows(ch: BarChannels, idx: npt.NDArray[np.int64], window: int) -> tuple[np.ndarray, np.ndarray]:
    """``bar_windows`` as numpy computed it: ``float32 [B, W, 8]`` and the mask."""
    x = np.zeros((idx.shape[0], window, N_BAR_CHANNELS), dtype=np.float32)
    rows = idx[:, None] + np.arange(-(window - 1), 1)[None, :]
    exists = rows >= 0
    safe = np.where(exists, rows, 0)
    if ch.n_bars == 0:
        return x, np.zeros(rows.shape, dtype=np.bool_)
    x[..., :4] = ch.log_ohlc_T4[safe] - ch.log_ohlc_T4[np.maximum(idx, 0), 3][:, None, None]
    x[..., 4:] = ch.per_bar_T4[safe]
    x[~exists] = 0.0
    return x, exists & ch.valid_T[safe]


def numpy_tick_windows(trades: TradeSeries, t: npt.NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray]:
    """``tick_windows`` as numpy computed it: ``float32 [B, max_trades, 10]`` and the mask."""
    spec = trades.spec
    m = spec.max_trades
    if trades.ts_us_N.size == 0:
        return np.zeros((t.size, m, 10), dtype=np.float32), np.zeros((t.size, m), dtype=np.bool_)
    hi = np.searchsorted(trades.ts_us_N, t, side="right")
    lo = np.searchsorted(trades.ts_us_N, t - spec.window_us, side="right")
    n = np.minimum(hi - lo, m)
    valid = np.arange(m)[None, :] < n[:, None]
    k = np.where(valid, hi[:, None] - 1 - np.arange(m)[None, :], 0)
    cols = (trades.ts_us_N, trades.logp_N, trades.qty_N, trades.side_N)
    extra = (trades.interarrival_N, trades.tick_return_N, trades.intensity_N)
    return _window_features(t, valid, *(c[k] for c in cols), *(c[k] for c in extra), spec.qty_scale_at(t), spec)


class NumpyBatchStateBuilder(BatchStateBuilder):
    """The batch builder as it gathered before the compiled kernels (same values, bit for bit)."""

    def gather(self, t_us_B: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """States ``float32 [B, layout.size]``: per-block arrays, then copied into the state matrix."""
        t_B = np.asarray(t_us_B, dtype=np.int64).reshape(-1)
        n, f = t_B.shape[0], self.features
        out_BF = np.zeros((n, self.layout.size), dtype=np.float32)
        has: dict[str, npt.NDArray[np.bool_]] = {}
        warm: list[npt.NDArray[np.bool_]] = []
        cnn_has_B4 = np.zeros((n, 1), bool)
        for block in self.layout.blocks:
            values: np.ndarray
            if block.kind == "bars":
                assert block.symbol is not None and block.timeframe is not None
                sf = f.series[(block.symbol, block.timeframe)]
                idx_B = last_closed_index(sf.bars, t_B)
                values, mask_BW = numpy_bar_windows(sf.channels, idx_B, block.shape[0])
                has[block.name] = mask_BW[:, -1]
                warm.append((idx_B >= 0) & ~mask_BW.all(axis=1))
            elif block.kind == "ticks":
                assert f.trades is not None
                values, mask_BM = numpy_tick_windows(f.trades, t_B)
                has[block.name] = mask_BM[:, 0]
            elif block.name == "pivots":
                assert f.pivots is not None and f.pivot_bars is not None
                values, mask_BL = pivot_features(f.pivots, f.pivot_bars.close_T, f.pivot_bars.open_us_T, t_B)
                has[block.name] = np.asarray(mask_BL.any(axis=1), dtype=bool)
            elif block.name == "regime":
                assert f.regime is not None and f.regime_bars is not None
                values, valid_B = regime_features_at(f.regime, last_closed_index(f.regime_bars, t_B))
                has[block.name] = valid_B
                warm.append(~valid_B)
            elif block.name in ("cnn_hidden", "cnn_predictions"):
                hidden_B4H, preds_B44, cnn_has_B4 = (f.cnn if f.cnn is not None else CnnBlocks()).gather(t_B)
                values = hidden_B4H if block.name == "cnn_hidden" else preds_B44
                has[block.name] = cnn_flags(cnn_has_B4)[0]
            elif block.kind == "flat" and block.symbol is not None and block.timeframe is not None:
                values, has[block.name] = self._returns(block.symbol, block.timeframe, block.shape[0], t_B)
            else:
                continue
            out_BF[:, block.slice] = values.reshape(n, block.size)
        warm_B = np.any(np.stack(warm), axis=0) if warm else np.zeros(n, bool)
        flags = assemble_flags(self.layout, has, warm_B, self._stale(t_B), cnn_flags(cnn_has_B4)[1])
        out_BF[:, self.layout.block("flags").slice] = flags
        return out_BF
