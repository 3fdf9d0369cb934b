"""The ``rltrade`` command line: the one place that maps errors to exit codes.

Exit codes: 0 success · 1 unexpected internal error (a bug: the traceback is printed, please report
it) · 2 bad usage, bad config or bad input data (the message says what, where, and what to do) ·
3 a store or run folder is inconsistent with what was asked.
"""

from __future__ import annotations

import sys

from rich.text import Text

from rltrade.cli import cnn as _cnn  # noqa: F401  (registers `rltrade cnn`)
from rltrade.cli import data as _data  # noqa: F401  (registers `rltrade data`)
from rltrade.cli import features as _features  # noqa: F401  (registers `rltrade features`, `rltrade check`)
from rltrade.cli import live as _live  # noqa: F401  (registers `rltrade live`)
from rltrade.cli import report as _report  # noqa: F401  (registers `rltrade report`)
from rltrade.cli import results as _results  # noqa: F401  (registers `rltrade results`)
from rltrade.cli import run as _run  # noqa: F401  (registers `rltrade run`)
from rltrade.cli import scorecard as _scorecard  # noqa: F401  (registers `rltrade scorecard`)
from rltrade.cli import sweep as _sweep  # noqa: F401  (registers `rltrade sweep`)
from rltrade.cli import train as _train  # noqa: F401  (registers `rltrade train`)
from rltrade.cli import walkforward as _walkforward  # noqa: F401  (registers `rltrade walkforward`, `rltrade ablation`)
from rltrade.cli.app import app, err_console


def exit_code_for(exc: BaseException) -> int:
    """Exit code of an error escaping a command (see the module docstring)."""
    from rltrade.cli.errors import INCONSISTENT, USER_ERRORS

    if isinstance(exc, INCONSISTENT):
        return 3
    if isinstance(exc, USER_ERRORS):
        return 2
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; turn known errors into one clear message and an exit code."""
    try:
        app(args=argv, prog_name="rltrade")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except Exception as exc:
        code = exit_code_for(exc)
        if code == 1:
            err_console.print_exception(show_locals=False)
        from rltrade.cli.errors import cli_message

        err_console.print(Text.assemble(("error: ", "bold red"), cli_message(exc)), highlight=False)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
