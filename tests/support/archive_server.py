"""A local stand-in for Binance's public data archives (``data.binance.vision``), on 127.0.0.1.

:class:`ArchiveServer` serves files from memory at their archive paths (``data/spot/daily/klines/...``) over
real HTTP (a threaded ``http.server``), each zip with its ``.CHECKSUM`` (``<sha256>  <name>``, as Binance
writes it) unless told otherwise. Anything not added answers 404, like an archive not published yet.

Faults are scripted per path with :meth:`ArchiveServer.inject` and consumed in order: an HTTP status
(503 then success), or ``SHORT`` (a body cut in half under the full ``Content-Length``: a dropped
connection). Every request is logged in :attr:`ArchiveServer.requests`.

Builders: :func:`kline_csv` writes Binance's 12 kline columns (with or without a header, in ms or µs),
:func:`trades_csv` the 7 trades columns, :func:`zip_one` a zip of one CSV as Binance packs it, and
:func:`real_kline_days` cuts a real 1m file of ``../shared/data/real`` into days of 12-column rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import threading
import zipfile
from collections import deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

SHORT = "short"
DAY_MS = 86_400_000
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
)
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_one(member: str, text: str) -> bytes:
    """A zip holding one CSV file, as Binance packs its archives."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return buf.getvalue()


def kline_rows(start_ms: int, n: int, step_ms: int, *, seed: int, base: float = 2000.0) -> list[list[Any]]:
    """``n`` 12-field kline rows from ``start_ms`` (a seeded walk); times in ms."""
    rng = np.random.default_rng(seed)
    close = np.round(base * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    rows: list[list[Any]] = []
    prev = float(close[0])
    for i in range(n):
        o, c = prev, float(close[i])
        h, lo = max(o, c) + 0.5, min(o, c) - 0.5
        vol = round(float(rng.gamma(2.0, 3.0)), 4)
        t = start_ms + i * step_ms
        rows.append(
            [t, o, h, lo, c, vol, t + step_ms - 1, round(vol * c, 4), int(rng.integers(1, 50)), vol / 2, 0.0, 0]
        )
        prev = c
    return rows


def kline_csv(rows: Sequence[Sequence[Any]], *, header: bool = False, micros: bool = False) -> str:
    """Binance's 12 kline columns; ``micros`` writes open/close times in µs (spot from 2025)."""
    out = io.StringIO()
    if header:
        out.write(KLINE_HEADER + "\n")
    for r in rows:
        t0, t1 = (int(r[0]) * 1000, int(r[6]) * 1000 + 999) if micros else (int(r[0]), int(r[6]))
        fields = [t0, *r[1:6], t1, *r[7:]]
        out.write(",".join(str(f) for f in fields) + "\n")
    return out.getvalue()


def trades_csv(rows: Sequence[Sequence[Any]], *, header: bool = False) -> str:
    """Binance's 7 trades columns: id, price, qty, quote_qty, time, is_buyer_maker, is_best_match."""
    out = io.StringIO()
    if header:
        out.write(TRADES_HEADER + "\n")
    for r in rows:
        out.write(",".join(str(f) for f in r) + "\n")
    return out.getvalue()


def real_kline_days(path: Path) -> dict[dt.date, list[list[Any]]]:
    """A real 6-column 1m file → 12-column rows per UTC day (extras derived: quote volume, counts)."""
    days: dict[dt.date, list[list[Any]]] = {}
    with gzip.open(path, "rt") as fh:
        for row in csv.DictReader(fh):
            t = int(row["open_time"])
            vol = float(row["volume"])
            close = row["close"]
            extras = [t + 59_999, f"{vol * float(close):.8f}", 1 if vol else 0, row["volume"], "0", "0"]
            r = [t, row["open"], row["high"], row["low"], close, row["volume"], *extras]
            day = dt.datetime.fromtimestamp(t / 1000, tz=dt.UTC).date()
            days.setdefault(day, []).append(r)
    return days


class ArchiveServer:
    """Serves archives from memory over HTTP on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._faults: dict[str, deque[int | str]] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def add(self, url_path: str, data: bytes, *, checksum: str | None = None, checksum_name: str | None = None) -> None:
        """Serve ``data`` at ``url_path`` and its checksum (the true SHA-256 unless ``checksum`` is given)."""
        name = checksum_name or url_path.rsplit("/", 1)[-1]
        self._files[url_path] = data
        self._files[url_path + ".CHECKSUM"] = f"{checksum or sha256(data)}  {name}\n".encode()

    def add_csv(self, url_path: str, text: str, **kwargs: Any) -> bytes:
        """Zip ``text`` as ``<name>.csv`` and serve it at ``url_path``; returns the zip."""
        name = url_path.rsplit("/", 1)[-1]
        data = zip_one(name.removesuffix(".zip") + ".csv", text)
        self.add(url_path, data, **kwargs)
        return data

    def inject(self, url_path: str, *faults: int | str) -> None:
        with self._lock:
            self._faults.setdefault(url_path, deque()).extend(faults)

    def hits(self, url_path: str) -> int:
        return sum(1 for r in self.requests if r == "/" + url_path)

    def __enter__(self) -> ArchiveServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(path)
                    queue = server._faults.get(path.lstrip("/"))
                    fault = queue.popleft() if queue else None
                body = server._files.get(path.lstrip("/"))
                if isinstance(fault, int):
                    self.send_response(fault)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if fault == SHORT else body)
                if fault == SHORT:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"
