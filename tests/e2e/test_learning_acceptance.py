"""Learning acceptance (issue 6), one seed: the demo agent learns the planted BTC→ETH lead; a market without
it gives nothing to learn. The full version (3 seeds, the basic-layout agent, SB3, convergence) is
``python -m benchmarks.bench_learning``. Each run trains the whole demo preset: minutes, hence ``slow``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rltrade.training.confirmation import read_selection
from rltrade.training.evaluate import evaluate_run
from rltrade.training.loop import train
from rltrade.training.presets import load_with_preset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _train_and_evaluate(tmp_path: Path, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cfg = load_with_preset(None, "demo", {"seed": 0, **overrides})
    train(cfg, tmp_path / "run", log=lambda _: None)
    return evaluate_run(tmp_path / "run")


def _ret(metrics: dict[str, dict[str, Any]], name: str) -> float:
    return float(metrics[name]["total_return"])


def test_demo_agent_captures_half_the_expected_move_oracle_and_beats_the_baselines(tmp_path: Path) -> None:
    m = _train_and_evaluate(tmp_path, {})
    agent, oracle = _ret(m, "agent"), _ret(m, "expected_move_oracle")
    assert oracle > 0
    # Capture in log growth (what compounds, and what the oracle's DP maximises), not in simple return.
    capture = math.log1p(agent) / math.log1p(oracle)
    assert capture >= 0.5, f"agent {agent:+.4%} captures {capture:.2f} of the oracle's {oracle:+.4%} (log growth)"
    assert agent <= _ret(m, "oracle")  # perfect foresight bounds every policy
    best = max(_ret(m, k) for k in ("flat", "buy_and_hold", "momentum"))
    assert agent > best
    sel = read_selection(tmp_path / "run")  # do no harm (issue 14): the planted-signal agent is confirmed
    assert sel is not None and (sel["selected"], sel["status"]) == ("agent", "confirmed"), sel


def test_without_a_planted_signal_the_agent_does_not_beat_flat(tmp_path: Path) -> None:
    m = _train_and_evaluate(tmp_path, {"data": {"synthetic": {"signal": {"strength": 0.0}}}})
    assert "expected_move_oracle" in m  # the expected-move oracle of a zero signal never trades
    assert _ret(m, "expected_move_oracle") == 0.0
    assert _ret(m, "agent") <= 0.0
    sel = read_selection(tmp_path / "run")  # the negative control is never what the run trades (issue 14)
    assert sel is not None and sel["selected"] in ("flat", "buy_and_hold"), sel
