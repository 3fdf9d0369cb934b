"""The typer application and its sub-command groups."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
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


def progress_bar(*extra: ProgressColumn, transient: bool = True) -> Progress:
    """Make the progress bar every long command shows: description, bar, done/total, elapsed, then ``extra``."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *extra,
        console=console,
        transient=transient,
    )
