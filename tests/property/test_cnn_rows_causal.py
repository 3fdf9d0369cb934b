"""Bit-causal CNN rows: a bar's row is the same to the last bit whatever other bars are computed with it.

``compute_rows`` runs fixed-size, index-aligned, zero-padded batches, so cutting the data at ``t`` (fewer
later bars), changing the bars after ``t`` or asking for any other set of rows never changes a row of a
bar closed by ``t``. Hypothesis draws the batch size, the cut, the rows asked for and a changed future.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.config import CnnConfig
from rltrade.data.splits import TimeRange
from rltrade.models.bridge import compute_rows
from rltrade.models.cnn import CnnShape, build_cnn
from rltrade.models.dataset import TimeframeData
from rltrade.models.train import FitInfo, TrainedCnn
from rltrade.types import Timeframe
from tests.support.cnn_models import TINY, tf_data

CAUSAL = settings(max_examples=10, deadline=None, derandomize=True)


@cache
def model() -> TrainedCnn:
    cfg: CnnConfig = TINY
    net = build_cnn(CnnShape.of(cfg, 16), torch.Generator().manual_seed(3))
    net.eval()
    info = FitInfo(
        Timeframe.M1, TimeRange(0, 1), None, 0, cfg.flat_band, (1 / 3,) * 3, None, 0, 0, 0, 0, None, 0, 0.0, 0
    )
    return TrainedCnn(net, cfg, info)


def _future_changed(data: TimeframeData, cut: int, rng: np.random.Generator) -> TimeframeData:
    """``data`` with every bar after ``cut`` given other channel values (what a changed future does)."""
    ch = data.eth_channels
    noise = rng.standard_normal(ch.per_bar_T4.shape).astype(ch.per_bar_T4.dtype)
    per_bar = np.where(np.arange(ch.per_bar_T4.shape[0])[:, None] > cut, noise, ch.per_bar_T4)
    return replace(data, eth_channels=replace(ch, per_bar_T4=per_bar))


@CAUSAL
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([16, 64, 256]), n_rows=st.integers(1, 40))
def test_a_row_never_depends_on_its_batch_companions(seed: int, batch: int, n_rows: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: a loaded shared machine makes small passes crawl with two
    try:
        _companions_do_not_matter(seed, batch, n_rows)
    finally:
        torch.set_num_threads(threads)


def _companions_do_not_matter(seed: int, batch: int, n_rows: int) -> None:
    rng = np.random.default_rng(seed)
    data = tf_data(Timeframe.M1)
    trained = model()
    cut = int(rng.integers(data.window, data.n_bars))
    past = rng.choice(np.arange(cut + 1), size=min(n_rows, cut + 1), replace=False)
    ref_h, ref_p = compute_rows(trained, data, past, batch=batch)
    # Companions near the cut (in the same and the next batches) and anywhere else.
    near = rng.integers(max(0, cut - batch), min(data.n_bars, cut + 2 * batch), size=int(rng.integers(0, batch)))
    others = np.concatenate([near, rng.integers(0, data.n_bars, size=3)])
    asked = rng.permutation(np.concatenate([past, others]))
    h, p = compute_rows(trained, _future_changed(data, cut, rng), asked, batch=batch)
    pos = {int(r): i for i, r in enumerate(asked)}
    idx = np.array([pos[int(r)] for r in past])
    np.testing.assert_array_equal(h[idx], ref_h)
    np.testing.assert_array_equal(p[idx], ref_p)
