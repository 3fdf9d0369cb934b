"""Bit-causal CNN inference: fixed-size padded batches vs the earlier batches with a short last one.

``compute_rows`` runs every forward pass with exactly ``inference_batch`` windows (now 256), aligned on
the bar index, so a row never depends on which other rows share its batch (a short batch takes other CPU
kernels and rounds differently, ~5e-8). The baseline is the earlier code, kept here: consecutive batches
of 1,024 rows (the earlier ``inference_batch``), the last one short. Both are timed interleaved in this
process:

1. **Offline rows**: a month of 1m bars (43,200 windows, window 300, 16 channels), as one call and as
   five calls (one per walk-forward fold's prediction range: each may pad one batch more).
2. **The CNN stage** of the demo preset (``fit_cnn_blocks``: all four timeframes, walk-forward fits and
   their rows), with the baseline patched into the modules that call ``compute_rows`` and the earlier
   ``inference_batch`` (1,024) in its config.

Both produce rows equal within 1e-6 (checked); the ratio is the cost of bit-causality.

Run: ``.venv/bin/python -m benchmarks.bench_cnn_causal [--quick] [--threads N]`` (torch: 2 threads by default).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

import rltrade.models.walkforward as walkforward
import rltrade.training.cnn_stage as cnn_stage
from benchmarks._util import quick_parser, report_ratio, time_interleaved
from benchmarks.bench_cnn import offline_setup
from rltrade.data.market import load_market
from rltrade.models.bridge import compute_rows, run_cnn
from rltrade.models.dataset import TimeframeData
from rltrade.models.train import TrainedCnn
from rltrade.training.presets import load_with_preset

Rows = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
OLD_BATCH = 1024
"""The earlier default ``inference_batch``."""


def compute_rows_unpadded(
    trained: TrainedCnn, data: TimeframeData, rows: npt.ArrayLike, *, batch: int | None = None
) -> Rows:
    """The baseline: the earlier ``compute_rows`` (consecutive batches, the last one short)."""
    r = np.asarray(rows, dtype=np.int64).reshape(-1)
    step = batch or trained.config.inference_batch
    hidden = np.zeros((r.shape[0], trained.model.shape.hidden), np.float32)
    preds = np.zeros((r.shape[0], 4), np.float32)
    for a in range(0, r.shape[0], step):
        hidden[a : a + step], preds[a : a + step] = run_cnn(trained.model, data.windows(r[a : a + step]))
    return hidden, preds


@contextmanager
def patched(fn: Callable[..., Rows]) -> Any:
    """``fn`` in place of ``compute_rows`` wherever the CNN stage calls it."""
    saved = walkforward.compute_rows, cnn_stage.compute_rows
    walkforward.compute_rows = cnn_stage.compute_rows = fn
    try:
        yield
    finally:
        walkforward.compute_rows, cnn_stage.compute_rows = saved


def offline(days: int, repeats: int) -> None:
    cfg, data, trained, rows = offline_setup(days)
    folds = np.array_split(rows, 5)
    print(
        f"offline rows: {rows.size:,} windows of 1m bars ({days} days), "
        f"window {cfg.window}, batch {cfg.inference_batch}"
    )
    for label, calls in (("one call", [rows]), ("five fold calls", folds)):
        timings, out = time_interleaved(
            {
                "padded (bit-causal)": lambda calls=calls: [compute_rows(trained, data, c) for c in calls],
                "unpadded (before)": lambda calls=calls: [
                    compute_rows_unpadded(trained, data, c, batch=OLD_BATCH) for c in calls
                ],
            },
            repeats=repeats,
        )
        a, b = out["padded (bit-causal)"], out["unpadded (before)"]
        assert isinstance(a, list) and isinstance(b, list)
        worst = max(float(np.abs(x[0] - y[0]).max()) for x, y in zip(a, b, strict=True))
        if worst > 1e-5:
            raise SystemExit(f"padded and unpadded rows disagree by {worst}: benchmark invalid")
        print(f" {label} (max |diff| {worst:.1e}):")
        ratio = report_ratio(timings[0], timings[1], items=rows.size, unit="windows")
        print(f"  time padded / unpadded: {1 / ratio:.3f}")


def stage(repeats: int) -> None:
    cfg = load_with_preset(None, "demo")
    frames = load_market(cfg.data)
    from rltrade.data.splits import split_span
    from rltrade.features.layout import build_layout
    from rltrade.training.pipeline import decision_span

    layout = build_layout(cfg.features.layout)
    splits = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)

    old_cfg = cfg.model_copy(update={"cnn": cfg.cnn.model_copy(update={"inference_batch": OLD_BATCH})})

    def run(fn: Callable[..., Rows], config: Any) -> Callable[[], object]:
        def go() -> object:
            with patched(fn):
                return cnn_stage.fit_cnn_blocks(frames, layout, config, splits)

        return go

    print("CNN stage of the demo preset (fit_cnn_blocks, four timeframes):")
    timings, _ = time_interleaved(
        {"padded (bit-causal)": run(compute_rows, cfg), "unpadded (before)": run(compute_rows_unpadded, old_cfg)},
        repeats=repeats,
        warmup=0,
    )
    ratio = report_ratio(timings[0], timings[1], items=1, unit="stages")
    print(f"  time padded / unpadded: {1 / ratio:.3f}")


def main() -> None:
    parser = quick_parser(__doc__ or "")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 on a crowded machine)")
    parser.add_argument("--stage-repeats", type=int, default=None, help="timed CNN stages each (default 3, quick 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    offline(3 if args.quick else 30, 3 if args.quick else max(3, args.repeats))
    stage(args.stage_repeats or (1 if args.quick else 3))


if __name__ == "__main__":
    main()
