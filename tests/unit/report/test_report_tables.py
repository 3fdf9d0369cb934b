"""Report tables: the generic JSON table shapes, the metrics table, the CNN table (rltrade.report.tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrade.report.tables import (
    TableFormatError,
    cnn_table,
    format_cell,
    load_table,
    metrics_table,
    scorecard_table,
    table_from_json,
)


def test_the_three_generic_shapes_give_the_same_table() -> None:
    rows = [{"name": "a", "x": 1.5, "n": 3}, {"name": "b", "x": None, "n": 1_200}]
    full = table_from_json(
        {"title": "T", "columns": ["name", "x", "n"], "rows": rows, "note": "hi"}, title="d", where="f"
    )
    bare = table_from_json(rows, title="d", where="f")
    by_name = table_from_json({"a": {"x": 1.5, "n": 3}, "b": {"x": None, "n": 1_200}}, title="d", where="f")
    assert full.title == "T" and full.note == "hi" and bare.title == "d"
    assert full.columns == bare.columns == by_name.columns == ("name", "x", "n")
    assert full.rows == bare.rows == by_name.rows == (("a", "1.5", "3"), ("b", "–", "1,200"))
    assert full.numeric == (False, True, True)


def test_columns_come_from_all_rows_text_first_then_in_first_seen_order() -> None:
    t = table_from_json([{"a": 1}, {"b": 2, "a": 3}], title="t", where="f")
    assert t.columns == ("a", "b")
    assert t.rows == (("1", "–"), ("3", "2"))
    sorted_keys = table_from_json([{"n": 1, "policy": "agent", "x": 0.5, "regime": "RANGE"}], title="t", where="f")
    assert sorted_keys.columns == ("policy", "regime", "n", "x")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"value": 0.5, "lo": 0.25, "hi": 0.75}, "0.5 [0.25, 0.75]"),
        ({"estimate": 2.0, "ci_low": 1.0, "ci_high": 3.0, "ci_level": 0.95}, "2 [1, 3]"),
        ([1.0, 2.0], "[1, 2]"),
        (["eth_ticks", "pivots"], "eth_ticks, pivots"),
        (True, "yes"),
        ({"k": [1, 2, 3]}, '{"k":[1,2,3]}'),
        (123_456.0, "123,456"),
    ],
)
def test_cells(value: object, text: str) -> None:
    assert format_cell(value) == text


def test_bad_shapes_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TableFormatError, match=r"regimes\.json"):
        table_from_json({"rows": "nope"}, title="t", where="regimes.json")
    with pytest.raises(TableFormatError, match="columns"):
        table_from_json({"rows": [], "columns": "a"}, title="t", where="f")
    bad = tmp_path / "ablation.json"
    bad.write_text("{not json")
    with pytest.raises(TableFormatError, match=r"ablation\.json: not valid JSON"):
        load_table(bad, title="t")
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(TableFormatError, match="list of"):
        load_table(bad, title="t")


def test_metrics_table_puts_the_agent_first_and_shows_intervals() -> None:
    raw = {
        "period": {"start_us": 0, "end_us": 1},
        "metrics": {
            "flat": {"total_return": 0.0, "sharpe": 0.0, "n_trades": 0},
            "agent": {
                "total_return": 0.0123,
                "sharpe": 1.5,
                "sharpe_ci_low": -0.5,
                "sharpe_ci_high": 3.25,
                "sharpe_ci_level": 0.9,
                "n_trades": 12,
                "fees_paid": 3.5,
                "annualisation": "sqrt(365 days)",
            },
        },
        "diff_vs_best_baseline": {"baseline": "flat", "sharpe_diff": 1.5, "ci_low": -1.0, "ci_high": 2.0},
    }
    t = metrics_table(raw, quote="USDT", where="m.json")
    assert [r[0] for r in t.rows] == ["agent", "flat"]
    cells = dict(zip(t.columns, t.rows[0], strict=True))
    assert cells["return"] == "+1.23%"
    assert cells["Sharpe"] == "1.50 [-0.50, 3.25]"
    assert cells["fees (USDT)"] == "3.50"
    assert "90% confidence intervals" in t.note and "sqrt(365 days)" in t.note
    assert "best baseline's (flat): 1.50 [-1.00, 2.00]" in t.note
    plain = metrics_table({"metrics": {"agent": {"sharpe": 1.0}}}, quote="USDT", where="m")
    assert "No confidence intervals" in plain.note
    with pytest.raises(TableFormatError, match=r"m\.json"):
        metrics_table({"metrics": [1]}, quote="USDT", where="m.json")


def test_cnn_table_reads_the_cnn_stage_file() -> None:
    raw = {
        "timeframes": {
            "1m": {"pooled": {"model": {"n": 10, "accuracy": 0.5}, "persistence": {"n": 10, "accuracy": 0.4}}}
        },
        "skipped": {"1s": "not enough bars"},
    }
    t = cnn_table(raw, where="cnn/metrics.json")
    assert [r[:3] for r in t.rows] == [("1m", "CNN", "10"), ("1m", "persistence (baseline)", "10")]
    assert t.rows[0][3] == "50.0%"
    assert "1s: not enough bars" in t.note
    with pytest.raises(TableFormatError, match=r"cnn/metrics\.json"):
        cnn_table({"folds": []}, where="cnn/metrics.json")


def test_scorecard_table_shows_each_metric_with_its_verdict_and_alarm() -> None:
    metric = {
        "name": "accuracy",
        "status": "PASS",
        "figure": "70.0%",
        "target": "> 65%",
        "definition": "d",
        "source": "s",
    }
    raw = {
        "layout": "demo",
        "layout_size": 1234,
        "market": "real",
        "evaluation": "saved",
        "metrics": [metric | {"alarm": "leak alarm"}, metric | {"name": "uptime", "status": "NOT MEASURED"}],
    }
    t = scorecard_table(raw, where="scorecard.json")
    assert t.rows[0][:3] == ("accuracy", "PASS", "70.0% — leak alarm") and t.rows[1][1] == "NOT MEASURED"
    assert t.rows[0][4] == "d (from s)" and "demo, 1,234 features" in t.note
    with pytest.raises(TableFormatError, match=r"scorecard\.json"):
        scorecard_table({"metrics": [{"name": "x"}]}, where="scorecard.json")
