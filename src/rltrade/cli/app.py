"""The typer application and its sub-command groups."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from rltrade.cli.errors import UsageError
from rltrade.config import Config, load_config, render_commented_yaml

app = typer.Typer(
    name="rltrade",
    help="Causal, reproducible RL trading for ETH/USDT with BTC/USDT as reference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# A pipe or a CI log is not a terminal: give tables room instead of rich's 80-column default.
# Markup is off: messages carry paths, ranges like "[low, high]" and user input, which rich would eat as
# tags. Styled output passes rich Text (or markup=True on a literal).
console = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty(), markup=False)
# Errors and log records go to stderr, never wrapped: a path or a hint must stay copy-pasteable.
err_console = Console(stderr=True, soft_wrap=True)


LOG_HANDLER_NAME = "rltrade-cli"


class _StderrLines(logging.Handler):
    """One line per record on ``sys.stderr`` as it is at each record (like rich's console, and test captures)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the formatted record and a newline."""
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def configure_logging(level: int, *, terminal: bool | None = None) -> None:
    """Send the ``rltrade`` loggers' records at ``level`` and above to stderr.

    The library logs with module loggers (``logging.getLogger(__name__)``) and configures nothing; this is
    the one place that does. On a terminal (``terminal``, default: whether stderr is one) records go
    through rich's ``RichHandler``; into a pipe or a file, one plain line per record, so that a long
    message (a path, a hint) is neither wrapped nor padded. Calling it again replaces the handler it
    installed, so the level follows the latest call. Records still propagate to the root logger (where
    pytest's ``caplog`` listens).
    """
    package = logging.getLogger("rltrade")
    for old in [h for h in package.handlers if h.get_name() == LOG_HANDLER_NAME]:
        package.removeHandler(old)
    if terminal if terminal is not None else sys.stderr.isatty():
        handler: logging.Handler = RichHandler(console=err_console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _StderrLines()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.set_name(LOG_HANDLER_NAME)
    handler.setLevel(level)
    package.addHandler(handler)
    # Only a lower level than the default (WARNING, the root's) is set on the logger itself.
    package.setLevel(level if level < logging.WARNING else logging.NOTSET)


@app.callback()
def global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log progress details (INFO records) to stderr.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only (no warnings).")] = False,
) -> None:
    """Causal, reproducible RL trading for ETH/USDT with BTC/USDT as reference."""
    if verbose and quiet:
        raise UsageError("--verbose and --quiet exclude each other; pass at most one")
    configure_logging(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (defaults are used when omitted).")
]


def load(config: Path | None) -> Config:
    """Load the config from ``config``, or return the defaults."""
    return load_config(config) if config is not None else Config()


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("rltrade.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented default config file."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    path.write_text(render_commented_yaml() + "\n")
    console.print(f"wrote {path}")


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Validate a config and print it with every default filled in."""
    console.print(render_commented_yaml(load(config)), markup=False, highlight=False)


PLAIN_PROGRESS_EVERY_S = 30.0
"""Seconds between plain progress lines when stdout is not a terminal (``RLTRADE_PROGRESS_EVERY_S`` overrides)."""


class PlainLinesProgress(Progress):
    """A rich progress bar that also prints plain lines when its console is not a terminal.

    Into a pipe, a log file or CI, it prints one line per task every ``every_s`` seconds and when a task
    completes. A line reads ``training: 1,200/15,000 (8.0 %) · 41.3/s · ETA 0:05:34 · elapsed 0:00:29 · <fields>``,
    where the fields are the task's extra fields (e.g. the last validation the training reports). On a
    terminal nothing changes: the bar redraws in place.
    """

    def __init__(self, *columns: ProgressColumn | str, every_s: float | None = None, **kwargs: Any) -> None:
        """Make the bar; ``every_s`` defaults to ``RLTRADE_PROGRESS_EVERY_S`` or :data:`PLAIN_PROGRESS_EVERY_S`."""
        super().__init__(*columns, **kwargs)
        env = os.environ.get("RLTRADE_PROGRESS_EVERY_S")
        self.every_s = every_s if every_s is not None else float(env) if env else PLAIN_PROGRESS_EVERY_S
        self._plain = not self.console.is_terminal
        self._last_line: dict[TaskID, float] = {}
        self._done: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        """Update the task as rich does; print a plain line when due."""
        super().update(task_id, **kwargs)
        self._maybe_line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance the task as rich does; print a plain line when due."""
        super().advance(task_id, advance)
        self._maybe_line(task_id)

    def _maybe_line(self, task_id: TaskID) -> None:
        if not self._plain or task_id in self._done:
            return
        with self._lock:
            task = self._tasks[task_id]
        now = time.monotonic()
        last = self._last_line.setdefault(task_id, now)
        finished = task.total is not None and task.completed >= task.total
        if not finished and now - last < self.every_s:
            return
        self._last_line[task_id] = now
        if finished:
            self._done.add(task_id)
        self.console.print(plain_progress_line(task), markup=False, highlight=False, soft_wrap=True)


def plain_progress_line(task: Task) -> str:
    """Say a rich task in plain text: ``description: done/total (pct) · rate/s · ETA · elapsed · fields``."""
    parts = [f"{task.description}: {task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "")]
    if task.total:
        parts[0] += f" ({100 * task.completed / task.total:.1f} %)"
    speed = task.finished_speed or task.speed
    if speed:
        parts.append(f"{speed:,.1f}/s")
    remaining = task.time_remaining
    if remaining is not None and not task.finished:
        parts.append(f"ETA {dt.timedelta(seconds=round(remaining))}")
    elapsed = task.finished_time if task.finished else task.elapsed
    if elapsed is not None:
        parts.append(f"elapsed {dt.timedelta(seconds=round(elapsed))}")
    parts += [str(v) for v in task.fields.values() if str(v)]
    return " · ".join(parts)


def progress_bar(*extra: ProgressColumn, transient: bool = True, every_s: float | None = None) -> Progress:
    """Make the progress bar every long command shows: description, bar, done/total, elapsed, then ``extra``.

    When stdout is not a terminal it also prints a plain progress line every ``every_s`` seconds
    (:class:`PlainLinesProgress`): a long run piped into a log is never silent until its end.
    """
    return PlainLinesProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *extra,
        console=console,
        transient=transient,
        every_s=every_s,
    )
