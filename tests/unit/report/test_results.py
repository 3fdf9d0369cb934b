"""``rltrade results``: RESULTS.md from walk-forward folders, its verdict chosen by rule from the numbers in them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rltrade.cli import main
from rltrade.report.results import results_markdown, verdict_sentence
from rltrade.training.metrics import steps_per_year
from rltrade.training.verdict import summarise
from rltrade.types import Timeframe
from tests.unit.training.test_verdict import write_run, write_selection


def walkforward_folder(root: Path) -> Path:
    rng = np.random.default_rng(3)
    rows = [write_run(root / "runs", k, 0, rng, drift=0.002) for k in (0, 1)]
    verdict = summarise(rows, steps_per_year(Timeframe.H1.us), n_resamples=100)
    doc = {
        "format": "rltrade.walkforward",
        "version": 1,
        "seeds": [0],
        "expanding": False,
        "folds": [
            {
                "index": k,
                "train": {"start_us": DAY * 10 * k, "end_us": DAY * (10 * k + 6)},
                "validation": {"start_us": DAY * (10 * k + 6) + HOUR, "end_us": DAY * (10 * k + 8)},
                "test": {"start_us": DAY * (10 * k + 10), "end_us": DAY * (10 * k + 20)},
            }
            for k in (0, 1)
        ],
        "config": {
            "data": {
                "source": "store",
                "store": "data_store/x",
                "exchange": "binance",
                "symbol": "ETHUSDT",
                "reference": "BTCUSDT",
            },
            "env": {
                "step": "1h",
                "taker_fee": 0.001,
                "half_spread_bps": 1.0,
                "impact_bps": 0.0,
                "borrow_annual_rate": 0.05,
            },
        },
        "aggregate": {"overall": {"selected": {"flat": 1, "buy_and_hold": 1}}},
        "verdict": verdict,
    }
    (root / "walkforward.json").write_text(json.dumps(doc))
    return root


DAY, HOUR = 86_400_000_000, 3_600_000_000


def edit(folder: Path, change: Any) -> None:
    path = folder / "walkforward.json"
    doc = json.loads(path.read_text())
    change(doc["verdict"])
    path.write_text(json.dumps(doc))


def test_the_page_states_the_numbers_of_the_folder(tmp_path: Path) -> None:
    folder = walkforward_folder(tmp_path / "wf")
    doc = json.loads((folder / "walkforward.json").read_text())
    text = results_markdown([folder], command="rltrade results wf")
    agg = doc["verdict"]["aggregate"]
    assert f"{agg['policies']['buy_and_hold']['total_return']:+.1%}" in text
    assert f"in {agg['agent_trails']['buy_and_hold']} of 2 folds" in text
    assert "taker fee 0.100% per side" in text and "do not edit by hand" in text
    assert "ETHUSDT (reference BTCUSDT), Binance spot; source store data_store/x" in text
    assert "shorts pay a 5.0% a year borrow rate" in text and "## wf\n" in text
    assert "decisions 1970-01-01 00:00 → 1970-01-31 00:00 UTC" in text
    assert "fold 0 fits on 6.0 d of training and 2.0 d of validation" in text and "tests on the next 10.0 d" in text
    assert "picked: flat in 1 job, buy_and_hold in 1 job" in text and "it needs at least 2 seeds" in text
    assert text.count("| 0 |") == 1 and text.count("| 1 |") == 1 and "| **all** |" in text

    def bump(v: dict[str, Any]) -> None:
        v["folds"][1]["policies"]["flat"]["total_return"] = 0.123

    edit(folder, bump)
    changed = results_markdown([folder], command="rltrade results wf")
    assert changed != text and "+12.3%" in changed and "+12.3%" not in text


def test_a_usdm_folder_names_the_perpetual_its_fee_tier_and_funding(tmp_path: Path) -> None:
    folder = walkforward_folder(tmp_path / "wf-usdm")
    path = folder / "walkforward.json"
    doc = json.loads(path.read_text())
    doc["config"]["data"]["exchange"] = "binanceusdm"
    doc["config"]["env"].update(taker_fee=0.0005, fee_tier="binance-usdm", funding_file="/x/ETH_funding.csv.gz")
    path.write_text(json.dumps(doc))
    text = results_markdown([folder], command="rltrade results wf-usdm")
    assert "Binance USDⓈ-M perpetual futures" in text and "exchange folder binanceusdm" in text
    assert "taker fee 0.050% per side (fee tier binance-usdm: Binance USDⓈ-M" in text
    funding = "longs pay and shorts receive the real USDⓈ-M funding rates (the reverse when negative) of ETH_funding"
    assert funding in text and "borrow" not in text


@pytest.mark.parametrize(
    ("bh", "flat", "trails", "words"),
    [
        ((0.5, 0.1, 0.9), (0.4, 0.1, 0.8), 1, "**Edge:**"),
        ((-0.5, -0.9, -0.1), (0.1, -0.1, 0.3), 2, "worse than buy-and-hold"),
        ((-0.1, -0.6, 0.4), (0.1, -0.1, 0.3), 2, "includes 0"),
    ],
)
def test_the_verdict_follows_the_pooled_interval(
    tmp_path: Path, bh: tuple[float, ...], flat: tuple[float, ...], trails: int, words: str
) -> None:
    folder = walkforward_folder(tmp_path / "wf")

    def set_ci(v: dict[str, Any]) -> None:
        agg = v["aggregate"]
        for name, (d, lo, hi) in (("buy_and_hold", bh), ("flat", flat)):
            agg["agent_vs"][name].update(sharpe_diff=d, ci_low=lo, ci_high=hi)
        agg["agent_trails"]["buy_and_hold"] = trails

    edit(folder, set_ci)
    sentence = verdict_sentence(json.loads((folder / "walkforward.json").read_text())["verdict"])
    assert words in sentence and f"{trails} of 2 folds" in sentence
    assert f"[{bh[1]:+.2f}, {bh[2]:+.2f}]" in sentence


def test_the_command_writes_the_page_and_refuses_a_folder_without_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = walkforward_folder(tmp_path / "wf")
    out = tmp_path / "docs" / "RESULTS.md"
    assert main(["results", str(folder), "--out", str(out)]) == 0
    assert out.read_text() == results_markdown([folder], command=f"rltrade results {folder} --out {out}")
    assert "trails buy-and-hold" in capsys.readouterr().out
    assert main(["results", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "walkforward.json does not exist" in capsys.readouterr().err


def test_the_selected_per_fold_column_from_the_runs_of_an_older_walkforward(tmp_path: Path) -> None:
    folder = walkforward_folder(tmp_path / "wf")
    text = results_markdown([folder], command="rltrade results wf")
    assert "selected per fold" in text and text.count("not recorded") >= 3  # no run holds a selection record

    doc = json.loads((folder / "walkforward.json").read_text())
    runs = sorted((folder / "runs").iterdir())
    for run in runs:
        write_selection(run, "buy_and_hold", {"flat": 0.0, "buy_and_hold": 0.02, "agent": 0.01})
    for f in doc["verdict"]["folds"]:  # written before the selection per fold existed
        assert "selection" in f
        del f["selection"]
    doc["jobs"] = [
        {"fold": k, "seed": 0, "name": run.name, "run_dir": f"elsewhere/{run.name}"} for k, run in enumerate(runs)
    ]
    (folder / "walkforward.json").write_text(json.dumps(doc))
    text = results_markdown([folder], command="rltrade results wf")
    bh = doc["verdict"]["folds"][0]["policies"]["buy_and_hold"]
    assert f"| buy_and_hold: {bh['total_return']:+.1%} / {bh['sharpe']:+.2f}" in text
    assert "fold 0 buy_and_hold, fold 1 buy_and_hold" in text and "not recorded" not in text
    regime_heads = [line for line in text.splitlines() if line.startswith("| regime |")]
    assert regime_heads and all("selected per fold" not in line for line in regime_heads)  # no per-regime choice
