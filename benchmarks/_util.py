"""Small timing helpers shared by the benchmarks: median of repeats, rates, one-line reports."""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each repeat (warm-up excluded) and their median."""

    name: str
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()
    """CPU seconds of this process in each repeat (``time.process_time``), where the timer recorded them."""

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu_s(self) -> float:
        """Median CPU seconds per repeat: on a shared machine, less sensitive than wall time to other jobs' load."""
        return statistics.median(self.cpu_seconds)

    def rate(self, items: int) -> float:
        """Items per second at the median time."""
        return items / self.median_s


def time_median(name: str, fn: Callable[[], R], *, repeats: int = 5, warmup: int = 1) -> tuple[Timing, R]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the timing and last result.

    The garbage collector is run before and disabled during each timed call so that one
    implementation does not pay for the other's garbage.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    seconds: list[float] = []
    results: list[R] = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            results.append(fn())
            seconds.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        del results[:-1]  # keep only the latest result alive
    return Timing(name, tuple(seconds)), results[-1]


def time_interleaved(
    fns: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1
) -> tuple[list[Timing], dict[str, object]]:
    """Like ``time_median`` for several implementations, alternating them within each repeat.

    On a shared machine the load drifts; interleaving makes each implementation see the same drift,
    so the ratio of medians is fairer than timing one implementation after the other.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    results: dict[str, object] = {}
    for _ in range(warmup):
        for name, fn in fns.items():
            results[name] = fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            gc.disable()
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                results[name] = fn()
                seconds[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            finally:
                gc.enable()
    return [Timing(name, tuple(s), tuple(cpu[name])) for name, s in seconds.items()], results


def report_ratio(ours: Timing, baseline: Timing, *, items: int, unit: str) -> float:
    """Print both medians and throughputs and the speed-up of ``ours`` over ``baseline``; return it."""
    width = max(len(ours.name), len(baseline.name))
    for t in (ours, baseline):
        print(
            f"  {t.name:<{width}}  median {t.median_s * 1e3:9.1f} ms over {len(t.seconds)} repeats  "
            f"{t.rate(items):14,.0f} {unit}/s"
        )
    ratio = baseline.median_s / ours.median_s
    print(f"  speed-up {ours.name} vs {baseline.name}: {ratio:.2f}x")
    return ratio


def quick_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` and ``--repeats`` flags every benchmark accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per implementation (>= 3)")
    return parser
