"""CNN state blocks straight from market frames, with fixed fitted models (for the look-ahead check).

:func:`cnn_blocks_from_frames` runs each timeframe's fitted CNN over the bars of ``frames`` (all bars, or
only the bars last closed at the given query times: one pass per bar either way) and returns
:class:`~rltrade.features.cnn_blocks.CnnBlocks` for the state builders. :func:`cnn_block_fn` wraps it as
a :data:`~rltrade.features.lookahead.BlockFn`: registered with a
:class:`~rltrade.features.lookahead.LookaheadCheck`, the CNN blocks are recomputed on data cut at ``t``
and on data with the future changed, and must not differ.

The models are fixed (fitted beforehand); which rows they may fill follows the walk-forward rule
(:meth:`~rltrade.models.train.TrainedCnn.may_serve`), so rows before a model's fit end plus the embargo
stay masked here too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from rltrade.config import FeaturesConfig
from rltrade.data.align import last_closed_index
from rltrade.data.market import MarketFrames
from rltrade.features.cnn_blocks import CnnBlocks, CnnOutputs, cnn_flags
from rltrade.features.lookahead import BlockFn
from rltrade.models.bridge import compute_rows, row_model_ids
from rltrade.models.dataset import build_timeframe_data
from rltrade.models.train import TrainedCnn
from rltrade.types import Timeframe


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
        data = build_timeframe_data(frames, tf, trained.config, features, with_labels=False)
        if t_us_B is None:
            rows = np.arange(data.n_bars, dtype=np.int64)
        else:
            idx = last_closed_index(data.eth, np.asarray(t_us_B, dtype=np.int64).reshape(-1))
            rows = np.unique(idx[idx >= 0]).astype(np.int64)
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
