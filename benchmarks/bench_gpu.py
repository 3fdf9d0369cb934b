"""The learner on a GPU: pinned non-blocking transfers and bfloat16 autocast, against the same learner on the CPU.

    python -m benchmarks.bench_gpu            # full layout, batch 128
    python -m benchmarks.bench_gpu --quick    # fewer updates

Without a CUDA GPU (as on the 2-core development machine) it says so and exits 0: the GPU path is
tested on a CPU only for what a CPU can show (device resolution, autocast in bfloat16,
``tests/unit/agent/test_learner_device.py``); this script is the check to run on a GPU machine.

On a GPU it checks, then times:

1. correctness: one update on the GPU (float32) from the same seed and batch as on the CPU gives the
   same loss to 1e-4 relative, and the bfloat16 one to 5 %;
2. updates/s and samples/s (batch × updates/s) of the ``full`` preset's learner (structured encoder,
   double dueling DQN, PER weights) on the 15,588-feature layout, states gathered from an in-memory
   ``ArrayStateSource`` (the copy the batch builder makes is timed in ``bench_state``): CPU float32
   (the baseline), GPU float32, GPU bfloat16 autocast; the same for the flat network of ``full-flat``.

Medians over repeats; the ratio is GPU over CPU.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from benchmarks._util import quick_parser, time_interleaved
from rltrade.agent.batches import ArrayStateSource, ReplaySample
from rltrade.agent.encoder import full_layout_blocks
from rltrade.agent.learner import DQNLearner, resolve_device
from rltrade.training.presets import load_with_preset

BATCH = 128
ACCOUNT = 8


def _sample(rng: np.random.Generator, rows: int) -> ReplaySample:
    t = rng.integers(0, rows - 1, BATCH)
    return ReplaySample(
        t_idx_B=t,
        account_BK=rng.standard_normal((BATCH, ACCOUNT), dtype=np.float32),
        action_B=rng.integers(0, 3, BATCH),
        reward_B=rng.standard_normal(BATCH).astype(np.float32),
        discount_B=np.full(BATCH, 0.97, np.float32),
        next_t_idx_B=t + 1,
        next_account_BK=rng.standard_normal((BATCH, ACCOUNT), dtype=np.float32),
        weight_B=rng.uniform(0.3, 1.0, BATCH).astype(np.float32),
        tree_idx_B=np.arange(BATCH),
    )


def main() -> None:
    parser = quick_parser(__doc__ or "")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU visible to torch {torch.__version__}: the GPU check did not run (nothing to measure here)")
        return
    device = resolve_device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    blocks = full_layout_blocks()
    state_dim = blocks[-1].stop
    rows = 2_048
    rng = np.random.default_rng(0)
    source = ArrayStateSource(rng.standard_normal((rows, state_dim), dtype=np.float32))
    samples = [_sample(rng, rows) for _ in range(8)]
    k = 10 if args.quick else 50
    for preset in ("full", "full-flat"):
        agent = load_with_preset(None, preset).agent.model_copy(update={"batch_size": BATCH})
        cpu = DQNLearner(agent, state_dim, ACCOUNT, blocks=blocks)
        gpu = DQNLearner(agent, state_dim, ACCOUNT, blocks=blocks, device=device)
        bf16 = DQNLearner(agent, state_dim, ACCOUNT, blocks=blocks, device=device, mixed_precision=True)
        first = [learner.update(samples[0], source).loss for learner in (cpu, gpu, bf16)]
        assert abs(first[1] - first[0]) <= 1e-4 * max(1.0, abs(first[0])), f"GPU loss {first[1]} vs CPU {first[0]}"
        assert abs(first[2] - first[0]) <= 0.05 * max(1.0, abs(first[0])), f"bf16 loss {first[2]} vs CPU {first[0]}"
        print(f"{preset}: first-update loss CPU {first[0]:.6f}, GPU {first[1]:.6f}, GPU bf16 {first[2]:.6f}")

        def run(learner: DQNLearner, n: int) -> None:
            for i in range(n):
                learner.update(samples[i % len(samples)], source)
            torch.cuda.synchronize(device)

        contenders = {"cpu float32": (cpu, max(2, k // 10)), "gpu float32": (gpu, k), "gpu bf16": (bf16, k)}
        timings, _ = time_interleaved(
            {name: (lambda lr=lr, n=n: run(lr, n)) for name, (lr, n) in contenders.items()}, repeats=args.repeats
        )
        per_update = {t.name: t.median_s / (max(2, k // 10) if t.name.startswith("cpu") else k) for t in timings}
        base = per_update["cpu float32"]
        for name, s in per_update.items():
            print(f"  {name:<12} {1 / s:9.1f} updates/s  {BATCH / s:11,.0f} samples/s  {base / s:7.1f}x the CPU")


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
