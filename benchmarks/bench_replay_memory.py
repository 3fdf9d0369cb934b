"""Replay memory at the full state layout: rltrade's index replay vs stable-baselines3's ReplayBuffer.

rltrade stores time indices and small per-step values and gathers the 15,588-feature states on demand;
SB3's ``ReplayBuffer`` (the named baseline) stores the observation vectors themselves, once per
transition with ``optimize_memory_usage=True`` and twice (obs and next obs) without.

Each case runs in a fresh subprocess: import everything, read RSS, build the buffer, fill it to
capacity, read RSS again. The RSS difference is the buffer's resident memory. SB3 cases too large to
allocate safely here (1M × 15,588 float32 is 62 GB) are not allocated: their bytes are computed from
SB3's own per-row array sizes (read off a real 8-row buffer) and labelled ``computed``.

    .venv/bin/python -m benchmarks.bench_replay_memory [--quick] [--repeats N] [--max-real-gb G]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import psutil
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from benchmarks._util import quick_parser
from rltrade.agent.batches import Transitions
from rltrade.agent.replay import PrioritizedReplay

FEATURES = 15_588  # market state of the full layout (SPEC §2.4)
ACCOUNT_DIM = 8  # position, unrealised PnL, time in trade, ...: generous for the env's account block
TARGET_MIB = 128  # rltrade: one million transitions in less than this
MIB = 2**20


@dataclass(frozen=True)
class Case:
    kind: str  # "rltrade-per" | "rltrade-uniform" | "sb3" | "sb3-optimized"
    size: int


@dataclass(frozen=True)
class Result:
    case: Case
    array_bytes: int
    rss_delta: float | None  # median over repeats; None when computed, not measured

    @property
    def resident(self) -> float:
        return float(self.array_bytes) if self.rss_delta is None else self.rss_delta


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _sb3_buffer(size: int, optimized: bool) -> ReplayBuffer:
    obs_space = spaces.Box(-np.inf, np.inf, shape=(FEATURES,), dtype=np.float32)
    return ReplayBuffer(
        size,
        obs_space,
        spaces.Discrete(3),
        device="cpu",
        optimize_memory_usage=optimized,
        handle_timeout_termination=not optimized,  # SB3 refuses both at once
    )


def _sb3_array_bytes(buffer: ReplayBuffer) -> int:
    names = ["observations", "actions", "rewards", "dones", "timeouts"]
    if not buffer.optimize_memory_usage:
        names.append("next_observations")
    return sum(int(getattr(buffer, name).nbytes) for name in names)


def sb3_bytes_per_row(optimized: bool) -> float:
    """SB3's array bytes per transition, read off a real 8-row buffer (its arrays are all [size, ...])."""
    return _sb3_array_bytes(_sb3_buffer(8, optimized)) / 8


def _fill_rltrade(size: int, prioritized: bool) -> tuple[int, int]:
    rng = np.random.default_rng(0)
    rss0 = _rss()
    buffer = PrioritizedReplay(size, ACCOUNT_DIM, rng=rng, prioritized=prioritized)
    chunk = 4096  # small chunks: temporaries stay far below the buffer itself
    for start in range(0, size, chunk):
        n = min(chunk, size - start)
        t = np.arange(start, start + n, dtype=np.int64)
        account = rng.standard_normal((n, ACCOUNT_DIM), dtype=np.float32)
        reward = rng.standard_normal(n, dtype=np.float32)
        discount = np.full(n, 0.97, dtype=np.float32)
        buffer.add(Transitions(t, account, t % 3, reward, discount, t + 3, account))
        if prioritized:
            buffer.update_priorities(np.arange(start, start + n), rng.exponential(size=n))
    buffer.sample(128, beta=0.4)
    return _rss() - rss0, buffer.nbytes()


def _fill_sb3(size: int, optimized: bool) -> tuple[int, int]:
    rng = np.random.default_rng(0)
    obs_pool = rng.standard_normal((16, 1, FEATURES), dtype=np.float32)
    action, reward, done = np.array([[1]]), np.array([0.5]), np.array([False])
    infos: list[dict[str, object]] = [{}]
    rss0 = _rss()
    buffer = _sb3_buffer(size, optimized)
    for i in range(size):
        buffer.add(obs_pool[i % 16], obs_pool[(i + 1) % 16], action, reward, done, infos)
    buffer.sample(128)
    return _rss() - rss0, _sb3_array_bytes(buffer)


def worker(kind: str, size: int) -> None:
    """Build and fill one buffer in this (fresh) process; print its RSS delta and array bytes as JSON.

    SB3, torch and rltrade are imported at module level in every case, so all RSS baselines match.
    """
    if kind.startswith("rltrade"):
        delta, nbytes = _fill_rltrade(size, prioritized=kind == "rltrade-per")
    else:
        delta, nbytes = _fill_sb3(size, optimized=kind == "sb3-optimized")
    print(json.dumps({"rss_delta": delta, "array_bytes": nbytes}))


def estimate_bytes(case: Case) -> int:
    if case.kind.startswith("sb3"):
        return int(sb3_bytes_per_row(case.kind == "sb3-optimized") * case.size)
    per = 4 + 4 + 1 + 4 + 4 + 2 * 4 * ACCOUNT_DIM + 4 + 64  # record + |δ|+ε + trees (≤ 64 B)
    return per * case.size


def measure(case: Case, repeats: int) -> Result:
    deltas, nbytes = [], 0
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_replay_memory", "--worker", case.kind, str(case.size)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        deltas.append(row["rss_delta"])
        nbytes = row["array_bytes"]
    return Result(case, nbytes, statistics.median(deltas))


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def main() -> None:
    parser = quick_parser(__doc__.splitlines()[0])  # --quick: small SB3 sizes, one repeat
    parser.add_argument(
        "--max-real-gb", type=float, default=7.0, help="allocate for real only below this (and half the free RAM)"
    )
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return

    sizes = (5_000, 1_000_000) if args.quick else (50_000, 1_000_000)
    repeats = 1 if args.quick else args.repeats  # fresh processes per measured case (median)
    limit = min(args.max_real_gb * 1e9, 0.5 * psutil.virtual_memory().available)
    print(
        f"replay memory, state {FEATURES:,} float32 features, account {ACCOUNT_DIM} features; "
        f"measured = median RSS growth over {repeats} fresh process(es); real allocations only below "
        f"{limit / 1e9:.1f} GB, the rest computed from SB3's array shapes"
    )
    results: list[Result] = []
    for size in sizes:
        for kind in ("rltrade-per", "rltrade-uniform", "sb3-optimized", "sb3"):
            case = Case(kind, size)
            if estimate_bytes(case) <= limit:
                results.append(measure(case, repeats))
            else:
                results.append(Result(case, estimate_bytes(case), None))

    header = (
        f"{'buffer':<36}{'transitions':>12}{'arrays MiB':>13}{'resident MiB':>14}  {'source':<9}"
        f"{'B/transition':>13}{'× rltrade PER':>15}"
    )
    print(header)
    print("-" * len(header))
    names = {
        "rltrade-per": "rltrade PrioritizedReplay (PER)",
        "rltrade-uniform": "rltrade PrioritizedReplay (uniform)",
        "sb3-optimized": "SB3 ReplayBuffer (optimize_memory)",
        "sb3": "SB3 ReplayBuffer",
    }
    for r in results:
        ours = next(x for x in results if x.case == Case("rltrade-per", r.case.size))
        print(
            f"{names[r.case.kind]:<36}{r.case.size:>12,}{r.array_bytes / MIB:>13,.1f}{r.resident / MIB:>14,.1f}  "
            f"{'measured' if r.rss_delta is not None else 'computed':<9}{r.resident / r.case.size:>13,.1f}"
            f"{_ratio(r.resident / ours.resident):>15}"
        )
    million = next(r for r in results if r.case == Case("rltrade-per", 1_000_000))
    verdict = "meets" if million.resident < TARGET_MIB * MIB else "MISSES"
    print(
        f"\nrltrade PER at 1,000,000 transitions: {million.resident / MIB:.1f} MiB resident "
        f"({verdict} the < {TARGET_MIB} MiB target)"
    )


if __name__ == "__main__":
    main()
