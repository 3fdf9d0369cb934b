"""Scorecard metrics on hand-made artefacts: coverage, accuracy, regimes, uptime (convergence: tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rltrade.training.scorecard import (
    FAIL,
    NOT_MEASURED,
    PASS,
    accuracy_score,
    convergence_score,
    coverage_score,
    first_reached,
    regimes_score,
    time_to_target,
    uptime_score,
    wall_ratio,
)


def coverage_table(blocks: dict[str, list[tuple[float, float, float]]]) -> pl.DataFrame:
    rows = [
        {"block": b, "feature": i, "unmasked_share": u, "mean": m, "std": s, "n_steps": 100}
        for b, feats in blocks.items()
        for i, (u, m, s) in enumerate(feats)
    ]
    return pl.DataFrame(rows)


def test_coverage_counts_masked_and_constant_features_per_block() -> None:
    moving = (1.0, 0.0, 0.5)
    table = coverage_table(
        {
            "eth_1s": [moving] * 96,
            # stuck at one value; stuck up to rounding (std 1e-3 of a 3,000 mean); a small genuine variation
            "eth_1d": [(1.0, 3.0, 0.0), (1.0, 3000.0, 1e-3), (1.0, 0.0, 1e-5)],
            "cnn_predictions": [(0.94, 0.0, 0.5)],  # unmasked on too few steps
        }
    )
    score = coverage_score(table)
    assert score.details["features"] == 100 and score.details["share"] == pytest.approx(0.97)
    assert score.status == PASS and "97.0% of 100" in score.figure
    blocks = {b["block"]: b for b in score.details["blocks"]}
    assert blocks["eth_1d"]["covered"] == 1 and blocks["eth_1d"]["constant"] == 2
    assert blocks["cnn_predictions"]["masked"] == 1 and blocks["cnn_predictions"]["covered"] == 0
    # 95 % exactly is not above 95 %.
    assert coverage_score(coverage_table({"a": [moving] * 95 + [(0.0, 0.0, 0.0)] * 5})).status == FAIL


def steps_frame(position: list[int], prices: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"position": [*position, 0], "fill_price": prices})


def test_accuracy_from_saved_steps_with_base_rate_time_in_market_and_cnns(tmp_path: Path) -> None:
    # Moves: up, up, down, flat, down, up; positions long, long, long, long, short, flat.
    prices = [100.0, 101.0, 102.0, 101.0, 101.0, 100.0, 101.0]
    steps = steps_frame([1, 1, 1, 1, -1, 0], prices)
    cnn = tmp_path / "cnn"
    cnn.mkdir()
    (cnn / "metrics.json").write_text(
        json.dumps(
            {
                "timeframes": {
                    "1m": {"pooled": {"model": {"direction_accuracy": 0.55, "n_directional": 40}}},
                    "1d": {"pooled": {"model": {"direction_accuracy": 0.0, "n_directional": 0}}},
                }
            }
        )
    )
    score = accuracy_score({}, steps, cnn, real=False)
    # Scored: steps 0, 1, 2, 4 (in the market, move ≠ 0): right on 0, 1, 4.
    assert score.details["direction_accuracy"] == pytest.approx(0.75) and score.details["direction_steps"] == 4
    assert score.details["base_rate_up"] == pytest.approx(3 / 5)
    assert score.details["time_in_market"] == pytest.approx(5 / 6)
    assert score.details["cnn_direction_accuracy"] == {"1m": {"direction_accuracy": 0.55, "n_directional": 40}}
    assert "CNNs 1m 55.0% (n=40)" in score.figure
    assert score.details["ci_low"] <= 0.75 <= score.details["ci_high"]
    assert score.status == PASS and score.alarm is None
    real = accuracy_score({}, steps, cnn, real=True)
    assert real.status == PASS and real.alarm is not None and "leak alarm" in real.alarm
    never = accuracy_score({}, steps_frame([0] * 6, prices), cnn, real=False)
    assert never.status == FAIL and "never in the market" in never.figure
    # The oracles' and the supervised baseline's accuracy on the same range, where the evaluation measured it.
    metrics = {
        "metrics": {
            "agent": {"direction_accuracy": 0.75},
            "expected_move_oracle": {"direction_accuracy": 0.651},
            "oracle": {"direction_accuracy": 0.7295},
            "momentum": {"direction_accuracy": 0.5},
            "supervised": {"direction_accuracy": None},
        }
    }
    beside = accuracy_score(metrics, steps, cnn, real=False)
    assert beside.details["reference_direction_accuracy"] == {"expected_move_oracle": 0.651, "oracle": 0.7295}
    assert beside.figure.endswith("; expected-move oracle 65.1%; perfect-foresight oracle 73.0%")
    assert score.details["reference_direction_accuracy"] == {}


def regime_rows(sharpes: dict[str, tuple[float, float, float]], source: str = "true") -> list[dict[str, Any]]:
    """``regime → (share, agent Sharpe, buy-and-hold Sharpe)``."""
    rows = []
    for regime, (share, agent, hold) in sharpes.items():
        rows.append({"source": source, "regime": regime, "policy": "agent", "share_of_steps": share, "sharpe": agent})
        rows.append(
            {"source": source, "regime": regime, "policy": "buy_and_hold", "share_of_steps": share, "sharpe": hold}
        )
    return rows


def test_regimes_need_three_big_regimes_and_the_agent_at_least_buy_and_hold_in_each() -> None:
    good = {"TREND_UP": (0.4, 2.0, 1.0), "RANGE": (0.3, 0.5, 0.5), "VOLATILE": (0.25, 1.0, -1.0)}
    tiny = {"TREND_DOWN": (0.05, -9.0, 5.0)}  # under 10 %: does not count either way
    score = regimes_score(regime_rows(good | tiny) + regime_rows({"RANGE": (1.0, 0.0, 0.0)}, "classifier"))
    assert score.status == PASS and score.details["labels"] == "true"
    assert set(score.details["regimes"]) == {"TREND_UP", "RANGE", "VOLATILE"}
    worse = regimes_score(regime_rows(good | {"VOLATILE": (0.25, -2.0, -1.0)}))
    assert worse.status == FAIL and "in 2" in worse.figure
    two = regimes_score(regime_rows({"TREND_UP": (0.6, 2.0, 1.0), "RANGE": (0.4, 2.0, 1.0)}, "classifier"))
    assert two.status == FAIL and two.details["labels"] == "classifier" and "2 regimes" in two.figure


def test_uptime_from_a_soak_or_a_session_with_cnns_on_only(tmp_path: Path) -> None:
    live = tmp_path / "live"
    assert uptime_score(live, cnn_served=True).status == NOT_MEASURED
    live.mkdir()
    (live / "report.json").write_text(json.dumps({"uptime": 0.999, "alive_s": 3600.0}))
    assert uptime_score(live, cnn_served=True).status == PASS
    off = uptime_score(live, cnn_served=False)
    assert off.status == NOT_MEASURED and "CNNs off" in off.figure
    # A soak summary wins over the session report, and says itself whether the CNNs were on.
    faults = {"gaps": 0, "drops": 1, "at_rate": True}
    soak_json = {"uptime": 0.99, "cnn_enabled": True, "alive_s": 60.4, "faults": faults}
    (live / "soak_summary.json").write_text(json.dumps(soak_json))
    soak = uptime_score(live, cnn_served=False)
    assert soak.status == FAIL and soak.source == "live/soak_summary.json"
    assert soak.figure == "99.000% over 60 s" and soak.details["faults"] == faults
    (live / "soak_summary.json").write_text(json.dumps({"cnn_enabled": True}))
    assert uptime_score(live, cnn_served=True).status == NOT_MEASURED


def test_the_bootstrap_interval_is_seeded() -> None:
    rng = np.random.default_rng(1)
    prices = list(100.0 * np.exp(np.cumsum(np.concatenate([[0.0], rng.normal(0, 1e-3, 300)]))))
    steps = steps_frame(list(rng.choice([-1, 0, 1], 300)), prices)
    a = accuracy_score({}, steps, Path("/nonexistent"), real=False)
    b = accuracy_score({}, steps, Path("/nonexistent"), real=False)
    assert a.details == b.details and a.details["ci_low"] < a.details["direction_accuracy"] < a.details["ci_high"]


def test_time_to_target_reads_the_validation_curve_and_ratios_say_budget(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    log = tmp_path / "tensorboard"
    writer = SummaryWriter(str(log))
    for step, value in ((100, 0.01), (200, 0.03), (300, 0.05)):
        writer.add_scalar("validation/total_return", value, step)
    writer.close()
    hit = time_to_target(log, 0.025, n_envs=4, total_steps=300)
    assert hit is not None and hit["env_steps"] == 800 and hit["budget_env_steps"] == 1200
    assert hit["wall_s"] is not None and hit["wall_s"] >= 0.0 and hit["evaluations"] == 3
    never = time_to_target(log, 0.06, n_envs=4, total_steps=300)
    assert never is not None and never["wall_s"] is None and never["env_steps"] is None
    assert time_to_target(tmp_path / "absent", 0.0, n_envs=1, total_steps=1) is None
    assert wall_ratio({"wall_s": 10.0}, {"wall_s": 40.0}) == 0.25
    assert wall_ratio({"wall_s": 10.0}, {"wall_s": None}) == 0.0
    assert wall_ratio({"wall_s": None}, {"wall_s": 40.0}) is None


def test_first_reached_takes_the_first_point_at_or_above_the_target() -> None:
    points = [(10.0, 400, 0.01), (20.0, 800, 0.03), (30.0, 1200, 0.02), (40.0, 1600, 0.05)]
    assert first_reached(points, 0.03, 2000) == {
        "wall_s": 20.0,
        "env_steps": 800,
        "budget_env_steps": 2000,
        "evaluations": 4,
        "last_wall_s": 40.0,
    }
    never = first_reached(points, 0.06, 2000)
    assert never["wall_s"] is None and never["env_steps"] is None and never["evaluations"] == 4
    assert never["last_wall_s"] == 40.0 and first_reached([], 0.0, 10)["last_wall_s"] is None


def _curve_run(root: Path, values: list[float], learners: dict[str, Any]) -> Any:
    """A stand-in run folder: a validation curve every 100 s in tensorboard/, and a convergence.json."""
    import time
    from types import SimpleNamespace

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(root / "tensorboard"))
    start = time.time()  # the log's first event is written when the writer opens, just before this
    for i, value in enumerate(values, start=1):
        writer.add_scalar("validation/total_return", value, 100 * i, walltime=start + 100.0 * i)
    writer.close()
    (root / "convergence.json").write_text(json.dumps({"learners": learners}))
    return SimpleNamespace(root=root, config=SimpleNamespace(train=SimpleNamespace(n_envs=1, total_steps=300)))


def test_convergence_against_a_learner_that_never_got_there_shows_a_bound_not_a_ratio_of_zero(
    tmp_path: Path,
) -> None:
    metrics = {"targets": {"validation_expected_move_oracle_return": 0.08}}  # target 0.04
    basic = {"wall_s": 800.0, "env_steps": 300, "budget_env_steps": 300}
    sb3 = {"wall_s": None, "env_steps": None, "budget_env_steps": 300, "evaluations": 3, "last_wall_s": 1000.0}
    bundle = _curve_run(tmp_path, [0.01, 0.05, 0.06], {"basic": basic, "sb3_dqn": sb3})
    score = convergence_score(bundle, metrics, real=False)
    assert score.details["agent"]["wall_s"] == pytest.approx(200.0, abs=1.0)  # the second backtest reached it
    assert score.status == "PASS" and score.details["wall_ratio"]["sb3_dqn"] == 0.0
    assert "sb3_dqn > budget (300 env steps) (not there after 1000 s: agent/sb3_dqn wall-time ratio < 0.20)" in (
        score.figure
    )
    assert "(agent/basic wall-time ratio 0.25)" in score.figure and "0.00" not in score.figure
    # A convergence.json written before last_wall_s was recorded: the figure says only who got there.
    del sb3["last_wall_s"]
    older = _curve_run(tmp_path / "older", [0.01, 0.05, 0.06], {"basic": basic, "sb3_dqn": sb3})
    figure = convergence_score(older, metrics, real=False).figure
    assert "(the agent got there, sb3_dqn did not)" in figure and "0.00" not in figure
