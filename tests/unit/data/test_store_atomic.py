"""All-or-nothing store writes: a failure, a crash or a ``kill -9`` at any step leaves the store as it was.

An import here touches two datasets and five partitions (one rewritten, four new). A fault hook stops it at
every step the store reports; "stops" means either an exception (the writer rolls back) or a crash (nothing
after the fault runs: rollback and cleanup are disabled). Before the commit, the store must read exactly as
before, and, once the next writer has cleaned up, be byte-identical to before; after the commit it must be
byte-identical to a store that imported without a fault.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.data.store import DatasetKey, Store, Transaction
from rltrade.types import US_PER_DAY, US_PER_MINUTE, Kind, Timeframe

DAY0 = 19_700 * US_PER_DAY  # 2023-12-09 00:00 UTC
M1 = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)
TRADES = DatasetKey("binance", "BTCUSDT", Kind.TRADES)


class Stop(Exception):
    """Raised by the fault hook."""


def minute_bars(start_us: int, n: int) -> pl.DataFrame:
    open_us = start_us + np.arange(n, dtype=np.int64) * US_PER_MINUTE
    close = 100.0 + (open_us // US_PER_MINUTE) % 7  # a function of the time: overlaps agree
    return pl.DataFrame(
        {
            "open_us": open_us,
            "open": close,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 2.0),
        }
    )


def trades(start_us: int, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_us": start_us + np.arange(n, dtype=np.int64) * 60_000_000,
            "trade_id": np.arange(n, dtype=np.int64),
            "price": np.full(n, 10.0),
            "qty": np.full(n, 0.5),
            "side": np.ones(n, dtype=np.int8),
        }
    )


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``root``, by relative path."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def seed(root: Path) -> None:
    Store(root).append(M1, minute_bars(DAY0, 1440 + 720))  # a day and a half


def do_import(store: Store) -> None:
    with store.transaction() as tx:
        tx.append(M1, minute_bars(DAY0 + 1440 * US_PER_MINUTE, 3 * 1440))  # day 2 rewritten, days 3-4 new
        tx.append(TRADES, trades(DAY0, 2 * 1440))  # a new dataset, two days


def test_failure_or_crash_at_every_step_leaves_the_store_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "base"
    seed(base)
    before = snapshot(base)
    before_m1 = Store(base).read(M1)

    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    steps: list[str] = []
    do_import(Store(ref, fault=steps.append))
    after = snapshot(ref)
    assert steps[-2:] == ["commit", "committed"]
    assert sum(s.startswith("write ") for s in steps) == 5 and sum(s.startswith("manifest ") for s in steps) == 2

    for crash in (False, True):
        for i, step in enumerate(steps):
            root = tmp_path / f"{'crash' if crash else 'fail'}{i}"
            shutil.copytree(base, root)

            def fault(at: str, step: str = step) -> None:
                if at == step:
                    raise Stop(at)

            with monkeypatch.context() as m:
                if crash:  # nothing after the fault runs, as after a kill
                    m.setattr(Transaction, "rollback", lambda self: None)
                    m.setattr(Store, "_cleanup", lambda self, root: 0)
                with pytest.raises(Stop):
                    do_import(Store(root, fault=fault))
            committed = step == "committed"
            if not committed:
                assert Store(root).read(M1).equals(before_m1), f"reader saw an uncommitted write at {step}"
                assert Store(root).datasets() == [M1]
            if not crash and not committed:
                assert snapshot(root) == before, f"rollback left traces at {step}"
            Store(root).recover()
            assert snapshot(root) == (after if committed else before), f"{'crash' if crash else 'failure'} at {step}"


def test_stale_temporary_and_orphan_files_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    seed(tmp_path)
    folder = M1.folder(tmp_path)
    junk = [
        folder / ".2023-12-09.v1.parquet.x1y2.tmp",
        folder / "2023-12-10.v9.parquet",
        tmp_path / ".manifest.json.a.tmp",
    ]
    for path in junk:
        path.write_bytes(b"half-written")
    assert Store(tmp_path).read(M1).height == 1440 + 720  # readers ignore what no manifest names
    Store(tmp_path).append(M1, minute_bars(DAY0, 10))  # all duplicates: still a writer, still cleans
    assert not any(p.exists() for p in junk)


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{src!r}, {tests!r}]
    from test_store_atomic import Store, do_import

    def fault(step):
        if step == {step!r}:
            Path({marker!r}).write_text("here")
            time.sleep(120)

    do_import(Store(Path({root!r}), fault=fault))
    """
)


@pytest.mark.parametrize("step", ["write binance/ETHUSDT/bars/1m/2023-12-11", "commit"])
def test_kill_9_during_an_import_leaves_the_store_as_before(tmp_path: Path, step: str) -> None:
    root, marker = tmp_path / "store", tmp_path / "marker"
    seed(root)
    before, before_m1 = snapshot(root), Store(root).read(M1)
    src = str(Path(__file__).resolve().parents[3] / "src")
    code = CHILD.format(src=src, tests=str(Path(__file__).parent), step=step, marker=str(marker), root=str(root))
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the importing process ended before reaching the step"
            assert time.monotonic() < deadline, "the importing process never reached the step"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert snapshot(root) != before  # the killed import left files behind ...
    assert Store(root).read(M1).equals(before_m1)
    assert Store(root).datasets() == [M1]  # ... that no reader sees
    Store(root).recover()
    assert snapshot(root) == before
