"""Plain progress lines when stdout is not a terminal: rate, ETA, elapsed and the task's fields, every N s."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import TextColumn

from rltrade.cli.app import PlainLinesProgress


def _progress(every_s: float, terminal: bool) -> tuple[PlainLinesProgress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=200)
    return PlainLinesProgress(TextColumn("{task.description}"), console=console, every_s=every_s), out


def test_a_pipe_gets_a_plain_line_per_update_when_due_and_at_the_end() -> None:
    bar, out = _progress(every_s=0.0, terminal=False)
    with bar:
        task = bar.add_task("training", total=100, live="")
        bar.update(task, completed=40, live="last validation +1.2000%")
        bar.update(task, completed=100, live="last validation +1.5000%")
        bar.update(task, completed=100)  # after completion: no further line
    lines = [line for line in out.getvalue().splitlines() if line.startswith("training:")]
    assert len(lines) == 2, out.getvalue()
    assert lines[0].startswith("training: 40/100 (40.0 %)") and "elapsed 0:00:00" in lines[0]
    assert lines[0].endswith("last validation +1.2000%")
    assert lines[1].startswith("training: 100/100 (100.0 %)") and lines[1].endswith("+1.5000%")


def test_lines_are_spaced_by_every_s() -> None:
    bar, out = _progress(every_s=3600.0, terminal=False)
    with bar:
        task = bar.add_task("import", total=10)
        for k in range(1, 10):
            bar.update(task, completed=k)
    assert [line for line in out.getvalue().splitlines() if line.startswith("import:")] == []


def test_a_terminal_gets_the_bar_only() -> None:
    bar, out = _progress(every_s=0.0, terminal=True)
    with bar:
        task = bar.add_task("training", total=10)
        bar.update(task, completed=5)
    assert "training: 5/10" not in out.getvalue()
