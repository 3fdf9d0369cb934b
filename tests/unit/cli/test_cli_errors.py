"""Exit codes and messages: the README table (2 bad input, 3 inconsistent store or run), the CLI's own
flag names, markup-safe text, a hint for a missing file, a refused --timeframe on a trades file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.agent.checkpoint import CheckpointError
from rltrade.cli import exit_code_for, main
from rltrade.cli.errors import cli_message
from rltrade.data.cleaning import FileFormatError
from rltrade.data.store import StoreConflictError
from rltrade.models.io import ModelFileError
from rltrade.training.bundle import BundleError


def test_tampered_cnn_file_and_tampered_checkpoint_exit_alike() -> None:
    assert exit_code_for(ModelFileError("run/cnn/1m.pt: not a readable CNN model file")) == 3
    assert exit_code_for(CheckpointError("run/checkpoints/last.pt: damaged")) == 3
    assert exit_code_for(BundleError("x is not a run folder")) == 3
    assert exit_code_for(StoreConflictError("close is 1.5 in the store and 1.7 in the new data")) == 2


def test_messages_use_the_command_line_flags() -> None:
    err = FileFormatError(
        "cannot tell the symbol from the file name", file="a.csv", hint="Pass symbol= (e.g. 'ETHUSDT')"
    )
    assert (
        cli_message(err) == "a.csv: cannot tell the symbol from the file name. Pass --symbol (e.g. --symbol ETHUSDT)."
    )
    err = FileFormatError("bad", file="a.csv", hint="Fix the file, or import with policy='repair' to drop such lines")
    assert "import without --strict to drop" in cli_message(err) and "policy=" not in cli_message(err)
    err = FileFormatError("the file name says ETHUSDT but symbol='BTCUSDT' was given", file="a.csv", hint="Rename")
    assert "but --symbol 'BTCUSDT' was given" in cli_message(err)


def test_missing_input_file_gets_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["data", "import", "nope.csv", "--store", str(tmp_path / "s")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"nope.csv: no such file or folder (looked in {tmp_path})" in err and "Errno" not in err


def test_brackets_in_messages_survive_the_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ETHUSDT-1m-2024-08-01.csv"
    bad.write_text("1722470400000,1,2,0.5,1.5,10\n1722470460000,1,0.5,2,1.5,10\n")
    assert main(["data", "import", str(bad), "--store", str(tmp_path / "s")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "open/close outside [low, high])" in out


def test_binary_file_is_named_not_dumped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = tmp_path / "ETHUSDT-1m-2024-08-01.csv"
    blob.write_bytes(bytes(range(256)) * 12)
    assert main(["data", "import", str(blob), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "binary or compressed file" in err
    assert len(err) < 1200, err


def test_timeframe_on_a_trades_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trades = tmp_path / "ETHUSDT-trades-2024-08-08.csv"
    trades.write_text("1,2683.81,0.05,134.19,1723161255307,True,True\n2,2683.82,0.05,134.19,1723161255308,False,True\n")
    store = tmp_path / "s"
    assert main(["data", "import", str(trades), "--store", str(store), "--timeframe", "1h"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "has no timeframe, but --timeframe '1h' was given" in err and "Drop --timeframe" in err
    assert not store.exists() or not any(store.rglob("*.parquet"))
    assert main(["data", "import", str(trades), "--store", str(store)]) == 0


def test_nan_fee_is_not_finite_not_out_of_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("env:\n  taker_fee: .nan\n")
    assert main(["config", "show", "-c", str(cfg)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "env.taker_fee: nan is not finite; give a number" in err and "0.01" not in err


def test_overlap_messages_show_iso_times() -> None:
    from rltrade.data.splits import SplitError, TimeRange, ensure_disjoint

    with pytest.raises(SplitError) as e:
        ensure_disjoint(
            TimeRange(1723161600000000, 1723161660000000),
            [TimeRange(1723161600000000, 1723165200000000)],
            what="backtest",
        )
    got = str(e.value)
    assert "[2024-08-09T00:00:00Z, 2024-08-09T00:01:00Z) overlaps the fitted range" in got
    assert "range [2024-08-09T00:00:00Z, 2024-08-09T01:00:00Z)" in got
    assert "1723161600000000" not in got


def test_train_refuses_an_existing_run_folder_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rltrade.training.pipeline as pipeline

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was prepared for a run folder that is refused")

    monkeypatch.setattr(pipeline, "prepare", no_work)
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    assert main(["train", "--run-dir", str(run), "--preset", "demo"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert f"{run} already holds a run; continue it with `rltrade train --resume {run}`" in err


def test_resume_refuses_options_it_would_ignore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(tmp_path), "--steps", "5", "--preset", "demo"]) == 2
    assert "drop --preset, --steps" in capsys.readouterr().err
