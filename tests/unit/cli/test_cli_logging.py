"""The CLI configures logging once: ``rltrade`` module loggers go to stderr through rich, at the chosen level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from rich.logging import RichHandler

from rltrade.cli import main
from rltrade.cli.app import LOG_HANDLER_NAME, configure_logging

LIB = logging.getLogger("rltrade.some.module")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    package = logging.getLogger("rltrade")
    before = (list(package.handlers), package.level)
    yield
    package.handlers[:] = before[0]
    package.setLevel(before[1])


def emit_each_level() -> None:
    LIB.debug("debug-record")
    LIB.info("info-record")
    LIB.warning("warning-record")
    LIB.error("error-record")


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ([], ["warning-record", "error-record"], ["debug-record", "info-record"]),
        (["--verbose"], ["info-record", "warning-record", "error-record"], ["debug-record"]),
        (["-q"], ["error-record"], ["debug-record", "info-record", "warning-record"]),
    ],
)
def test_level_options_choose_which_records_reach_stderr(
    flags: list[str], shown: list[str], hidden: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*flags, "config", "show"]) == 0
    capsys.readouterr()
    emit_each_level()
    out, err = capsys.readouterr()
    assert all(s in err for s in shown), err
    assert not any(h in err for h in hidden), err
    assert "record" not in out  # the console output (stdout) stays clean
    assert "rltrade.some.module" in err  # the record names its module


def test_running_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "config", "show"]) == 0
    assert main(["config", "show"]) == 0
    capsys.readouterr()
    LIB.warning("once")
    _, err = capsys.readouterr()
    assert err.count("once") == 1
    assert sum(h.get_name() == LOG_HANDLER_NAME for h in logging.getLogger("rltrade").handlers) == 1


def test_records_still_reach_caplog(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["-q", "config", "show"]) == 0
    with caplog.at_level(logging.INFO, logger="rltrade.some.module"):
        LIB.info("seen by caplog")
    assert [r.message for r in caplog.records] == ["seen by caplog"]


def test_verbose_and_quiet_together_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--verbose", "--quiet", "config", "show"]) == 2
    assert "--verbose and --quiet exclude each other" in capsys.readouterr().err


def test_on_a_terminal_records_go_through_rich(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.INFO, terminal=True)
    (handler,) = [h for h in logging.getLogger("rltrade").handlers if h.get_name() == LOG_HANDLER_NAME]
    assert isinstance(handler, RichHandler)
    emit_each_level()
    err = capsys.readouterr().err
    assert "info-record" in err and "WARNING" in err and "debug-record" not in err


def test_piped_records_are_one_unwrapped_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.WARNING, terminal=False)
    long = "/a/very/long/path/" * 20
    LIB.warning("cannot read %s", long)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(f"WARNING rltrade.some.module: cannot read {long}")
