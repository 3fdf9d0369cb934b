"""Live soak: hours of synthetic trades, with random faults, through the replay server, the feed and the engine.

The synthetic market's trades after a warm start are replayed as fast as the client reads
(``tests.support.ws_replay_server``, speed 0) with duplicates, reorders, gaps, malformed messages and
dropped connections injected at random (seeded); the :class:`~rltrade.live.feed.LiveFeed` feeds the
:class:`~rltrade.live.engine.LiveEngine` (demo layout, a seeded untrained agent acting greedily, paper
broker). Reported:

* uptime (wall): ``1 − degraded / alive`` (a role stale or the connection down), and busy: the share of the
  wall time spent processing events; decision uptime: clock steps decided on healthy data;
* messages/s over the session; latency p50/p99 per trade (receipt → processed) and per decision
  (receipt of the trade that allowed it → action), and per stage;
* memory: RSS (psutil) at start and end of the replay, and its slope (MB per minute) fitted on samples
  taken every half second after the first 10 %.

Baseline, in the same process: recomputing the state from the raw data at a decision, as a process with no
streaming builder would (``MarketFrames.until(t)`` → ``build_market_features`` → ``BatchStateBuilder.gather``),
median over ``--repeats`` decisions, against the engine's processing time per decision (everything it does
per clock step, trades included). Targets: uptime > 99.5 %, trade p99 < 5 ms, flat memory.

Run: ``.venv/bin/python -m benchmarks.bench_live_soak [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any

import numpy as np
import polars as pl
import psutil
import torch

from rltrade.agent.learner import DQNLearner
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features, fit_feature_stats
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.live.engine import Decision, EngineSettings, LiveEngine, wall_us
from rltrade.live.feed import LiveFeed, LiveFeedConfig
from rltrade.live.latency import LatencyHistogram
from rltrade.training.loop import block_specs, greedy_policy
from rltrade.training.presets import load_with_preset
from tests.support.live_market import trade_events
from tests.support.ws_replay_server import (
    MALFORMED_SAMPLES,
    FaultPlan,
    build_script,
    replay_server_thread,
    trade_messages,
)

WARM_S = 600


def _plan(frames: MarketFrames, events_n: int, t0: int, rng: np.random.Generator) -> FaultPlan:
    eth = frames.trades["eth"].filter(pl.col("ts_us") > t0)["trade_id"].to_numpy()
    gaps = tuple(("ETHUSDT", int(a), int(a) + int(rng.integers(1, 30))) for a in rng.choice(eth[:-100], 3))
    at = np.sort(rng.integers(100, events_n - 100, 8))
    return FaultPlan(
        gaps=gaps,
        duplicate_prob=0.005,
        reorder_prob=0.005,
        delay_prob=0.0005,
        drops=(int(at[0]), int(at[1])),
        lost_on_drop=20,
        inject=tuple((int(i), MALFORMED_SAMPLES[k % len(MALFORMED_SAMPLES)][1]) for k, i in enumerate(at[2:])),
        seed=int(rng.integers(1 << 30)),
    )


async def _soak(
    engine: LiveEngine, url: str, server: Any, n_messages: int, per_event: LatencyHistogram
) -> dict[str, Any]:
    feed = LiveFeed(LiveFeedConfig.model_validate({"url": url, "backoff_base_s": 0.1, "book": False}))
    proc = psutil.Process()
    rss: list[tuple[float, float]] = []
    busy = [0.0]
    on_event = engine.on_event

    def timed(ev: Any, now: int | None = None) -> list[Decision]:
        t = time.perf_counter()
        try:
            return on_event(ev, now)
        finally:
            dt = time.perf_counter() - t
            busy[0] += dt
            per_event.add(dt * 1e6)

    engine.on_event = timed  # type: ignore[method-assign,assignment]
    start = time.perf_counter()
    async with feed:
        task = asyncio.create_task(engine.run(feed.events()))
        last_progress = (0, start)
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            now = time.perf_counter()
            rss.append((now - start, proc.memory_info().rss / 2**20))
            done = feed.stats.trades
            if done != last_progress[0]:
                last_progress = (done, now)
            # The script is over once the server says so and the engine has caught up (or stalls 5 s).
            if server.finished.is_set() and (feed.stats.messages >= n_messages * 0.95 or now - last_progress[1] > 5):
                break
        alive = time.perf_counter() - start
        end_us = wall_us()
        await feed.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return {"alive_s": alive, "busy_s": busy[0], "rss": rss, "feed": feed.stats, "end_us": end_us}


def _baseline_per_decision(frames: MarketFrames, cfg: Any, stats: Any, times: list[int]) -> list[float]:
    layout = build_layout(cfg.features.layout)
    out = []
    for t in times:
        t1 = time.perf_counter()
        features = build_market_features(frames.until(t), layout, cfg.features, stats)
        BatchStateBuilder(layout, features).gather([t])
        out.append(time.perf_counter() - t1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 40 minutes of trades instead of 6 hours")
    ap.add_argument("--repeats", type=int, default=5, help="baseline decisions timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", type=float, default=50.0, help="replay speed-up over market time (0: unpaced)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tick_days = 0.03 if args.quick else 0.25
    cfg = load_with_preset(
        None,
        "demo",
        {
            "data": {"synthetic": {"history_days": 12 if args.quick else 30, "tick_days": tick_days}},
            "cnn": {"enabled": False},
        },
    )
    frames = load_market(cfg.data)
    lo, hi = frames.tick_span_us("eth")  # type: ignore[misc]
    t0 = (lo // 1_000_000 + WARM_S) * 1_000_000
    stats = fit_feature_stats(frames, TimeRange(lo, t0))
    layout = build_layout(cfg.features.layout)
    learner = DQNLearner(cfg.agent.model_copy(update={"seed": 3}), layout.size, ACCOUNT_DIM, blocks=block_specs(layout))
    events = trade_events(frames, t0)
    rng = np.random.default_rng(args.seed)
    script = build_script(trade_messages(events), _plan(frames, len(events), t0, rng))
    print(f"stream: {len(events):,} trades over {(hi - t0) / 3.6e9:.2f} h of market time, {len(script):,} steps")
    engine = LiveEngine(
        layout, cfg.features, cfg.env, frames, t0, greedy_policy(learner), stats=stats, settings=EngineSettings()
    )
    per_event = LatencyHistogram()
    with replay_server_thread(script, speed=args.speed) as server:
        soak = asyncio.run(_soak(engine, server.url, server, len(script), per_event))
    c, feed = engine.counters, soak["feed"]
    alive = soak["alive_s"]
    degraded = engine.degraded_us(soak["end_us"]) / 1e6
    lat = engine.latency.summary()
    rss_t = np.array(soak["rss"])
    tail = rss_t[len(rss_t) // 10 :]
    slope = float(np.polyfit(tail[:, 0] / 60, tail[:, 1], 1)[0]) if len(tail) > 2 else 0.0
    uptime = 1 - min(degraded, alive) / alive
    print(f"alive {alive:.1f} s · busy {soak['busy_s'] / alive:.1%} · uptime (wall) {uptime:.3%}")
    healthy = 1 - (c.stale_decisions + c.grace_decisions) / max(c.decisions, 1)
    print(f"decisions {c.decisions:,} · on healthy data {healthy:.3%}", end=" ")
    print(f"({c.stale_decisions} stale, {c.grace_decisions} grace)")
    print(f"messages {feed.messages:,} · {feed.messages / alive:,.0f} msg/s · trades processed {c.trades_processed:,}")
    print(
        f"feed: duplicates {feed.duplicates} · reordered {feed.reordered} · late {feed.late_dropped} · "
        f"gaps {feed.gaps} ({feed.missing_trades} trades) · malformed {sum(feed.malformed.values())} · "
        f"reconnects {feed.reconnects}"
    )
    print(f"engine: repeats {c.known_dropped} · late {c.late_dropped} · status {c.status}")
    for stage, s in lat.items():
        if s["n"]:
            p50, p99 = float(s["p50_us"] or 0.0), float(s["p99_us"] or 0.0)
            print(f"  latency {stage:<8} p50 {p50 / 1e3:8.3f} ms  p99 {p99 / 1e3:8.3f} ms  n {s['n']:,}")
    print(f"RSS start {rss_t[0, 1]:.0f} MB · end {rss_t[-1, 1]:.0f} MB · slope after warm-up {slope:+.2f} MB/min")
    per_decision = soak["busy_s"] / max(c.decisions, 1)
    sample = [int(t) for t in np.linspace(t0 + 60_000_000, engine.next_time_us - 1_000_000, args.repeats)]
    base = _baseline_per_decision(frames, cfg, stats, sample)
    print(
        f"baseline (recompute from raw data per decision): median {statistics.median(base) * 1e3:.1f} ms · "
        f"streaming engine: {per_decision * 1e3:.2f} ms per decision (all its work) · "
        f"ratio {statistics.median(base) / per_decision:.0f}x"
    )
    ev = per_event.summary()
    p50, p99 = float(ev["p50_us"] or 0.0), float(ev["p99_us"] or 0.0)
    print(f"processing per event (on_event): p50 {p50 / 1e3:.3f} ms · p99 {p99 / 1e3:.3f} ms · n {ev['n']:,}")
    print(
        f"targets: uptime > 99.5 % {'ok' if uptime > 0.995 else 'MISSED'} · "
        f"processing p99 < 5 ms {'ok' if p99 < 5000 else 'MISSED'} · memory slope {slope:+.2f} MB/min"
    )


if __name__ == "__main__":
    main()
