"""``rltrade live``: paper-trade a run's agent on the real-time trade stream.

The run's layout, feature statistics, CNNs and agent are loaded from its folder; the feature builder is
warm-started from the store (the run's ``data`` config) at ``--start`` (default: the end of the stored
trades) or, when ``--out`` holds a saved session, at that session's last decision, which it then resumes
(position, equity, orders, trade ids, clock). The feed (``--url``; tests pass a ``ws://127.0.0.1`` replay
server) drives :class:`rltrade.live.engine.LiveEngine`; a rich console shows price, position, PnL,
latency and stream health; ``--out`` receives ``log.jsonl``, ``metrics.csv``, ``state.json`` (checkpoint,
every ``--checkpoint-every`` seconds and at shutdown) and, at shutdown, ``report.json``, ``trades.parquet``
and ``steps.parquet``.

Real orders are not placed by this version: ``--live-orders`` is refused, with a message saying what is
missing (``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` in the environment) or that only paper trading exists.
Keys are never read into a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from rltrade.cli.app import app, console
from rltrade.cli.errors import UsageError

DEFAULT_URL = "wss://stream.binance.com:9443"
KEY_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET")


def refuse_live_orders(live_orders: bool, paper: bool) -> None:
    """Real orders need ``--live-orders`` and keys in the environment, and even then this version refuses them."""
    if not live_orders and paper:
        return
    if not live_orders:
        raise UsageError("--no-paper places real orders and needs --live-orders (and API keys); or run with --paper")
    missing = [k for k in KEY_VARS if not os.environ.get(k)]
    if missing:
        raise UsageError(f"--live-orders needs {' and '.join(missing)} set in the environment")
    raise UsageError(
        "real order placement is not implemented in this version of rltrade: only paper trading is supported; "
        "run with --paper"
    )


@app.command("live")
def live_cmd(
    run: Annotated[Path, typer.Option("--run", help="Run folder made by `rltrade train`.")],
    paper: Annotated[bool, typer.Option("--paper/--no-paper", help="Trade on paper (the only mode).")] = True,
    live_orders: Annotated[bool, typer.Option("--live-orders", help="Real orders (refused: not implemented).")] = False,
    url: Annotated[str, typer.Option(help="Websocket endpoint base.")] = DEFAULT_URL,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Session folder (default RUN/live); resumed if it holds one.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="UTC warm-start time (default: end of the stored trades).")] = None,
    grace: Annotated[float, typer.Option(help="Seconds to wait for the slower symbol before deciding.")] = 1.0,
    on_stale: Annotated[str, typer.Option(help="hold (no new positions) or flat, while data is stale.")] = "hold",
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between checkpoints.")] = 10.0,
    which: Annotated[str, typer.Option(help="Agent checkpoint: best or last.")] = "best",
    retries: Annotated[
        int, typer.Option(min=1, help="Failed connection attempts before giving up (exit 2), until data flows.")
    ] = 5,
    wait: Annotated[
        bool, typer.Option("--wait", help="Keep retrying a URL that refuses or stays silent, saying so each time.")
    ] = False,
) -> None:
    """Paper-trade the run's agent on the live trade stream (see `rltrade live --help`)."""
    refuse_live_orders(live_orders, paper)
    if on_stale not in ("hold", "flat"):
        raise UsageError(f"--on-stale must be hold or flat, got {on_stale!r}")
    if which not in ("best", "last"):
        raise UsageError(f"--which must be best or last, got {which!r}")
    import torch

    from rltrade.data.market import load_market
    from rltrade.live.engine import EngineSettings, LiveEngine, wall_us
    from rltrade.live.feed import FeedGaveUp
    from rltrade.live.journal import Journal
    from rltrade.live.policy import load_live_cnn, load_live_model
    from rltrade.live.state import load_state, save_state

    model = load_live_model(run, which=which)
    cfg = model.config
    torch.set_num_threads(cfg.train.torch_threads)
    folder = out if out is not None else run / "live"
    state_path = folder / "state.json"
    saved = load_state(state_path, run_dir=run)
    frames = load_market(cfg.data)
    t0 = int(saved["resume_us"]) if saved is not None else _warm_start_us(frames, start)
    settings = EngineSettings(grace_s=grace, on_stale=on_stale)  # type: ignore[arg-type]
    engine = LiveEngine(
        model.layout,
        cfg.features,
        cfg.env,
        frames,
        t0,
        model.policy,
        stats=model.stats,
        settings=settings,
        cnn=load_live_cnn(run, cfg),
        seed=_kline_seed(frames, url),
    )
    if saved is not None:
        engine.load_state_dict(saved)
    engine.warm_up()
    started = wall_us()
    last_ckpt = [time.monotonic()]
    with Journal(folder) as journal:
        journal.event(
            "start", run=str(run), url=url, t0_us=t0, resumed=saved is not None, checkpoint=str(model.checkpoint)
        )

        def checkpoint(reason: str) -> None:
            save_state(state_path, engine.state_dict(), run_dir=run)
            journal.event("checkpoint", reason=reason, resume_us=engine.resume_us, decisions=engine.next_idx)
            last_ckpt[0] = time.monotonic()

        def on_decision(d: Any) -> None:
            journal.decision(d, engine)
            if time.monotonic() - last_ckpt[0] >= checkpoint_every:
                checkpoint("periodic")

        engine.on_decision.append(on_decision)
        engine.on_fill.append(journal.fill)
        feed_stats: dict[str, Any] | None = None
        try:
            feed_stats = asyncio.run(
                _session(engine, journal, url, dict(frames.symbols), duration, retries=None if wait else retries)
            )
        except KeyboardInterrupt:
            journal.event("stop", reason="interrupted")
        except FeedGaveUp as exc:
            journal.event("error", error=f"{type(exc).__name__}: {exc}")
            raise UsageError(
                f"cannot connect to {exc.url}: {exc.reason} ({exc.attempts} attempts); check --url and that "
                "the server is up, or pass --wait to keep retrying"
            ) from exc
        except Exception as exc:
            journal.event("error", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            checkpoint("shutdown")
            from rltrade.live.summary import session_summary, write_report

            summary = session_summary(engine, started_us=started, ended_us=wall_us(), feed_stats=feed_stats)
            report = write_report(folder, engine, summary)
            journal.event("stop", reason="end", decisions=engine.next_idx)
    _print_report(report, folder)


def _kline_seed(frames: Any, url: str) -> Any:
    """Where a bar that formed across the start gets its real value: the store, then Binance's klines."""
    from rltrade.features.state_stream import seed_from_frames

    stored = seed_from_frames(frames)
    if url != DEFAULT_URL:
        return stored
    import ccxt

    from rltrade.live.backfill import ccxt_kline_seed, chain_seeds

    exchange = ccxt.binance({"enableRateLimit": True, "timeout": 5_000})
    return chain_seeds(stored, ccxt_kline_seed(exchange, dict(frames.symbols)))


def _warm_start_us(frames: Any, start: str | None) -> int:
    if start is not None:
        from rltrade.cli.data import _parse_time

        return int(_parse_time(start, "--start"))
    tick = frames.tick_span_us("eth")
    return int(tick[1]) if tick is not None else int(frames.span_us("eth")[1])


async def _session(
    engine: Any, journal: Any, url: str, symbols: dict[str, str], duration: float | None, *, retries: int | None
) -> dict[str, Any]:
    """Run the feed into the engine (with the console) until ``duration`` passes or the feed ends.

    Before any data arrives, ``retries`` failed connections make the feed give up (``FeedGaveUp``); with
    ``retries=None`` (``--wait``) it keeps trying and every failed attempt is printed and journaled.
    """
    import dataclasses

    from rltrade.live.events import StreamStatus
    from rltrade.live.feed import LiveFeed, LiveFeedConfig

    backfill = _backfill(symbols) if url == DEFAULT_URL else None
    cfg = {"url": url, "symbols": symbols, "max_initial_failures": retries}
    feed = LiveFeed(LiveFeedConfig.model_validate(cfg), backfill=backfill)
    started = time.monotonic()
    reported_failures = 0
    from rltrade.cli.app import PLAIN_PROGRESS_EVERY_S

    plain_every = float(os.environ.get("RLTRADE_PROGRESS_EVERY_S") or PLAIN_PROGRESS_EVERY_S)
    next_plain = started + plain_every

    async def logged() -> AsyncIterator[Any]:
        async for ev in feed.events():
            if isinstance(ev, StreamStatus):
                journal.event("status", health=ev.health.value, role=ev.role, detail=ev.detail)
            yield ev

    from rltrade.live.engine import wall_us

    engine.await_connection(wall_us())  # a session that never connects is not up
    async with feed:
        task = asyncio.create_task(engine.run(logged()))
        with Live(_view(engine, feed.stats, started), console=console, refresh_per_second=4, transient=False) as view:
            while not task.done():
                if duration is not None and time.monotonic() - started >= duration:
                    break
                await asyncio.wait({task}, timeout=0.25)
                st = feed.stats
                if not st.ever_connected and st.connect_failures > reported_failures:
                    reported_failures = st.connect_failures
                    line = f"waiting for {url}: {st.last_error} (attempt {st.connect_failures}); retrying"
                    console.print(line, highlight=False)
                    journal.event("status", health="waiting", role=None, detail=line)
                view.update(_view(engine, feed.stats, started))
                if not console.is_terminal and time.monotonic() >= next_plain:
                    next_plain += plain_every  # the table does not redraw into a pipe: say where we are
                    console.print(_status_line(engine, feed.stats, started), highlight=False)
        await feed.aclose()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Not dataclasses.asdict: it would rebuild the Counter of malformed reasons from (key, count) pairs.
        stats = {f.name: getattr(feed.stats, f.name) for f in dataclasses.fields(feed.stats)}
    stats["malformed"] = {str(k): int(v) for k, v in stats["malformed"].items()}
    return stats


def _backfill(symbols: dict[str, str]) -> Any:
    """Backfill of gaps through ccxt's Binance client (public endpoints: no keys)."""
    import ccxt

    from rltrade.live.backfill import ccxt_backfill

    return ccxt_backfill(ccxt.binance({"enableRateLimit": True}), symbols)


def _fmt_us(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f} ms"


def _view(engine: Any, feed_stats: Any, started: float) -> Table:
    b, c = engine.broker, engine.counters
    table = Table(title=f"rltrade live (paper) · {time.monotonic() - started:.0f} s", show_header=False)
    table.add_column("what")
    table.add_column("value")
    equity = b.equity_at(engine.last_price)
    pnl = equity - b.initial_equity
    table.add_row("price", f"{engine.last_price:,.2f}")
    table.add_row("position", {-1: "short", 0: "flat", 1: "long"}[b.position])
    table.add_row("equity / PnL", f"{equity:,.2f}  ({pnl:+,.2f}, fees {b.fees_paid:,.2f})")
    table.add_row(
        "decisions", f"{c.decisions:,} (grace {c.grace_decisions}, stale {c.stale_decisions}), fills {c.fills:,}"
    )
    table.add_row("trades", f"{c.trades_processed:,} processed, {c.known_dropped} repeats, {c.late_dropped} late")
    health = "stale: " + ", ".join(sorted(engine.stale)) if engine.stale else "ok"
    if feed_stats.connects == 0 or (feed_stats.connect_failures and not feed_stats.ever_connected):
        link = f"NOT CONNECTED ({feed_stats.last_error or 'connecting'}, {feed_stats.connect_failures} failed)"
    else:
        link = "connected" if engine.connected else "DISCONNECTED"
    table.add_row(
        "stream",
        f"{health}; {link}; msgs {feed_stats.messages:,}, "
        f"gaps {feed_stats.gaps}, reconnects {feed_stats.reconnects}, dups {feed_stats.duplicates}",
    )
    for stage, s in engine.latency.summary().items():
        if s["n"]:
            table.add_row(f"latency {stage}", f"p50 {_fmt_us(s['p50_us'])}  p99 {_fmt_us(s['p99_us'])}  (n {s['n']:,})")
    return table


def _status_line(engine: Any, feed_stats: Any, started: float) -> str:
    """One plain line of the session (for a pipe or a log, where the live table does not redraw)."""
    b, c = engine.broker, engine.counters
    now = engine.degraded_us(int(time.time() * 1e6))
    alive = max(time.monotonic() - started, 1e-9)
    link = "connected" if feed_stats.connects and engine.connected else "NOT CONNECTED"
    return (
        f"live {alive:.0f} s: {c.decisions:,} decisions, {c.trades_processed:,} trades, fills {c.fills:,}, "
        f"equity {b.equity_at(engine.last_price):,.2f}, {link}, stale {sorted(engine.stale) or 'none'}, "
        f"degraded {now / 1e6:.1f} s, gaps {feed_stats.gaps}, reconnects {feed_stats.reconnects}"
    )


def _print_report(report: dict[str, Any], folder: Path) -> None:
    c = report["counters"]
    m = report["metrics"] or {}
    console.print(
        f"decisions {report['clock']['decisions']:,} · fills {c['fills']:,} · uptime {report['uptime']:.2%} · "
        f"equity {report['equity']:,.2f} · return {m.get('total_return', 0.0):+.4%}"
    )
    console.print(
        f"trades {c['trades_processed']:,} processed · repeats {c['known_dropped']} · late {c['late_dropped']} · "
        f"grace {c['grace_decisions']} · stale {c['stale_decisions']} · status {c['status']}"
    )
    console.print(f"report, trades, log, metrics and state: {folder}")
