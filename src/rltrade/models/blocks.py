"""CNN state blocks straight from market frames, with fixed fitted models (for the look-ahead check).

:func:`cnn_blocks_from_frames` runs each timeframe's fitted CNN over the bars of ``frames`` (all bars, or
only the bars last closed at the given query times: one pass per bar either way) and returns
:class:`~rltrade.features.cnn_blocks.CnnBlocks` for the state builders. :func:`cnn_block_fn` wraps it as
a :data:`~rltrade.features.lookahead.BlockFn`: registered with a
:class:`~rltrade.features.lookahead.LookaheadCheck`, the CNN blocks are recomputed on data cut at ``t``
and on data with the future changed, and must not differ.

The models are fixed (fitted beforehand); which rows they may fill follows the walk-forward rule
(:meth:`~rltrade.models.train.TrainedCnn.may_serve`), so rows before a model's fit end plus the embargo
stay masked here too. :func:`served_cnn_fn` serves a run's walk-forward fold models the way its CNN
stage does (fold ``k`` fills the bars closing in its recorded prediction range), and
:func:`untrained_cnns` gives randomly initialised CNNs that may serve everywhere: real rows through the
real bridge when no run is at hand (causality does not depend on the weights).

Computing only the rows read at the query times gives the same bits as computing every row
(:func:`~rltrade.models.bridge.compute_rows` is bit-causal), so the check compares them exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import torch

from rltrade.config import CnnConfig, FeaturesConfig
from rltrade.data.align import last_closed_index
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange
from rltrade.features.cnn_blocks import NO_MODEL, CnnBlocks, CnnOutputs, cnn_flags
from rltrade.features.layout import CNN_TIMEFRAMES
from rltrade.features.lookahead import BlockFn
from rltrade.models.bridge import compute_rows, row_model_ids
from rltrade.models.cnn import CnnShape, build_cnn
from rltrade.models.dataset import TimeframeData, build_timeframe_data
from rltrade.models.train import FitInfo, TrainedCnn
from rltrade.types import Timeframe

CnnRowsFn = Callable[[MarketFrames, npt.NDArray[np.int64]], CnnBlocks]


def cnn_blocks_from_frames(
    frames: MarketFrames,
    models: Mapping[Timeframe, tuple[TrainedCnn, int]],
    features: FeaturesConfig,
    *,
    embargo_us: int,
    t_us_B: npt.ArrayLike | None = None,
) -> CnnBlocks:
    """Rows of every timeframe's CNN (``models``: timeframe → (fitted model, model id)) over ``frames``.

    With ``t_us_B`` only the bars last closed at those times are computed (what gathering at them reads).
    """
    outputs: dict[Timeframe, CnnOutputs] = {}
    for tf, (trained, model_id) in models.items():
        data = _data(frames, tf, trained.config, features)
        if data is None:
            continue
        rows = np.arange(data.n_bars, dtype=np.int64) if t_us_B is None else _read_rows(data, t_us_B)
        hidden, preds = compute_rows(trained, data, rows)
        ids = row_model_ids(trained, data, rows, model_id, embargo_us)
        outputs[tf] = CnnOutputs(tf, data.close_us_T[rows], hidden, preds, ids)
    return CnnBlocks(outputs)


def cnn_block_fn(
    models: Mapping[Timeframe, tuple[TrainedCnn, int]], features: FeaturesConfig, *, embargo_us: int
) -> BlockFn:
    """Return the block function: the CNN blocks (and their presence flags) at query times, from the frames given."""

    def compute(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> Mapping[str, npt.NDArray[np.floating]]:
        blocks = cnn_blocks_from_frames(frames, models, features, embargo_us=embargo_us, t_us_B=t_B)
        hidden, preds, has = blocks.gather(t_B)
        any_present, all_present = cnn_flags(has)
        return {
            "cnn_hidden": hidden,
            "cnn_predictions": preds,
            "cnn_present": has.astype(np.float32),
            "cnn_flags": np.stack([any_present, all_present], axis=1).astype(np.float32),
        }

    return compute


def _read_rows(data: TimeframeData, t_us_B: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return the bars last closed at the query times: the only rows gathering at them reads."""
    idx = last_closed_index(data.eth, np.asarray(t_us_B, dtype=np.int64).reshape(-1))
    return np.unique(idx[idx >= 0]).astype(np.int64)


def _data(frames: MarketFrames, tf: Timeframe, cfg: CnnConfig, features: FeaturesConfig) -> TimeframeData | None:
    """Build the timeframe's CNN inputs, or None while it has no bar yet (data cut before the ticks)."""
    roles = ("eth", "btc") if cfg.use_reference else ("eth",)
    if any(frames.bars.get(r, {}).get(tf) is None or frames.bars[r][tf].height == 0 for r in roles):
        return None
    return build_timeframe_data(frames, tf, cfg, features, with_labels=False)


def served_cnn_fn(
    models: Mapping[Timeframe, Sequence[TrainedCnn]], features: FeaturesConfig, *, embargo_us: int
) -> CnnRowsFn:
    """``(frames, t_B) -> CnnBlocks``: a run's fold models serving the bars read at ``t_B``.

    Fold ``k`` of a timeframe fills the bars closing in its prediction range (``extra["predict"]``,
    recorded by the walk-forward), with ``model_id`` ``k`` where it may serve; other bars are masked.
    """

    def rows_at(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> CnnBlocks:
        outputs: dict[Timeframe, CnnOutputs] = {}
        for tf, folds in models.items():
            data = _data(frames, tf, folds[0].config, features)
            if data is None:
                continue
            rows = _read_rows(data, t_B)
            hidden = np.zeros((rows.size, folds[0].model.shape.hidden), np.float32)
            preds = np.zeros((rows.size, 4), np.float32)
            ids = np.full(rows.size, NO_MODEL, np.int32)
            for k, trained in enumerate(folds):
                predict = TimeRange(**trained.extra["predict"])
                close = data.close_us_T[rows]
                inside = np.flatnonzero((close >= predict.start_us) & (close < predict.end_us))
                hidden[inside], preds[inside] = compute_rows(trained, data, rows[inside])
                ids[inside] = row_model_ids(trained, data, rows[inside], k, embargo_us)
            outputs[tf] = CnnOutputs(tf, data.close_us_T[rows], hidden, preds, ids)
        return CnnBlocks(outputs)

    return rows_at


def fixed_cnn_fn(
    models: Mapping[Timeframe, tuple[TrainedCnn, int]], features: FeaturesConfig, *, embargo_us: int
) -> CnnRowsFn:
    """``(frames, t_B) -> CnnBlocks`` of :func:`cnn_blocks_from_frames` (one model per timeframe)."""

    def rows_at(frames: MarketFrames, t_B: npt.NDArray[np.int64]) -> CnnBlocks:
        return cnn_blocks_from_frames(frames, models, features, embargo_us=embargo_us, t_us_B=t_B)

    return rows_at


def untrained_cnns(
    cfg: CnnConfig, *, seed: int, timeframes: Sequence[Timeframe] = CNN_TIMEFRAMES
) -> dict[Timeframe, tuple[TrainedCnn, int]]:
    """Randomly initialised CNNs (drawn from ``seed``), in eval mode, that may serve from the epoch on."""
    out: dict[Timeframe, tuple[TrainedCnn, int]] = {}
    channels = 16 if cfg.use_reference else 8
    for i, tf in enumerate(timeframes):
        model = build_cnn(CnnShape.of(cfg, channels), torch.Generator().manual_seed(seed + i))
        model.eval()
        info = FitInfo(tf, TimeRange(0, 1), None, 0, cfg.flat_band, (1 / 3,) * 3, None, 0, 0, 0, 0, None, seed, 0.0, 0)
        out[tf] = (TrainedCnn(model, cfg, info), 0)
    return out
