"""The structured encoder's first stage: strided windows read in place vs copied out, in the full update.

    python -m benchmarks.bench_patch_stack            # full layout, design batch 128
    python -m benchmarks.bench_patch_stack --quick    # fewer updates per repeat

``PatchStack`` reads the bar and tick windows of a state batch as a strided view (each state's rows
are contiguous, the states are 62 KB apart). Its first stage multiplies the view's patches
``[N, P, k·C]`` by the stage's weight with one batched product, in place. The baseline is the
previous code: fold the view into 2-D patches (``reshape``, which copies every window out of the
state rows) and multiply with ``addmm``. Both run inside the learner's whole double-DQN update
(target and online passes on s', online pass and backward on s, Adam) at batch 128 on the ``full``
layout's blocks, states gathered from an ``ArrayStateSource``; two learners from the same seed,
updates alternated on the same samples. Reports wall and CPU medians per update and their ratio.
"""

from __future__ import annotations

import statistics
import sys
import time
import types
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks._util import quick_parser
from rltrade.agent.batches import ArrayStateSource, ReplaySample
from rltrade.agent.encoder import PatchStack, full_layout_blocks
from rltrade.agent.learner import DQNLearner
from rltrade.config import AgentConfig

BATCH = 128
ACCOUNT = 8


def _copying_forward(self: PatchStack, x_NRC: Tensor) -> Tensor:
    """The previous ``PatchStack.forward``: every stage as 2-D patches and ``addmm`` (stage 1 copies a view)."""
    n, r = x_NRC.shape[0], x_NRC.shape[1]
    h = x_NRC
    for pad, k, module in zip(self.pads, self.patches, self.stages, strict=True):
        stage = cast(nn.Linear, module)
        if pad:
            h = nn.functional.pad(h, (0, 0, pad, 0))
        patches_PK = h.reshape(-1, k * h.shape[2])
        h = torch.addmm(stage.bias, patches_PK, stage.weight.t()).relu_().view(n, -1, stage.out_features)
    return h.reshape(n, (r // self.rows) * self.out_dim)


def _sample(rng: np.random.Generator, rows: int) -> ReplaySample:
    b, k = BATCH, ACCOUNT
    return ReplaySample(
        rng.integers(0, rows, b),
        rng.standard_normal((b, k)).astype(np.float32),
        rng.integers(0, 3, b),
        rng.standard_normal(b).astype(np.float32),
        np.full(b, 0.97, np.float32),
        rng.integers(0, rows, b),
        rng.standard_normal((b, k)).astype(np.float32),
        np.ones(b, np.float32),
        np.arange(b),
    )


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    torch.set_num_threads(1)
    blocks = full_layout_blocks()
    width = blocks[-1].stop
    cfg = AgentConfig(network="structured", batch_size=BATCH, seed=0)
    learners = {"copy + addmm (before)": DQNLearner(cfg, width, ACCOUNT, blocks=blocks)}
    for net in (learners["copy + addmm (before)"].online, learners["copy + addmm (before)"].target):
        for stack in net.modules():
            if isinstance(stack, PatchStack):
                stack.forward = types.MethodType(_copying_forward, stack)  # type: ignore[method-assign]
    learners["in place (after)"] = DQNLearner(cfg, width, ACCOUNT, blocks=blocks)
    rng = np.random.default_rng(0)
    rows = 1024
    source = ArrayStateSource(rng.standard_normal((rows, width)).astype(np.float32))
    samples = [_sample(rng, rows) for _ in range(8)]
    per_repeat = 3 if args.quick else 10
    wall: dict[str, list[float]] = {name: [] for name in learners}
    cpu: dict[str, list[float]] = {name: [] for name in learners}
    for repeat in range(args.repeats + 1):  # the first repeat warms up
        for name, learner in learners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(per_repeat):
                learner.update(samples[(repeat * per_repeat + i) % len(samples)], source)
            if repeat:
                wall[name].append((time.perf_counter() - t0) / per_repeat)
                cpu[name].append((time.process_time() - c0) / per_repeat)
    print(f"double-DQN update, full layout ({width:,} features), batch {BATCH}, 1 thread, {per_repeat} updates/repeat")
    med = {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in learners}
    for name, (w, c) in med.items():
        print(f"  {name:<22} {w * 1e3:7.1f} ms wall  {c * 1e3:7.1f} ms CPU per update (median of {args.repeats})")
    (bw, bc), (aw, ac) = med.values()
    print(f"  speed-up in place vs copy: {bw / aw:.2f}x wall, {bc / ac:.2f}x CPU")


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
