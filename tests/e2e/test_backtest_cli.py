"""`rltrade backtest` and evaluate_bundle on tiny trained runs: intervals, the basic-layout agent, regimes, refusals."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest

from rltrade.cli import main
from rltrade.data.splits import SplitError, TimeRange
from rltrade.training.bundle import BundleError, open_bundle
from rltrade.training.evaluate import EvaluationPeriodError, evaluate_bundle, evaluate_run
from rltrade.training.loop import train
from rltrade.training.scorecard import score_run
from tests.support.tiny_config import tiny

SMALL = {
    "cnn": {"enabled": False},  # the CNN stage has its own tests; here it would only cost time
    "agent": {"learning_starts": 32, "batch_size": 16, "buffer_size": 512, "hidden": [64, 32]},
    "train": {"total_steps": 48, "n_envs": 2, "eval_every": 24, "checkpoint_every": 1_000},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    train(tiny(**SMALL), root / "demo", log=lambda _: None)
    train(tiny(**SMALL, features={"layout": {"name": "basic"}}), root / "basic", log=lambda _: None)
    return root / "demo", root / "basic"


def _iso(t_us: int) -> str:
    return dt.datetime.fromtimestamp(t_us / 1e6, dt.UTC).isoformat(timespec="seconds")


def test_evaluation_with_intervals_basic_agent_and_regimes(runs: tuple[Path, Path]) -> None:
    demo, basic = runs
    ev = evaluate_bundle(demo, basic_run=basic, n_resamples=200)
    m = ev.metrics
    assert {"agent", "agent_basic", "flat", "buy_and_hold", "momentum", "random_0", "random_2", "oracle"} <= set(m)
    assert "expected_move_oracle" in m  # synthetic market with a planted signal
    assert "supervised" in m  # the LightGBM baseline on the basic layout's state, with the same fills and costs
    sup = json.loads((demo / "eval" / "supervised.json").read_text())
    assert sup["threshold"] in sup["validation_log_equity"] or str(sup["threshold"]) in sup["validation_log_equity"]
    assert sup["train_rows"] > 0 and sup["horizon_steps"] >= 1
    bound = math.log1p(m["oracle"]["total_return"])  # perfect foresight: no agent or baseline ends above it
    assert all(math.log1p(row["total_return"]) <= bound * (1 + 1e-9) for row in m.values())
    assert len({row["n_steps"] for row in m.values()}) == 1  # same period for every policy
    for row in m.values():
        assert row["sharpe_ci_low"] <= row["sharpe_ci_high"] and row["sharpe_ci_level"] == 0.95
    assert m["flat"]["sharpe_ci_low"] == m["flat"]["sharpe_ci_high"] == 0.0
    baselines = {k: v["sharpe"] for k, v in m.items() if k not in ("agent", "oracle", "expected_move_oracle")}
    c = ev.comparison
    assert c["baseline"] == max(baselines, key=lambda k: baselines[k])
    assert c["sharpe_diff"] == pytest.approx(m["agent"]["sharpe"] - m[c["baseline"]]["sharpe"])
    assert c["ci_low"] <= c["ci_high"]

    saved = json.loads((demo / "eval" / "metrics.json").read_text())
    assert saved["diff_vs_best_baseline"] == c and saved["metrics"]["agent_basic"] == m["agent_basic"]
    rows = json.loads((demo / "eval" / "regimes.json").read_text())
    assert rows == ev.regimes
    assert {r["source"] for r in rows} == {"true", "classifier"}  # synthetic market: both labels
    for source in ("true", "classifier"):
        for policy in m:
            mine = [r for r in rows if r["source"] == source and r["policy"] == policy]
            assert {"TREND_UP", "TREND_DOWN", "RANGE", "VOLATILE"} <= {r["regime"] for r in mine}
            assert sum(r["n_steps"] for r in mine) == m[policy]["n_steps"]
    # evaluate_run keeps returning the metrics table (what `rltrade run` prints).
    assert set(evaluate_run(demo, n_resamples=100, random_seeds=1)) >= {"agent", "flat", "random_0"}


def test_a_user_period_inside_the_test_range_and_its_refusals(runs: tuple[Path, Path], tmp_path: Path) -> None:
    demo, basic = runs
    bundle = open_bundle(demo)
    test = bundle.split("test")
    half = TimeRange(test.start_us, test.start_us + (test.duration_us // 2) // 1_000_000 * 1_000_000)
    ev = evaluate_bundle(demo, period=half, n_resamples=100, random_seeds=1)
    assert ev.period == half
    assert 0 < ev.metrics["agent"]["n_steps"] <= half.duration_us // 1_000_000 < test.duration_us // 1_000_000
    train_range = bundle.split("train")
    with pytest.raises(SplitError, match="overlaps the fitted range"):
        evaluate_bundle(demo, period=train_range)
    after = TimeRange(test.end_us + 86_400_000_000, test.end_us + 2 * 86_400_000_000)
    with pytest.raises(EvaluationPeriodError, match="not inside the data"):
        evaluate_bundle(demo, period=after)
    with pytest.raises(BundleError, match="'basic' layout"):
        evaluate_bundle(demo, basic_run=demo)
    with pytest.raises(BundleError, match="not a run folder"):
        evaluate_bundle(demo, basic_run=basic.parent)
    # A run that recorded CNN models must still hold them: evaluation never refits them.
    moved = tmp_path / "moved"
    shutil.copytree(demo, moved)
    open_bundle(moved).record("cnn", {"timeframes": ["1m"]})
    with pytest.raises(BundleError, match="does not hold its CNN models"):
        evaluate_bundle(moved)


def test_cli_prints_intervals_and_regime_tables(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    demo, basic = runs
    assert main(["backtest", "--run", str(demo), "--basic-run", str(basic), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "sharpe 95% CI" in out and "agent_basic" in out and "supervised" in out
    assert "agent − best baseline (" in out and "paired stationary block bootstrap" in out
    assert "per regime: true regimes" in out and "per regime: regimes labelled by the rule-based classifier" in out
    assert "annualised as sqrt(31557600 steps/year" in out
    assert "selected: " in out  # the run's do-no-harm selection
    assert "costs: taker fee 0.0100%, half spread 0.5 bps" in " ".join(out.split())  # every table states its costs


def test_cli_fee_flag_reprices_every_policy(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    demo, _ = runs
    before = json.loads((demo / "eval" / "metrics.json").read_text())
    assert main(["backtest", "--run", str(demo), "--fee", "binance-spot-bnb", "--resamples", "100"]) == 0
    assert "costs: taker fee 0.0750% (binance-spot-bnb)" in " ".join(capsys.readouterr().out.split())
    after = json.loads((demo / "eval" / "metrics.json").read_text())
    assert after["costs"]["env"]["taker_fee"] == 0.00075 and after["costs"]["env"]["fee_tier"] == "binance-spot-bnb"
    trades = before["metrics"]["buy_and_hold"]["n_trades"]
    assert before["costs"]["env"]["taker_fee"] == 0.0001  # the run's own fee (tiny config)
    assert trades > 0 and after["metrics"]["buy_and_hold"]["fees_paid"] > before["metrics"]["buy_and_hold"]["fees_paid"]
    assert main(["backtest", "--run", str(demo), "--fee", "binance-usdm-maker"]) == 2
    assert "limit-order fill model" in capsys.readouterr().err


def test_cli_period_errors_exit_2(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    demo, _ = runs
    train_range = open_bundle(demo).split("train")
    overlap = f"{_iso(train_range.start_us)}..{_iso(train_range.end_us)}"
    assert main(["backtest", "--run", str(demo), "--period", overlap]) == 2
    assert "overlaps the fitted range" in capsys.readouterr().err
    assert main(["backtest", "--run", str(demo), "--period", "2020-01-01..2020-01-02"]) == 2
    assert "not inside the data" in capsys.readouterr().err
    assert main(["backtest", "--run", str(demo), "--period", "2026-01-01"]) == 2
    assert "START..END" in capsys.readouterr().err
    assert main(["backtest", "--run", str(demo), "--period", "2026-01-02..2026-01-01"]) == 2
    assert main(["backtest", "--run", str(demo), "--period", "yesterday..today"]) == 2
    assert "not a date/time" in capsys.readouterr().err


def test_scorecard_from_the_run_folder(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo, basic = runs
    run = tmp_path / "run"
    shutil.copytree(demo, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    # No evaluation saved: the scorecard backtests the best checkpoint first and says so.
    card = score_run(run, basic_run=basic)
    assert "run now" in card.evaluation and (run / "eval" / "feature_coverage.parquet").is_file()
    saved = json.loads((run / "scorecard.json").read_text())
    names = [m["name"] for m in saved["metrics"]]
    assert names == ["coverage", "convergence", "accuracy", "regimes", "uptime"]
    assert saved["layout"] == "demo" and saved["market"] == "synthetic"
    by = {m.name: m for m in card.metrics}
    # The CNN stage is off: its blocks stay masked, so coverage cannot reach 95 %.
    assert by["coverage"].status == "FAIL"
    cnn_blocks = {b["block"]: b for b in by["coverage"].details["blocks"]}
    assert cnn_blocks["cnn_predictions"]["masked"] == cnn_blocks["cnn_predictions"]["features"]
    target = by["convergence"].details["target"]
    assert target == pytest.approx(
        0.5
        * json.loads((run / "eval" / "metrics.json").read_text())["targets"]["validation_expected_move_oracle_return"]
    )
    assert by["convergence"].status == "NOT MEASURED" and "sb3_dqn" in by["convergence"].figure
    assert "basic" in by["convergence"].details["learners"]
    assert by["uptime"].status == "NOT MEASURED"
    assert by["accuracy"].status in ("PASS", "FAIL") and by["regimes"].status in ("PASS", "FAIL")
    # With the comparison learners recorded, convergence gets a verdict.
    never = {"wall_s": None, "env_steps": None, "budget_env_steps": 96}
    (run / "convergence.json").write_text(json.dumps({"learners": {"basic": never, "sb3_dqn": never}}))
    again = {m.name: m for m in score_run(run).metrics}
    assert "saved evaluation" in score_run(run).evaluation
    reached = again["convergence"].details["agent"]["wall_s"] is not None
    assert again["convergence"].status == ("PASS" if reached else "FAIL")
    assert main(["scorecard", str(run)]) == 0
    out = capsys.readouterr().out
    assert "scorecard · demo layout" in out and "coverage" in out and "NOT MEASURED" in out
    assert "[bold" not in out and "[/]" not in out  # styles are rendered, never printed as markup
    assert main(["scorecard", str(tmp_path)]) == 3  # not a run folder
