"""Gradient updates per second of the DQN learner, against stable-baselines3 and against the hardware.

    python -m benchmarks.bench_agent_updates            # 15,588-feature states, batch 128
    python -m benchmarks.bench_agent_updates --quick    # 1/10-size windows, for a smoke run

1. rltrade vs stable-baselines3 (2.x) on the flat network: obs = 15,588 state + 8 account features
   → 1024 → 512 → 3, batch 128, lr 1e-4, Huber loss, max grad norm 10. Same maths: rltrade with a
   vanilla target, no dueling, uniform replay; SB3 ``DQN.train(gradient_steps=K, batch_size=128)``
   once its ``ReplayBuffer`` is full, with its default Adam and with ``fused=True``; the faster SB3 is
   the baseline. Each update on both sides includes materialising the batch's states: SB3 indexes
   its observation arrays and copies them to torch (``ReplayBuffer.sample``); rltrade samples time
   indices (``PrioritizedReplay.sample``), gathers the states from an ``ArrayStateSource`` over the
   same number of rows (the network takes state and account as two tensors, so nothing is
   concatenated), then writes the new priorities back. rltrade's double-DQN, dueling and PER variants
   are reported beside it.
2. The physical limit of one update: its matrix products timed alone with ``torch.mm`` on the same
   shapes and operand layouts (forward + both backward products of the online net on s, the target net on s', and the
   online net on s' for double DQN), plus the bytes it must stream (fused Adam: read p, g, m, v and
   write p, m, v; the gradient norm: read g; the state gather: read and write 2B states) over the
   bandwidth of a large numpy copy. rltrade's share of that limit is limit time / measured time.
3. Structured encoder vs flat network on the full layout (ticks 300×10, ETH 1s/1m/1h/1d and BTC 1s
   bars 300×8, CNN 512 + 16, pivots 50, regime 10, 16 flags, 8 account): updates/s and parameters,
   both with the default agent (double, dueling, PER); once with the states gathered from an
   ``ArrayStateSource`` (as in [1]), once with the batch already in memory, i.e. the learner's own cost.

Timings alternate between contenders within each repeat, since the machine is shared, and report the
median over repeats of K updates each. All contenders run once with 1 thread and once with one thread per
core (two blocks) and each is reported at its faster setting: on a busy machine intra-op threads wait on
each other and one thread can win.
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from benchmarks._util import quick_parser, time_interleaved
from rltrade.agent.batches import ArrayStateSource, StateSource, Transitions
from rltrade.agent.encoder import BlockSpec, full_layout_blocks
from rltrade.agent.learner import DQNLearner, LearnerConfig
from rltrade.agent.networks import parameter_count
from rltrade.agent.replay import PrioritizedReplay

BATCH = 128
ACCOUNT = 8
HIDDEN = (1024, 512)
N_ACTIONS = 3


@dataclass
class Setup:
    """Sizes of one run of the benchmark."""

    state_dim: int  # F
    rows: int  # states in the store, transitions in the buffers
    updates: int  # K updates per timed repeat
    blocks: tuple[BlockSpec, ...]


def make_setup(quick: bool) -> Setup:
    if quick:
        return Setup(state_dim=1_559, rows=512, updates=5, blocks=_scaled_layout(30))
    return Setup(state_dim=15_588, rows=2_048, updates=5, blocks=full_layout_blocks())


def _scaled_layout(rows: int) -> tuple[BlockSpec, ...]:
    """``full_layout_blocks`` with ``rows``-row windows (for --quick)."""
    out: list[BlockSpec] = []
    cursor = 0
    for b in full_layout_blocks():
        shape = (rows, b.shape[1]) if b.kind != "flat" else b.shape
        size = int(np.prod(shape))
        out.append(BlockSpec(b.name, shape, cursor, cursor + size, b.kind))
        cursor += size
    return tuple(out)


# ---------------------------------------------------------------------------------------- rltrade
class RltradeContender:
    """A learner, its replay (time indices) and a state store; ``run(k)`` does k full updates."""

    def __init__(
        self, config: LearnerConfig, states_TF: np.ndarray, *, blocks: tuple[BlockSpec, ...] | None = None
    ) -> None:
        rows = states_TF.shape[0] - 1
        rng = np.random.default_rng(1)
        self.source: StateSource = ArrayStateSource(states_TF)
        self.learner = DQNLearner(config, states_TF.shape[1], ACCOUNT, blocks=blocks)
        self.replay = PrioritizedReplay(
            rows, ACCOUNT, alpha=config.alpha, rng=np.random.default_rng(2), prioritized=config.prioritized
        )
        t_idx = rng.permutation(rows)
        self.replay.add(
            Transitions(
                t_idx_B=t_idx,
                account_BK=rng.standard_normal((rows, ACCOUNT), dtype=np.float32),
                action_B=rng.integers(0, N_ACTIONS, rows),
                reward_B=rng.standard_normal(rows).astype(np.float32),
                discount_B=np.where(rng.random(rows) < 0.01, 0.0, 0.99).astype(np.float32),
                next_t_idx_B=t_idx + 1,
                next_account_BK=rng.standard_normal((rows, ACCOUNT), dtype=np.float32),
            )
        )

    def run(self, k: int) -> float:
        loss = 0.0
        for _ in range(k):
            sample = self.replay.sample(BATCH, 0.4)
            result = self.learner.update(sample, self.source)
            self.replay.update_priorities(sample.tree_idx_B, result.td_abs_B)
            loss = result.loss
        return loss


def rltrade_config(**fields: Any) -> LearnerConfig:
    base: dict[str, Any] = {"hidden": HIDDEN, "lr": 1e-4, "batch_size": BATCH, "buffer_size": 4096}
    return LearnerConfig.model_validate({**base, **fields})


# ---------------------------------------------------------------------------------------- SB3
def sb3_contender(obs_dim: int, rows: int, *, fused: bool) -> Callable[[int], None]:
    """SB3's DQN with a full replay buffer of ``rows`` random transitions; returns ``train(k)``."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import configure

    class _Env(gym.Env[np.ndarray, np.int64]):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Discrete(N_ACTIONS)

    policy_kwargs: dict[str, Any] = {"net_arch": list(HIDDEN)}
    if fused:
        policy_kwargs["optimizer_kwargs"] = {"fused": True}
    model = DQN(
        "MlpPolicy",
        _Env(),
        learning_rate=1e-4,
        buffer_size=rows,
        batch_size=BATCH,
        learning_starts=0,
        gamma=0.99,
        max_grad_norm=10.0,
        policy_kwargs=policy_kwargs,
        device="cpu",
        seed=0,
    )
    model.set_logger(configure(None, [""]))
    rb = model.replay_buffer
    assert rb is not None
    rng = np.random.default_rng(3)
    rb.observations[:] = rng.standard_normal(rb.observations.shape, dtype=np.float32)
    rb.next_observations[:] = rng.standard_normal(rb.next_observations.shape, dtype=np.float32)
    rb.actions[:] = rng.integers(0, N_ACTIONS, rb.actions.shape)
    rb.rewards[:] = rng.standard_normal(rb.rewards.shape).astype(np.float32)
    rb.dones[:] = (rng.random(rb.dones.shape) < 0.01).astype(np.float32)
    rb.full, rb.pos = True, 0

    def train(k: int) -> None:
        model.train(gradient_steps=k, batch_size=BATCH)

    return train


# ---------------------------------------------------------------------------------------- limit model
def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def gemm_operands(obs_dim: int, *, double: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Operands of every matrix product of one flat-network update, laid out as the update has them:
    forward ``x @ Wᵀ`` (W stored [out, in]), weight gradient ``gᵀ @ x``, input gradient ``g @ W``."""
    widths = [obs_dim, *HIDDEN, N_ACTIONS]
    layers = list(itertools.pairwise(widths))
    forward = [(torch.randn(BATCH, i), torch.randn(o, i).t()) for i, o in layers]
    weight_grads = [(torch.randn(BATCH, o).t(), torch.randn(BATCH, i)) for i, o in layers]
    input_grads = [(torch.randn(BATCH, o), torch.randn(o, i)) for i, o in layers[1:]]  # obs needs no gradient
    passes = 3 if double else 2  # online on s, target on s' (, online on s')
    return forward * passes + weight_grads + input_grads


def physical_limit(obs_dim: int, *, double: bool, repeats: int) -> dict[str, float]:
    """Seconds one update cannot beat on this machine: GEMMs at measured speed + bytes at measured bandwidth."""
    gemm_s, flops = 0.0, 0.0
    for a, b in gemm_operands(obs_dim, double=double):
        out = torch.empty(a.shape[0], b.shape[1])
        gemm_s += _median_time(partial(torch.mm, a, b, out=out), repeats)
        flops += 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    widths = [obs_dim, *HIDDEN, N_ACTIONS]
    params = sum(i * o + o for i, o in itertools.pairwise(widths))
    adam_bytes = 7 * 4 * params
    norm_bytes = 4 * params
    gather_bytes = 2 * (2 * BATCH * obs_dim * 4)
    src = np.ones(4 * params, dtype=np.float32)  # params + grads + both Adam moments
    dst = np.empty_like(src)
    copy_s = _median_time(partial(np.copyto, dst, src), repeats)
    bandwidth = 2 * src.nbytes / copy_s
    moved = adam_bytes + norm_bytes + gather_bytes
    return {
        "gemm_s": gemm_s,
        "gflops": flops / 1e9,
        "gemm_gflops_per_s": flops / gemm_s / 1e9,
        "bytes_gb": moved / 1e9,
        "bandwidth_gb_s": bandwidth / 1e9,
        "memory_s": moved / bandwidth,
        "limit_s": gemm_s + moved / bandwidth,
    }


# ---------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Result:
    """Per-update seconds of one contender at its best thread count (and every count tried)."""

    name: str
    threads: int
    seconds: tuple[float, ...]  # per update, one value per repeat
    by_threads: dict[int, float]  # median seconds per update at each thread count

    @property
    def per_update_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ups(self) -> float:
        return 1.0 / self.per_update_s


def time_contenders(
    contenders: dict[str, tuple[Callable[[int], object], int]], thread_counts: list[int], repeats: int
) -> dict[str, Result]:
    """Time ``fn(k)`` for every contender, interleaved within each repeat, once per thread count; keep each
    contender's best thread count. ``contenders`` maps name → (fn, k).

    The thread count changes only between blocks: switching it between calls makes torch's thread pool
    stall (measured here: 2-4x slower updates), which would be timed as the contender's cost.
    """
    per_t: dict[str, dict[int, tuple[float, ...]]] = {name: {} for name in contenders}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        fns = {name: partial(fn, k) for name, (fn, k) in contenders.items()}
        timings, _ = time_interleaved(fns, repeats=repeats)
        for t in timings:
            k = contenders[t.name][1]
            per_t[t.name][threads] = tuple(x / k for x in t.seconds)
    results: dict[str, Result] = {}
    for name, runs in per_t.items():
        medians = {t: statistics.median(x) for t, x in runs.items()}
        best = min(medians, key=lambda t: medians[t])
        results[name] = Result(name, best, runs[best], medians)
    return results


def _print_results(results: dict[str, Result], baseline: str) -> None:
    width = max(len(n) for n in results)
    for r in results.values():
        others = ", ".join(f"{t} thr {1 / s:.2f}/s" for t, s in r.by_threads.items())
        print(
            f"  {r.name:<{width}}  {r.ups:7.2f} updates/s  {r.per_update_s * 1e3:7.1f} ms/update "
            f"[{min(r.seconds) * 1e3:6.1f} – {max(r.seconds) * 1e3:6.1f}] at {r.threads} thr  "
            f"×{r.ups / results[baseline].ups:.2f}   ({others})"
        )


def section_sb3(setup: Setup, thread_counts: list[int], repeats: int) -> None:
    rng = np.random.default_rng(0)
    states = rng.standard_normal((setup.rows + 1, setup.state_dim), dtype=np.float32)
    obs_dim = setup.state_dim + ACCOUNT
    k = setup.updates
    same = RltradeContender(rltrade_config(double=False, dueling=False, prioritized=False), states)
    double = RltradeContender(rltrade_config(double=True, dueling=False, prioritized=False), states)
    dueling = RltradeContender(rltrade_config(double=True, dueling=True, prioritized=False), states)
    default = RltradeContender(rltrade_config(), states)
    contenders: dict[str, tuple[Callable[[int], object], int]] = {
        "rltrade vanilla (same maths as SB3)": (same.run, k),
        "rltrade double DQN": (double.run, k),
        "rltrade double + dueling": (dueling.run, k),
        "rltrade double + dueling + PER": (default.run, k),
        "SB3 DQN (default Adam)": (sb3_contender(obs_dim, setup.rows, fused=False), k),
        "SB3 DQN (fused Adam)": (sb3_contender(obs_dim, setup.rows, fused=True), k),
    }
    print(
        f"\n[1] flat network {obs_dim} → {HIDDEN[0]} → {HIDDEN[1]} → {N_ACTIONS}, batch {BATCH}, "
        f"{k} updates per repeat, best of threads {thread_counts}"
    )
    results = time_contenders(contenders, thread_counts, repeats)
    baseline = max(("SB3 DQN (default Adam)", "SB3 DQN (fused Adam)"), key=lambda n: results[n].ups)
    _print_results(results, baseline)
    ratio = results["rltrade vanilla (same maths as SB3)"].ups / results[baseline].ups
    print(f"  speed-up, same maths, vs the faster SB3 ({baseline}): {ratio:.2f}x (target ≥ 1.15x)")

    print("\n[2] physical limit of one update on this machine")
    for name, is_double in (("rltrade vanilla (same maths as SB3)", False), ("rltrade double DQN", True)):
        measured = results[name]
        torch.set_num_threads(measured.threads)
        lim = physical_limit(obs_dim, double=is_double, repeats=repeats)
        print(
            f"  {name} at {measured.threads} thr: GEMMs {lim['gflops']:.1f} GFLOP at "
            f"{lim['gemm_gflops_per_s']:.0f} GFLOP/s = {lim['gemm_s'] * 1e3:.1f} ms; memory {lim['bytes_gb']:.2f} GB "
            f"at {lim['bandwidth_gb_s']:.1f} GB/s = {lim['memory_s'] * 1e3:.1f} ms; "
            f"limit {lim['limit_s'] * 1e3:.1f} ms vs measured {measured.per_update_s * 1e3:.1f} ms "
            f"→ {lim['limit_s'] / measured.per_update_s:.0%} of the "
            "limit (target ≥ 70 %)"
        )


class PreGathered:
    """A state source whose batch is already in memory (a fixed view): the update without the gather."""

    def __init__(self, states_TF: np.ndarray) -> None:
        self._states = states_TF

    def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
        return self._states[: len(t_idx_B)]


def section_encoder(setup: Setup, thread_counts: list[int], repeats: int) -> None:
    blocks = setup.blocks
    state_dim = blocks[-1].stop
    rng = np.random.default_rng(0)
    states = rng.standard_normal((setup.rows + 1, state_dim), dtype=np.float32)
    flat = RltradeContender(rltrade_config(), states)
    structured = RltradeContender(rltrade_config(network="structured"), states, blocks=blocks)
    flat_net = RltradeContender(rltrade_config(), states)
    structured_net = RltradeContender(rltrade_config(network="structured"), states, blocks=blocks)
    flat_net.source = structured_net.source = PreGathered(states)
    print(
        f"\n[3] structured encoder vs flat network, full layout ({state_dim} state + {ACCOUNT} account), "
        f"double + dueling + PER, best of threads {thread_counts}"
    )
    k = setup.updates
    results = time_contenders(
        {
            "flat": (flat.run, k),
            "structured": (structured.run, k * 10),
            "flat, batch pre-gathered": (flat_net.run, k),
            "structured, batch pre-gathered": (structured_net.run, k * 10),
        },
        thread_counts,
        repeats,
    )
    _print_results(results, "flat")
    p_flat, p_struct = parameter_count(flat.learner.online), parameter_count(structured.learner.online)
    print(f"  parameters: flat {p_flat:,}, structured {p_struct:,} ({p_flat / p_struct:.0f}x fewer)")
    ratio = results["structured"].ups / results["flat"].ups
    net_ratio = results["structured, batch pre-gathered"].ups / results["flat, batch pre-gathered"].ups
    print(f"  structured vs flat: {ratio:.1f}x updates/s (target ≥ 10x); {net_ratio:.1f}x without the state gather")


def main() -> None:
    parser = quick_parser(__doc__ or "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser.add_argument(
        "--threads",
        default=f"1,{cores}",
        help="comma-separated torch thread counts to try; each contender is reported at its best (default: 1 and "
        "the number of cores: on a busy machine one thread is often faster)",
    )
    parser.add_argument("--only", choices=["sb3", "encoder"], help="run one section (sb3: [1] and [2]; encoder: [3])")
    args = parser.parse_args()
    thread_counts = sorted({int(t) for t in args.threads.split(",")})
    setup = make_setup(args.quick)
    repeats = max(3, args.repeats)
    print(f"torch {torch.__version__}, {cores} cores, load average {os.getloadavg()[0]:.1f} at start")
    if args.only in (None, "sb3"):
        section_sb3(setup, thread_counts, repeats)
    gc.collect()
    if args.only in (None, "encoder"):
        section_encoder(setup, thread_counts, repeats)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
