"""The typer application and its sub-command groups."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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
console = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty())

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
