"""Checkpoint and restore of a live session: one JSON file, written atomically.

The file holds :meth:`rltrade.live.engine.LiveEngine.state_dict` (decision clock, last processed trade
ids, the broker's orders and fills, equity, the account book, stale roles, counters) with a format tag,
the run folder it belongs to and the time it was written. Numbers are written with ``repr`` precision
(JSON floats round-trip exactly), so a restart resumes bit for bit. The feature builder is not saved: a
restart warm-starts it from the store at ``resume_us`` (the last decided clock time) and the feed takes
the trades after the saved ids again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Final

from rltrade.data.atomic import atomic_write

STATE_FORMAT: Final = "rltrade.live.state"
STATE_VERSION: Final = 1


class LiveStateError(RuntimeError):
    """A live state file that cannot be resumed from (foreign, torn, another run's)."""


def save_state(path: Path, engine_state: dict[str, Any], *, run_dir: Path) -> None:
    """Write ``engine_state`` (from ``LiveEngine.state_dict``) to ``path`` atomically."""
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "run_dir": str(Path(run_dir).resolve()),
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "engine": engine_state,
    }
    text = json.dumps(payload, sort_keys=True).encode()
    atomic_write(path, lambda fh: fh.write(text))


def load_state(path: Path, *, run_dir: Path) -> dict[str, Any] | None:
    """Load the engine state saved at ``path`` for ``run_dir`` (None when there is none); refuses a foreign file."""
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LiveStateError(f"{path} is not a readable live state ({exc}); move it away to start afresh") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise LiveStateError(f"{path} is not an rltrade live state file; move it away or pick another --out")
    if payload.get("version") != STATE_VERSION:
        raise LiveStateError(
            f"{path} has live state version {payload.get('version')}; this rltrade reads {STATE_VERSION}"
        )
    if payload.get("run_dir") != str(Path(run_dir).resolve()):
        raise LiveStateError(
            f"{path} belongs to the run {payload.get('run_dir')}, not {Path(run_dir).resolve()}; "
            "use another --out folder for this run"
        )
    return dict(payload["engine"])
