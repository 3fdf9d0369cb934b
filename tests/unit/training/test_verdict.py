"""The walk-forward verdict from run folders' per-step test returns: flat and buy-and-hold in every fold,
intervals per fold, the pooled interval over the concatenated returns, fold counts and per-regime rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rltrade.training.bootstrap import sharpe_ci, sharpe_diff_ci
from rltrade.training.metrics import steps_per_year
from rltrade.training.verdict import RETURNS_PATH, VerdictError, market_label, summarise, total_return
from rltrade.types import Timeframe

PER_YEAR = steps_per_year(Timeframe.H1.us)
N = 200


def write_run(root: Path, fold: int, seed: int, rng: np.random.Generator, *, drift: float) -> dict[str, Any]:
    """A fake walk-forward job: its row and an ``eval/returns.parquet`` on fold ``fold``'s test steps."""
    run = root / f"fold{fold}_seed{seed}"
    (run / "eval").mkdir(parents=True)
    t0 = (fold + 1) * N * Timeframe.H1.us
    market = rng.normal(drift, 0.01, N)
    pl.DataFrame(
        {
            "time_us": t0 + np.arange(N, dtype=np.int64) * Timeframe.H1.us,
            "regime": np.where(np.arange(N) < N // 2, 0, 2).astype(np.int8),
            "agent": rng.normal(0.0, 0.01, N),
            "flat": np.zeros(N),
            "buy_and_hold": market if seed == 0 else market * 0,  # a baseline is read from the first seed only
            "momentum": rng.normal(0.0, 0.01, N),
        }
    ).write_parquet(run / RETURNS_PATH)
    return {"fold": fold, "seed": seed, "run_dir": str(run)}


@pytest.fixture
def two_folds(tmp_path: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    return [write_run(tmp_path, k, s, rng, drift=0.003 if k == 0 else -0.003) for k in (0, 1) for s in (0, 1)]


def series(rows: list[dict[str, Any]], fold: int, column: str) -> np.ndarray:
    frames = [pl.read_parquet(Path(r["run_dir"]) / RETURNS_PATH) for r in rows if r["fold"] == fold]
    if column == "agent":
        return np.mean([f["agent"].to_numpy() for f in frames], axis=0)
    return frames[0][column].to_numpy()


def test_every_fold_has_flat_and_buy_and_hold_with_intervals(two_folds: list[dict[str, Any]]) -> None:
    v = summarise(two_folds, PER_YEAR, n_resamples=200)
    assert [f["fold"] for f in v["folds"]] == [0, 1]
    for f in v["folds"]:
        assert set(f["policies"]) == {"agent", "flat", "buy_and_hold"}  # momentum is not a verdict row
        for name, p in f["policies"].items():
            expected = sharpe_ci(
                series(two_folds, f["fold"], name), PER_YEAR, rng=np.random.default_rng(0), n_resamples=200
            )
            assert (p["sharpe"], p["sharpe_ci_low"]) == (expected.estimate, expected.low)
            assert p["sharpe_ci_high"] == expected.high
        assert f["policies"]["flat"]["total_return"] == 0.0
        assert f["seeds"] == 2
    assert [f["market"] for f in v["folds"]] == ["bull", "bear"]


def test_the_aggregate_is_over_the_concatenated_test_returns(two_folds: list[dict[str, Any]]) -> None:
    v = summarise(two_folds, PER_YEAR, n_resamples=200)
    agent = np.concatenate([series(two_folds, k, "agent") for k in (0, 1)])
    bh = np.concatenate([series(two_folds, k, "buy_and_hold") for k in (0, 1)])
    agg = v["aggregate"]
    ci = sharpe_ci(agent, PER_YEAR, rng=np.random.default_rng(0), n_resamples=200)
    assert agg["policies"]["agent"]["n_steps"] == 2 * N
    assert agg["policies"]["agent"]["sharpe_ci_low"] == ci.low and agg["policies"]["agent"]["sharpe"] == ci.estimate
    assert agg["policies"]["buy_and_hold"]["total_return"] == pytest.approx(total_return(bh))
    d = sharpe_diff_ci(agent, bh, PER_YEAR, rng=np.random.default_rng(0), n_resamples=200)
    vs = agg["agent_vs"]["buy_and_hold"]
    assert (vs["ci_low"], vs["ci_high"]) == (d.low, d.high)
    per_fold = [f["policies"] for f in v["folds"]]
    trails = sum(p["agent"]["total_return"] < p["buy_and_hold"]["total_return"] for p in per_fold)
    assert agg["agent_trails"]["buy_and_hold"] == trails


def test_per_regime_rows_split_the_pooled_steps(two_folds: list[dict[str, Any]]) -> None:
    v = summarise(two_folds, PER_YEAR, n_resamples=50)
    market = {r["regime"]: r for r in v["regimes"]["market"]}
    assert set(market) == {"bull", "bear"} and market["bull"]["n_steps"] == N
    bull_bh = market["bull"]["policies"]["buy_and_hold"]["total_return"]
    assert bull_bh == pytest.approx(v["folds"][0]["policies"]["buy_and_hold"]["total_return"])
    classifier = {r["regime"]: r["n_steps"] for r in v["regimes"]["classifier"]}
    assert classifier == {"TREND_UP": N, "RANGE": N}


def test_an_ensemble_function_adds_a_row_per_fold(two_folds: list[dict[str, Any]]) -> None:
    calls: list[int] = []

    def ensemble(dirs: Any) -> np.ndarray:
        calls.append(len(dirs))
        return np.full(N, 0.001)

    v = summarise(two_folds, PER_YEAR, ensemble=ensemble, n_resamples=50)
    assert calls == [2, 2]
    expected = pytest.approx(total_return(np.full(N, 0.001)))
    assert all(f["policies"]["ensemble"]["total_return"] == expected for f in v["folds"])
    assert "ensemble" in v["aggregate"]["policies"]


def test_a_run_without_returns_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VerdictError, match=r"returns\.parquet is missing.*re-run"):
        summarise([{"fold": 0, "seed": 0, "run_dir": str(tmp_path / "nope")}], PER_YEAR)


def test_market_labels() -> None:
    assert [market_label(x) for x in (0.5, 0.2, 0.0, -0.2, -0.21)] == ["bull", "range", "range", "range", "bear"]


def write_selection(
    run_dir: Path, selected: str, scores: dict[str, float], confirmation: dict[str, np.ndarray] | None = None
) -> None:
    """A run's do-no-harm record: ``selection.json`` and ``selection_detail.npz`` (selection and confirmation)."""
    status = "confirmed" if selected == "agent" else "failed_confirmation"
    doc = {"selected": selected, "candidate": "agent", "status": status, "label": f"selected: {selected}"}
    (run_dir / "selection.json").write_text(json.dumps({**doc, "scores": scores}))
    detail = {f"{k}_selection": np.zeros(20) for k in ("agent", "flat", "buy_and_hold")}
    detail |= {f"{k}_confirmation": v for k, v in (confirmation or {}).items()}
    np.savez(run_dir / "selection_detail.npz", **detail)


def test_the_selection_per_fold_chooses_among_the_seeds_selected_policies_and_both_baselines(
    two_folds: list[dict[str, Any]],
) -> None:
    dirs = {(r["fold"], r["seed"]): Path(r["run_dir"]) for r in two_folds}
    rng = np.random.default_rng(11)
    winning = {"agent": 0.002 + rng.normal(0, 1e-4, 60), "flat": np.zeros(60), "buy_and_hold": rng.normal(0, 1e-3, 60)}
    # Fold 0: both seeds' runs selected their agents; seed 1's scored higher on validation and is confirmed.
    write_selection(dirs[0, 0], "agent", {"flat": 0.0, "buy_and_hold": 0.01, "agent": 0.02}, winning)
    write_selection(dirs[0, 1], "agent", {"flat": 0.0, "buy_and_hold": 0.01, "agent": 0.05}, winning)
    # Fold 1: seed 0's agent scored best but its run fell back to flat, so it is no candidate; buy-and-hold wins.
    write_selection(dirs[1, 0], "flat", {"flat": 0.0, "buy_and_hold": 0.03, "agent": 0.09}, winning)
    write_selection(dirs[1, 1], "buy_and_hold", {"flat": 0.0, "buy_and_hold": 0.03, "agent": 0.01}, winning)

    v = summarise(two_folds, PER_YEAR, n_resamples=200)
    s0, s1 = (f["selection"] for f in v["folds"])
    assert (
        s0["selected"] == "seed1" and s0["status"] == "confirmed" and s0["runs"] == {"seed0": "agent", "seed1": "agent"}
    )
    assert set(s0["scores"]) == {"flat", "buy_and_hold", "seed0", "seed1"}
    assert s1["selected"] == "buy_and_hold" and s1["status"] == "baseline_best"
    assert set(s1["scores"]) == {"flat", "buy_and_hold"}  # neither run kept its agent
    chosen = [
        pl.read_parquet(dirs[0, 1] / RETURNS_PATH)["agent"].to_numpy(),  # seed 1's own agent, not the seeds' mean
        series(two_folds, 1, "buy_and_hold"),
    ]
    for f, r in zip(v["folds"], chosen, strict=True):
        ci = sharpe_ci(r, PER_YEAR, rng=np.random.default_rng(0), n_resamples=200)
        assert f["policies"]["selected"]["total_return"] == pytest.approx(total_return(r))
        assert f["policies"]["selected"]["sharpe_ci_low"] == ci.low
    pooled = v["aggregate"]["policies"]["selected"]
    assert pooled["n_steps"] == 2 * N and pooled["total_return"] == pytest.approx(total_return(np.concatenate(chosen)))


def test_a_seed_that_fails_its_fold_confirmation_falls_back_to_a_baseline(two_folds: list[dict[str, Any]]) -> None:
    dirs = {(r["fold"], r["seed"]): Path(r["run_dir"]) for r in two_folds}
    losing = {"agent": np.full(60, -0.001), "flat": np.zeros(60), "buy_and_hold": np.full(60, 0.0005)}
    for k in (0, 1):
        for s in (0, 1):
            write_selection(dirs[k, s], "agent", {"flat": 0.0, "buy_and_hold": -0.01, "agent": 0.01 * (s + 1)}, losing)
    v = summarise(two_folds, PER_YEAR, n_resamples=200)
    for f in v["folds"]:
        assert f["selection"]["candidate"] == "seed1" and f["selection"]["status"] == "failed_confirmation"
        assert f["selection"]["selected"] in ("flat", "buy_and_hold")


def test_without_selection_records_the_fold_has_no_selected_row(two_folds: list[dict[str, Any]]) -> None:
    v = summarise(two_folds, PER_YEAR, n_resamples=50)
    assert all(f["selection"] is None and "selected" not in f["policies"] for f in v["folds"])
    assert "selected" not in v["aggregate"]["policies"]
