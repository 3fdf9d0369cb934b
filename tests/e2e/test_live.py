"""`rltrade live` end to end against the local replay server, with faults; live orders refused; resume."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from rltrade.cli import main
from rltrade.data.market import load_market
from rltrade.training.bundle import open_bundle
from tests.support.live_market import trade_events, train_tiny_run
from tests.support.ws_replay_server import (
    MALFORMED_SAMPLES,
    FaultPlan,
    build_script,
    replay_server_thread,
    trade_messages,
)

STEP = 1_000_000
SPAN_S = 150


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "run"
    train_tiny_run(path)
    return path


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()


def _session(run_dir: Path, out: Path, t0: int, plan: FaultPlan, *, resume: bool = False) -> int:
    cfg = open_bundle(run_dir).config
    frames = load_market(cfg.data)
    events = trade_events(frames, t0, t0 + SPAN_S * STEP)
    script = build_script(trade_messages(events), plan)
    with replay_server_thread(script) as server:
        args = ["live", "--run", str(run_dir), "--url", server.url, "--duration", "6", "--out", str(out)]
        args += [] if resume else ["--start", _iso(t0)]
        return main([*args, "--grace", "0.5", "--checkpoint-every", "1"])


def test_live_cli_survives_faults_and_writes_its_report(run_dir: Path, tmp_path: Path) -> None:
    t0 = open_bundle(run_dir).split("test").start_us
    eth_first = int(
        load_market(open_bundle(run_dir).config.data).trades["eth"].filter(pl.col("ts_us") > t0)[0, "trade_id"]
    )
    plan = FaultPlan(
        gaps=(("ETHUSDT", eth_first + 400, eth_first + 420),),
        duplicate_prob=0.02,
        reorder_prob=0.02,
        drops=(1500,),
        inject=((200, MALFORMED_SAMPLES[0][1]), (900, MALFORMED_SAMPLES[4][1])),
        seed=3,
    )
    out = tmp_path / "session"
    assert _session(run_dir, out, t0, plan) == 0
    report = json.loads((out / "report.json").read_text())
    c = report["counters"]
    assert report["clock"]["decisions"] > SPAN_S // 2
    assert c["fills"] > SPAN_S // 2 and report["metrics"] is not None
    # The faults were seen and counted, by the feed and by the engine.
    feed = report["feed"]
    assert feed["duplicates"] > 0 and feed["gaps"] >= 1 and feed["reconnects"] >= 1
    assert sum(feed["malformed"].values()) == 2
    assert c["status"].get("stale", 0) >= 1 and c["status"].get("recovered", 0) >= 1
    assert c["stale_decisions"] >= 0 and 0.0 < report["uptime"] <= 1.0
    for stage in ("update", "state", "policy", "broker", "trade", "decision"):
        assert report["latency_us"][stage]["n"] > 0
    trades = pl.read_parquet(out / "trades.parquet")
    assert trades.columns[:2] == ["entry_us", "exit_us"]
    metrics = pl.read_csv(out / "metrics.csv")
    assert metrics.height == report["clock"]["decisions"]
    kinds = [json.loads(line)["kind"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert kinds[0] == "start" and kinds[-1] == "stop" and "status" in kinds and "fill" in kinds
    assert json.loads((out / "state.json").read_text())["engine"]["next_idx"] == report["clock"]["decisions"]


@pytest.mark.slow
def test_live_cli_resumes_a_saved_session(run_dir: Path, tmp_path: Path) -> None:
    t0 = open_bundle(run_dir).split("test").start_us
    out = tmp_path / "session"
    assert _session(run_dir, out, t0, FaultPlan()) == 0
    first = json.loads((out / "report.json").read_text())
    assert _session(run_dir, out, t0, FaultPlan(), resume=True) == 0
    second = json.loads((out / "report.json").read_text())
    assert second["clock"]["start_us"] == first["clock"]["start_us"]
    # The replayed trades up to the saved decision are known: nothing is decided twice.
    assert second["clock"]["decisions"] >= first["clock"]["decisions"]
    assert second["counters"]["known_dropped"] > 0
    starts = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"kind": "start"' in x]
    assert [s["resumed"] for s in starts] == [False, True]


def test_live_orders_are_refused_with_a_clear_error(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    assert main(["live", "--run", str(run_dir), "--live-orders"]) == 2
    assert "BINANCE_API_KEY and BINANCE_API_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("BINANCE_API_KEY", "k-secret-value")
    monkeypatch.setenv("BINANCE_API_SECRET", "s-secret-value")
    assert main(["live", "--run", str(run_dir), "--live-orders"]) == 2
    err = capsys.readouterr().err
    assert "only paper trading" in err and "secret-value" not in err
    assert main(["live", "--run", str(run_dir), "--no-paper"]) == 2


def _refusing_url() -> str:
    """A ws:// URL on a free port of 127.0.0.1 nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def test_live_without_a_server_exits_2_saying_connection_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _refusing_url()
    code = main(["live", "--run", str(run_dir), "--url", url, "--retries", "2", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot connect to {url}: connection refused (2 attempts)" in " ".join(err.split())
    assert "--wait" in err


def test_live_wait_keeps_retrying_and_says_so(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLTRADE_PROGRESS_EVERY_S", "1")  # plain status lines: stdout is not a terminal here
    url = _refusing_url()
    args = ["live", "--run", str(run_dir), "--url", url, "--wait", "--duration", "4", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"waiting for {url}: connection refused (attempt 1); retrying" in out
    assert "attempt 2" in out
    assert "0 decisions, 0 trades, fills 0" in out and "NOT CONNECTED" in out
    log = (tmp_path / "s" / "log.jsonl").read_text()
    assert '"health": "waiting"' in log
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["uptime"] < 0.05  # never connected: not up (it read 100 % before)
