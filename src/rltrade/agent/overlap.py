"""When an update runs its s' half on a worker thread (``agent.overlap_update``), and the worker itself.

The overlap never changes a value (:mod:`rltrade.agent.learner` says why), only the wall time. On the
2-core development machine the ``full`` preset's training steps were 1.08–1.34× faster with it when the
machine was otherwise idle (``benchmarks/bench_full_speed.py --breakdown``; its two virtual cores share
more than a real pair would, and the two threads spend ~25 % more CPU than one), while the ``demo``
preset's small s' half made its steps 12–13 % slower. Where other jobs hold the cores, the caller can wait
for a worker that waits for a core. So ``auto`` (the ``full`` preset's) times both orders now and then:

    each period of ``period`` updates starts with ``probe`` pairs of steps, one step of each order per
    pair, in the orders overlapped/one thread, one thread/overlapped, overlapped/one thread, … ; the rest of
    the period is overlapped only if the median over the pairs of (overlapped step / one-thread step) is
    under ``margin`` (0.95)

Pairs of neighbouring steps, in alternating order, make the comparison robust to the machine's load
changing during the probe: a first version timed ``probe`` overlapped steps, then ``probe`` on one thread,
and compared their medians, so a load that rose or fell during the probe decided for it (on the 2-core
machine ``bench_full_speed`` once saw ``auto`` settle on one thread: 64.8 ms per step, against 42.5–50.9
ms in the runs that overlapped).

A step is timed from one update's start to the next one's, so whatever the overlap does to the rest of the
loop (acting, the env step) counts too, and the margin keeps the simpler order on a tie: on the ``demo``
preset a first version that timed the update alone and took the faster median chose the overlap in some
periods and made training ~5 % slower.

``on`` and ``off`` (the config's default) fix the order; the ``full`` preset uses ``auto``. On a GPU the
learner always runs the passes one after the other.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

import torch

OverlapMode = Literal["auto", "on", "off"]

_R = TypeVar("_R")
_WORKER: ThreadPoolExecutor | None = None
_WORKER_LOCK = threading.Lock()
_WORKER_THREADS = threading.local()


def update_worker() -> ThreadPoolExecutor:
    """Return the process's one worker thread for the s' half of updates (started on first use)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rltrade-update")
        return _WORKER


def submit(fn: Callable[..., _R], *args: object) -> Future[_R]:
    """Run ``fn(*args)`` on the worker thread with the caller's torch thread count.

    Why: the BLAS thread count is per thread. A new thread's matrix products would use every core and
    so sum in another order than the caller's (``train.torch_threads``, usually 1): not the same bits.
    """
    return update_worker().submit(_with_torch_threads, torch.get_num_threads(), fn, *args)


def _with_torch_threads(threads: int, fn: Callable[..., _R], *args: object) -> _R:
    if getattr(_WORKER_THREADS, "count", None) != threads:
        torch.set_num_threads(threads)
        _WORKER_THREADS.count = threads
    return fn(*args)


def _forget_worker() -> None:
    """In a forked child the parent's worker thread does not exist: start a new one on first use."""
    global _WORKER, _WORKER_LOCK
    _WORKER, _WORKER_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_worker)


class OverlapChooser:
    """Says for each update whether to overlap it, and learns from its wall time in ``auto`` mode.

    Call :meth:`next` before an update and :meth:`record` with the wall time of its step (from its start to
    the next update's start).
    """

    def __init__(self, mode: OverlapMode, *, period: int = 512, probe: int = 16, margin: float = 0.95) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"overlap mode must be 'auto', 'on' or 'off', got {mode!r}")
        if probe < 1 or period < 2 * probe + 1:
            raise ValueError(f"need probe >= 1 and period > 2 * probe, got period={period}, probe={probe}")
        self.mode: OverlapMode = mode
        self.period, self.probe, self.margin = period, probe, margin
        self.choice = mode != "off"
        """The order used outside the probes: overlapped (True) or one thread (False)."""
        self._seen = 0
        self._pair: dict[bool, float] = {}
        self._ratios: list[float] = []

    def next(self) -> bool:
        """Return whether the next update should run its s' half on the worker thread."""
        if self.mode != "auto":
            return self.mode == "on"
        phase = self._seen % self.period
        if phase < 2 * self.probe:
            pair, second = divmod(phase, 2)
            return (pair % 2 == 0) != bool(second)  # on/off, off/on, on/off, ...
        return self.choice

    def record(self, overlapped: bool, seconds: float) -> None:
        """Note that a step whose update was ``overlapped`` (or not) took ``seconds`` of wall time."""
        if self.mode != "auto":
            return
        if self._seen % self.period < 2 * self.probe:
            self._pair[overlapped] = seconds
            if len(self._pair) == 2:
                self._ratios.append(self._pair[True] / max(self._pair[False], 1e-12))
                self._pair = {}
        self._seen += 1
        if self._seen % self.period == 2 * self.probe:
            if self._ratios:
                self.choice = statistics.median(self._ratios) < self.margin
            self._pair, self._ratios = {}, []
