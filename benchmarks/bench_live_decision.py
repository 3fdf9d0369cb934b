"""Live decision cost: the engine's per-series channel update (only the new bars' rows) vs recomputing the tail.

A live decision on the 1 s clock reads the newest 1 s bar windows of ETH and BTC (the state's bar blocks and
the 1 s CNN's input), so each one brings both series' per-bar channels up to date. The engine does it with
:func:`~rltrade.features.bar_channels.extend_bar_channels`: the new bars' rows only, from their last
``history_bars + 1`` bars. The baseline is what it did before: :func:`~rltrade.features.bar_channels.
compute_bar_channels` over the series' whole kept tail (``history_bars + W + 1`` bars: a TA-Lib pass and a
rolling median over 601 bars for the 300-bar windows) at every read after a bar closed.

Two engines with the same agent, CNNs, statistics and start are fed the same trades of the run's test range,
in process and without the network (``on_event`` with the trade's own time as the clock), alternating which
engine takes each trade first. Printed: per decision and per trade (inside the engine, the decisions a trade
triggers included) p50 / p90 / p99 of both and their ratio, the channel updates each did, and a check that
both engines took the same actions with states within ``FLOAT_TOLERANCE``. The soak
(``bench_live_soak``) measures the engine behind the network at market pace; this one isolates its work.

Run: ``.venv/bin/python -m benchmarks.bench_live_decision --run runs/demo`` (the run ``make run`` writes;
``--minutes`` of market time, default 20); ``--quick`` (or no run folder): an untrained agent on a small
synthetic market with the CNNs off.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_live_soak import _from_run, _synthetic, run_engine
from rltrade.features.bar_channels import BarChannels, compute_bar_channels
from rltrade.features.state_stream import FLOAT_TOLERANCE, StreamingStateBuilder
from rltrade.live.engine import Decision
from rltrade.types import Timeframe
from tests.support.live_market import trade_events


class RecomputingBuilder(StreamingStateBuilder):
    """The baseline: a series' channels recomputed over its whole kept tail at every read after a bar closed."""

    def _channels_of(self, role: str, tf: Timeframe) -> BarChannels:
        key = (role, tf)
        if key in self._dirty or key not in self._channels:
            _, ohlcv, _ = self._roles[role].bars[tf].tail(self._keep[tf])
            o, h, lo, c, v = (np.ascontiguousarray(ohlcv[:, k]) for k in range(5))
            self._channels[key] = compute_bar_channels(o, h, lo, c, v, self.spec.bar, what=f"{role} {tf.value}")
            self.channel_updates["full"] += 1
            self._dirty.discard(key)
        return self._channels[key]


def _percentiles(us: list[float]) -> tuple[float, float, float]:
    p50, p90, p99 = np.percentile(np.asarray(us), [50, 90, 99]) / 1e3
    return float(p50), float(p90), float(p99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a run folder (runs/demo); without it, --quick")
    ap.add_argument("--minutes", type=float, default=20.0, help="minutes of market time to replay")
    ap.add_argument("--quick", action="store_true", help="synthetic market, untrained agent, CNNs off")
    args = ap.parse_args()
    torch.set_num_threads(1)
    quick = args.quick or args.run is None
    if quick:
        cfg, frames, model, policy, cnns, t0 = _synthetic(True)
        cnns_b = None
        args.minutes = min(args.minutes, 1.5)
    else:
        from rltrade.live.policy import load_live_cnn

        cfg, frames, model, policy, cnns, t0 = _from_run(args.run)
        cnns_b = load_live_cnn(args.run, cfg)  # each engine its own bridge: a bridge keeps per-bar caches
    events = trade_events(frames, t0, t0 + int(args.minutes * 60e6))
    engines = {
        name: run_engine(cfg, frames, model, policy, bridge, t0)
        for name, bridge in (("update", cnns), ("recompute", cnns_b))
    }
    engines["recompute"].builder.__class__ = RecomputingBuilder
    decisions: dict[str, list[Decision]] = {name: [] for name in engines}
    for name, engine in engines.items():
        engine.on_decision.append(decisions[name].append)
    per_trade: dict[str, list[float]] = {name: [] for name in engines}
    per_decision: dict[str, list[float]] = {name: [] for name in engines}
    order = list(engines)
    for k, ev in enumerate(events):
        for name in order if k % 2 == 0 else order[::-1]:
            engine = engines[name]
            t = time.perf_counter_ns()
            made = engine.on_event(ev, now_us=ev.time_us)
            us = (time.perf_counter_ns() - t) / 1e3
            per_trade[name].append(us)
            if made:
                per_decision[name].append(us)
    n = len(decisions["update"])
    same = [a.action == b.action for a, b in zip(decisions["update"], decisions["recompute"], strict=True)]
    worst = max(
        (float(np.abs(a.obs - b.obs).max()) for a, b in zip(decisions["update"], decisions["recompute"], strict=True)),
        default=0.0,
    )
    cnn = "off" if cnns is None else "on (" + ", ".join(tf.value for tf in cnns.models) + ")"
    print(
        f"{len(events):,} trades over {args.minutes:g} min of market time, {n:,} decisions, layout "
        f"{model.layout.name} ({model.layout.size:,} features), CNNs {cnn}"
    )
    print(f"{'':>34} {'p50':>9} {'p90':>9} {'p99':>9}   (ms, in the engine)")
    for what, samples in (("per decision", per_decision), ("per trade", per_trade)):
        rows = {name: _percentiles(samples[name]) for name in engines}
        for name in engines:
            label = f"{what}, {name}"
            print(f"{label:>34} " + " ".join(f"{x:9.3f}" for x in rows[name]))
        ratio = [b / a for a, b in zip(rows["update"], rows["recompute"], strict=True)]
        print(f"{what + ', recompute / update':>34} " + " ".join(f"{x:8.2f}x" for x in ratio))
    for name, engine in engines.items():
        print(f"channel updates, {name}: {engine.builder.channel_updates}")
    print(
        f"same actions: {sum(same):,} of {n:,}; largest state difference {worst:.2e} "
        f"({'within' if worst <= FLOAT_TOLERANCE else 'OVER'} FLOAT_TOLERANCE {FLOAT_TOLERANCE:g})"
    )


if __name__ == "__main__":
    main()
