"""Walk-forward folds and jobs: disjoint purged folds, nothing of a fold's test range in what it fits."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange
from rltrade.training.bundle import open_bundle
from rltrade.training.confirmation import read_selection
from rltrade.training.metrics import steps_per_year
from rltrade.training.verdict import RETURNS_PATH, summarise, total_return
from rltrade.training.walkforward import WalkForwardError, aggregate, plan_folds, run_fold_job, spread
from tests.support.tiny_config import tiny

HOUR = 3_600_000_000
SPAN = TimeRange(1_700_000_000_000_000, 1_700_000_000_000_000 + 30 * HOUR)


@pytest.mark.parametrize("expanding", [False, True])
def test_folds_are_disjoint_purged_and_fit_only_before_their_test(expanding: bool) -> None:
    cfg = tiny(splits={"purge_s": 600, "embargo_s": 60, "train": 0.6, "validation": 0.2})
    gap = (600 + 60) * 1_000_000
    folds = plan_folds(cfg, SPAN, 4, expanding=expanding)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for f in folds:
        assert f.validation is not None
        assert f.validation.start_us - f.train.end_us == gap  # purge after train, embargo before validation
        assert f.test.start_us - f.validation.end_us == gap
        for fitted in f.fitted():
            assert not fitted.overlaps(f.test) and fitted.end_us <= f.test.start_us - gap
        # validation is the tail of the pre-test part, in the config's 0.6 : 0.2 proportion (before purge)
        pre_test = f.validation.end_us + 600_000_000 - f.train.start_us
        assert (f.validation.start_us - 60_000_000 - f.train.start_us) / pre_test == pytest.approx(0.75, abs=1e-4)
        for t in (f.train.start_us, f.train.end_us, f.validation.start_us, f.test.start_us):
            assert (t - SPAN.start_us) % cfg.env.step.us == 0
    for a, b in itertools.pairwise(folds):
        assert a.test.end_us <= b.test.start_us
        assert b.train.start_us == (SPAN.start_us if expanding else a.test.start_us - 60_000_000)
    assert folds[-1].test.end_us == SPAN.end_us


def test_without_validation_train_runs_up_to_the_purge() -> None:
    cfg = tiny(splits={"validation": 0.0, "purge_s": 600, "embargo_s": 60})
    for f in plan_folds(cfg, SPAN, 3):
        assert f.validation is None
        assert f.test.start_us - f.train.end_us == 660_000_000


def test_spread_matches_the_statistics_module() -> None:
    values = [0.01, -0.02, 0.035, 0.0]
    s = spread(values)
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(statistics.mean(values))
    assert s["std"] == pytest.approx(statistics.stdev(values))
    assert (s["min"], s["max"]) == (-0.02, 0.035)
    assert spread([0.5])["std"] is None
    assert spread([]) == {"n": 0, "mean": None, "std": None, "min": None, "max": None}


def test_aggregate_groups_rows_by_fold() -> None:
    folds = plan_folds(tiny(), SPAN, 2)
    rows = [
        {
            "fold": k,
            "seed": s,
            "test_return": r,
            "sharpe": 10 * r,
            "baselines": {"flat": {"test_return": 0.0, "sharpe": 0.0}},
            "selection": {"selected": "flat" if r <= 0 else "agent"},
        }
        for k, s, r in [(0, 0, 0.01), (0, 1, 0.03), (1, 0, -0.02), (1, 1, 0.0)]
    ]
    agg = aggregate(rows, folds)
    assert [f["selected"] for f in agg["per_fold"]] == [{"agent": 2}, {"flat": 2}]
    assert agg["overall"]["selected"] == {"agent": 2, "flat": 2}
    assert [f["seeds"] for f in agg["per_fold"]] == [[0, 1], [0, 1]]
    assert agg["per_fold"][0]["test_return"]["mean"] == pytest.approx(0.02)
    assert agg["per_fold"][1]["sharpe"]["min"] == pytest.approx(-0.2)
    assert agg["overall"]["jobs"] == 4
    assert agg["overall"]["test_return"]["mean"] == pytest.approx(0.005)


def _perturb_from(frames: MarketFrames, start_us: int) -> MarketFrames:
    """Every price at or after ``start_us`` multiplied by a ramp exp(0.3 · hours since start_us)."""

    def ramp(col: str) -> pl.Expr:
        hours = (pl.col(col) - start_us).cast(pl.Float64) / HOUR
        return pl.when(pl.col(col) >= start_us).then((0.3 * hours).exp()).otherwise(1.0)

    bars = {
        role: {
            tf: df.with_columns(pl.col(c) * ramp("open_us") for c in ("open", "high", "low", "close"))
            for tf, df in by.items()
        }
        for role, by in frames.bars.items()
    }
    trades = {role: df.with_columns(pl.col("price") * ramp("ts_us")) for role, df in frames.trades.items()}
    return MarketFrames(frames.symbols, trades, bars, frames.extras)


@pytest.fixture(scope="module")
def fold_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Fold 0 of a tiny 2-fold plan trained twice: on the market, and on the market changed from its test start."""
    cfg = tiny()
    frames = load_market(cfg.data)
    fold = plan_folds(cfg, _decision_span(cfg, frames), 2)[0]
    out = tmp_path_factory.mktemp("jobs")
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr("rltrade.training.pipeline.load_market", lambda _cfg: frames)
        clean = run_fold_job(cfg.model_dump(mode="json"), fold, 0, out / "clean")
        mp.setattr("rltrade.training.pipeline.load_market", lambda _cfg: _perturb_from(frames, fold.test.start_us))
        changed = run_fold_job(cfg.model_dump(mode="json"), fold, 0, out / "changed")
    finally:
        mp.undo()
    return {"cfg": cfg, "fold": fold, "clean": clean, "changed": changed, "out": out}


def _decision_span(cfg: Any, frames: MarketFrames) -> TimeRange:
    from rltrade.training.pipeline import decision_span

    return decision_span(frames, cfg)


def test_fitted_ranges_never_reach_the_test_range(fold_jobs: dict[str, Any]) -> None:
    fold: Fold = fold_jobs["fold"]
    row = fold_jobs["clean"]
    bundle = open_bundle(Path(row["run_dir"]))
    fitted = bundle.fitted_ranges() + bundle.feature_stats.fitted_ranges()
    assert fitted and [r.to_dict() for r in fitted] == row["fitted_ranges"]
    for r in fitted:
        assert r.end_us <= fold.test.start_us and not r.overlaps(fold.test)
    assert bundle.split("test") == fold.test
    assert row["test"] == fold.test.to_dict()


def test_changing_the_test_range_changes_nothing_the_fold_trained(fold_jobs: dict[str, Any]) -> None:
    clean, changed = fold_jobs["clean"], fold_jobs["changed"]
    stats = [open_bundle(Path(r["run_dir"])).feature_stats for r in (clean, changed)]
    assert stats[0] == stats[1]
    assert clean["weights_sha256"] == changed["weights_sha256"]
    assert clean["best_validation"] == changed["best_validation"]
    assert clean["updates"] == changed["updates"] > 0
    assert clean["selection"] is not None and clean["selection"] == changed["selection"]
    # ...while the test range itself did change: the same fills give another buy-and-hold return
    bh = [r["baselines"]["buy_and_hold"]["test_return"] for r in (clean, changed)]
    assert not np.isclose(bh[0], bh[1])


def test_a_job_refuses_a_folder_holding_another_run(fold_jobs: dict[str, Any]) -> None:
    fold: Fold = fold_jobs["fold"]
    shifted = Fold(fold.index, fold.train, fold.validation, TimeRange(fold.test.start_us + 1_000_000, fold.test.end_us))
    with pytest.raises(WalkForwardError, match="holds a different run"):
        run_fold_job(fold_jobs["cfg"].model_dump(mode="json"), shifted, 0, fold_jobs["out"] / "clean")


def test_a_job_names_the_config_fields_that_make_a_folder_another_run(fold_jobs: dict[str, Any]) -> None:
    cfg = fold_jobs["cfg"].model_dump(mode="json")
    other = {**cfg, "agent": {**cfg["agent"], "lr": cfg["agent"]["lr"] * 2}}
    with pytest.raises(WalkForwardError, match=r"config differs in agent\.lr\)"):
        run_fold_job(other, fold_jobs["fold"], 0, fold_jobs["out"] / "clean")


def test_a_job_resumes_a_folder_whose_config_differs_only_in_wall_time_fields(fold_jobs: dict[str, Any]) -> None:
    # A folder written before agent.overlap_update existed reads back as "off"; the same updates either way.
    cfg = fold_jobs["cfg"].model_dump(mode="json")
    assert cfg["agent"]["overlap_update"] == "off"
    faster = {**cfg, "agent": {**cfg["agent"], "overlap_update": "auto"}}
    again = run_fold_job(faster, fold_jobs["fold"], 0, fold_jobs["out"] / "clean")
    assert again["weights_sha256"] == fold_jobs["clean"]["weights_sha256"]
    assert again["test_return"] == fold_jobs["clean"]["test_return"]


def test_rerunning_a_finished_job_gives_the_same_row(fold_jobs: dict[str, Any]) -> None:
    clean = fold_jobs["clean"]
    again = run_fold_job(fold_jobs["cfg"].model_dump(mode="json"), fold_jobs["fold"], 0, fold_jobs["out"] / "clean")
    assert again["weights_sha256"] == clean["weights_sha256"]
    assert again["test_return"] == clean["test_return"]
    assert again["selection"] == clean["selection"]


def test_the_run_selects_on_validation_and_confirms_on_its_held_back_tail(fold_jobs: dict[str, Any]) -> None:
    fold: Fold = fold_jobs["fold"]
    run = Path(fold_jobs["clean"]["run_dir"])
    sel = read_selection(run)
    assert sel is not None and fold.validation is not None
    window = TimeRange(**sel["selection_window"])
    confirm = TimeRange(**sel["confirmation_window"])
    assert fold.validation.start_us == window.start_us < window.end_us <= confirm.start_us
    assert confirm.end_us == fold.validation.end_us and not confirm.overlaps(fold.test)
    share = confirm.duration_us / fold.validation.duration_us
    assert share == pytest.approx(fold_jobs["cfg"].selection.confirm_fraction, abs=0.01)
    assert {"flat", "buy_and_hold", "agent"} == set(sel["scores"])
    assert sel["scores"]["flat"] == 0.0
    best = json.loads((run / "best_validation.json").read_text())
    assert sel["scores"]["agent"] == pytest.approx(best["total_return"])
    assert sel["selected"] in ("flat", "buy_and_hold", "agent") and sel["label"].startswith("selected: ")
    if sel["selected"] == "agent":
        assert sel["status"] == "confirmed"


def test_the_fold_selection_of_a_trained_fold_reads_its_runs_records(fold_jobs: dict[str, Any]) -> None:
    row = fold_jobs["clean"]
    run = Path(row["run_dir"])
    own = read_selection(run)
    assert own is not None
    v = summarise([row], steps_per_year(fold_jobs["cfg"].env.step.us), n_resamples=200)
    sel = v["folds"][0]["selection"]
    assert sel["runs"] == {"seed0": own["selected"]}
    assert {b: sel["scores"][b] for b in ("flat", "buy_and_hold")} == {
        b: own["scores"][b] for b in ("flat", "buy_and_hold")
    }
    assert ("seed0" in sel["scores"]) == (own["selected"] == "agent")
    column = "agent" if sel["selected"] == "seed0" else sel["selected"]
    returns = pl.read_parquet(run / RETURNS_PATH)[column].to_numpy()
    assert v["folds"][0]["policies"]["selected"]["total_return"] == pytest.approx(total_return(returns))


@pytest.mark.slow
def test_with_the_cnn_stage_changing_the_test_range_changes_no_fitted_model(tmp_path: Path) -> None:
    """The same check with the walk-forward CNNs on: their saved fold models are byte-identical too."""
    cfg = tiny(cnn={"enabled": True})
    frames = load_market(cfg.data)
    fold = plan_folds(cfg, _decision_span(cfg, frames), 2)[0]
    rows = {}
    mp = pytest.MonkeyPatch()
    try:
        for name, market in (("clean", frames), ("changed", _perturb_from(frames, fold.test.start_us))):
            mp.setattr("rltrade.training.pipeline.load_market", lambda _cfg, m=market: m)
            rows[name] = run_fold_job(cfg.model_dump(mode="json"), fold, 0, tmp_path / name)
    finally:
        mp.undo()
    clean_dir, changed_dir = (Path(rows[n]["run_dir"]) / "cnn" for n in ("clean", "changed"))
    files = sorted(p.name for p in clean_dir.glob("*.pt"))
    assert files and files == sorted(p.name for p in changed_dir.glob("*.pt"))
    for name in files:
        a, b = (torch.load(d / name, weights_only=True) for d in (clean_dir, changed_dir))
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), name
        a["fit"].pop("seconds"), b["fit"].pop("seconds")  # the fit's wall time is the one thing allowed to differ
        assert a["fit"] == b["fit"], name
    assert rows["clean"]["weights_sha256"] == rows["changed"]["weights_sha256"]
    assert rows["clean"]["fitted_ranges"] == rows["changed"]["fitted_ranges"]
    for r in rows["clean"]["fitted_ranges"]:
        assert r["end_us"] <= fold.test.start_us
