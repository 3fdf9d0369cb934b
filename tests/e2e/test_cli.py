"""The command line end to end, in process: exit codes, messages, and what lands in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrade.cli import main
from rltrade.data.store import DatasetKey, Store
from rltrade.types import Kind, Timeframe
from tests.support.fake_binance import FakeBinance, make_klines
from tests.support.real_data import FILES, require_real


def small_config(tmp_path: Path, **extra: str) -> Path:
    store = tmp_path / "store"
    text = f"data:\n  store: {store}\n  synthetic:\n    history_days: 5\n    tick_days: 0.02\n"
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_help_lists_every_command_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("config", "data", "features", "check", "run"):
        assert group in out


def test_config_init_then_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rl.yaml"
    assert main(["config", "init", str(path)]) == 0
    assert "# Master seed" in path.read_text()
    assert main(["config", "init", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["config", "show", "-c", str(path)]) == 0


def test_bad_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  synthetic:\n    tick_days: 9\n    history_days: 3\n")
    assert main(["data", "info", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "data.synthetic" in err and "tick_days" in err


def test_run_synthesises_checks_resampling_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small_config(tmp_path)
    assert main(["run", "-c", str(cfg), "--no-train"]) == 0
    out = capsys.readouterr().out
    assert "resampling check" in out and "store coverage" in out
    store = Store(tmp_path / "store")
    assert DatasetKey("binance", "ETHUSDT", Kind.TRADES) in store.datasets()
    assert store.read(DatasetKey("binance", "BTCUSDT", Kind.BARS, Timeframe.D1)).height == 5
    # Running again appends nothing new: the store is idempotent.
    capsys.readouterr()
    assert main(["run", "-c", str(cfg), "--no-train"]) == 0
    assert "binance/ETHUSDT/bars/1m" in capsys.readouterr().out
    # The demo market ends at 05:00 UTC: five whole days of minutes (and daily bars) and the forming day's 5 h.
    assert store.read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1)).height == 5 * 1440 + 5 * 60
    assert (tmp_path / "store" / "truth" / "binance" / "truth.json").exists()


def test_resample_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small_config(tmp_path)
    assert main(["data", "synth", "-c", str(cfg)]) == 0
    store = Store(tmp_path / "store")
    key_1s = DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.S1)
    before = store.read(key_1s)
    assert main(["data", "resample", "-c", str(cfg), "--from", "trades", "--to", "1s"]) == 0
    assert store.read(key_1s).equals(before)  # rebuilt bars equal the stored ones: all duplicates
    assert main(["data", "resample", "-c", str(cfg), "--from", "1m", "--to", "1h"]) == 0
    capsys.readouterr()
    assert main(["data", "info", "-c", str(cfg), "--per-day"]) == 0
    out = capsys.readouterr().out
    assert "binance/ETHUSDT/bars/1h" in out


def test_import_real_file_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = require_real()
    store = tmp_path / "store"
    path = real / FILES[("eth", Timeframe.D1)]
    assert main(["data", "import", str(path), "--store", str(store)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert Store(store).read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.D1)).height == 2099
    bad = tmp_path / "ETHUSDT-1m-2024-08-01.csv"
    bad.write_text("1722470400000,1,2,0.5,1.5,10\n1722470460000,1,0.5,2,1.5,10\n")
    assert main(["data", "import", str(bad), "--store", str(store), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err


def test_fetch_resumes_from_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0_ms = 1_723_075_200_000
    rows = make_klines("1m", t0_ms, 300, seed=1, quiet_every=0)
    store = tmp_path / "store"
    with FakeBinance(now_ms=t0_ms + 400 * 60_000, klines={("ETHUSDT", "1m"): rows}) as fake:
        urls = [f"--api-url={k}={v}" for k, v in fake.api_urls().items()]
        args = ["data", "fetch", "--symbol", "ETH/USDT", "--timeframe", "1m", "--store", str(store)]
        args += ["--start", "2024-08-08", "--end", "2024-08-08T02:00"]
        assert main([*args, *urls]) == 0
        first = len(fake.requests_to("/api/v3/klines"))
        assert main([*args[:-2], "--end", "2024-08-08T05:00", *urls]) == 0
        second = fake.requests_to("/api/v3/klines")[first:]
    got = Store(store).read(DatasetKey("binance", "ETHUSDT", Kind.BARS, Timeframe.M1))
    assert got.height == 300
    assert got["open_us"].is_sorted() and got["open_us"].n_unique() == 300
    # The second run started where the store ended (02:00), not at the start date.
    assert int(second[0].params["startTime"]) == t0_ms + 120 * 60_000
    capsys.readouterr()


def test_features_layout_and_lookahead_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small_config(tmp_path)
    assert main(["features", "layout"]) == 0
    assert "15,588 market" in capsys.readouterr().out
    assert main(["features", "layout", "--layout", "nope"]) == 2
    capsys.readouterr()
    assert main(["check", "lookahead", "-c", str(cfg), "--layout", "demo", "-n", "2", "--trades", "1"]) == 0
    out = capsys.readouterr().out
    assert "zero differences" in out and "seeded untrained CNNs" in out and "refitted on" in out


def test_the_lookahead_check_at_its_defaults_catches_a_bar_shown_1us_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The planted leak (a hidden, tests-only option) must fail the check as the user runs it."""
    cfg = small_config(tmp_path)
    assert main(["check", "lookahead", "-c", str(cfg), "--layout", "demo", "--plant-leak", "eth_1h"]) == 4
    out = capsys.readouterr().out
    assert "look-ahead leak in: state/eth_1h" in out
    assert main(["check", "lookahead", "-c", str(cfg), "--plant-leak", "regime"]) == 2
    assert "must name a bar block" in capsys.readouterr().err


def _run_with_cnns(tmp_path: Path) -> Path:
    """A run folder as training leaves it for the check: config, feature stats, two CNN folds per timeframe."""
    import json

    from rltrade.config import load_config
    from rltrade.data.market import load_market
    from rltrade.data.splits import TimeRange
    from rltrade.features.layout import build_layout
    from rltrade.features.market_features import fit_feature_stats
    from rltrade.models.blocks import untrained_cnns
    from rltrade.models.io import save_cnn
    from rltrade.training.bundle import create_bundle

    cfg = load_config(small_config(tmp_path, features="{layout: {name: demo}}", cnn="{window: 16}"))
    frames = load_market(cfg.data)
    start, end = frames.tick_span_us()  # type: ignore[misc]
    mid = (start + end) // 2
    train, test = TimeRange(start, mid), TimeRange(mid, end)
    stats = fit_feature_stats(frames, train)
    run = tmp_path / "run"
    create_bundle(
        run,
        cfg,
        build_layout(cfg.features.layout),
        stats,
        frames,
        splits={"train": train, "test": test},
        fitted=[train],
    )
    entries: dict[str, dict[str, list[dict[str, str]]]] = {}
    for k, predict in enumerate((TimeRange(start - 3 * 86_400_000_000, mid), TimeRange(mid, end + 1))):
        for tf, (model, _) in untrained_cnns(cfg.cnn, seed=k).items():
            name = f"cnn_{tf.value}_fold{k}.pt"
            model.extra["predict"] = predict.to_dict()
            save_cnn(model, run / "cnn" / name)
            entries.setdefault(tf.value, {"folds": []})["folds"].append({"file": name})
    (run / "cnn" / "metrics.json").write_text(json.dumps({"timeframes": entries}))
    return run


def test_the_lookahead_check_of_a_run_uses_its_cnns_and_fitted_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_with_cnns(tmp_path)
    assert main(["check", "lookahead", "--run", str(run), "-n", "2", "--trades", "1"]) == 0
    out = capsys.readouterr().out
    assert "the run's fold models (1s, 1m, 1h, 1d)" in out and "zero differences" in out
    assert main(["check", "lookahead", "--run", str(tmp_path)]) == 3  # not a run folder
    capsys.readouterr()


def test_unknown_timeframe_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = small_config(tmp_path)
    assert main(["data", "resample", "-c", str(cfg), "--from", "1m", "--to", "5m"]) == 2
    assert "unknown timeframe '5m'" in capsys.readouterr().err
