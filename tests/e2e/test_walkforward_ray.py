"""Walk-forward and ablation on a local Ray (2 CPUs): every job runs, spreads add up, seeds matter and repeat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rltrade.cli import main
from rltrade.cli import walkforward as _walkforward_cli  # noqa: F401  (registers `walkforward`, `ablation`)
from rltrade.data.splits import TimeRange
from rltrade.training.walkforward import WalkForwardResult, fold_to_dict, run_fold_job, run_walkforward, spread
from tests.support.tiny_config import TINY, tiny

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (startup costs seconds); run_walkforward reuses it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def walkforward(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> WalkForwardResult:
    out = tmp_path_factory.mktemp("wf")
    seen: list[tuple[int, int]] = []
    result = run_walkforward(tiny(), out, folds=2, seeds=2, progress=lambda d, t, _: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    return result


def test_walkforward_json_has_every_job_and_the_spread(walkforward: WalkForwardResult) -> None:
    saved = json.loads(walkforward.path.read_text())
    assert saved["failed"] == []
    jobs = saved["jobs"]
    assert sorted((r["fold"], r["seed"]) for r in jobs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for r in jobs:
        test = TimeRange(**r["test"])
        assert all(TimeRange(**f).end_us <= test.start_us for f in r["fitted_ranges"])
        assert {"buy_and_hold", "flat", "momentum", "random_0", "supervised"} <= set(r["baselines"])
        assert r["updates"] > 0
    agg = saved["aggregate"]
    for f in agg["per_fold"]:
        mine = [r for r in jobs if r["fold"] == f["fold"]]
        assert f["test_return"] == spread([r["test_return"] for r in mine])
        assert f["sharpe"] == spread([r["sharpe"] for r in mine])
    assert agg["overall"]["test_return"] == spread([r["test_return"] for r in jobs])
    assert agg["overall"]["jobs"] == 4
    assert saved["folds"] == [fold_to_dict(f) for f in walkforward.folds]


def test_seeds_differ_and_the_same_seed_repeats_outside_ray(walkforward: WalkForwardResult, tmp_path: Path) -> None:
    rows = {(r["fold"], r["seed"]): r for r in walkforward.rows}
    for k in (0, 1):
        assert rows[(k, 0)]["weights_sha256"] != rows[(k, 1)]["weights_sha256"]
    again = run_fold_job(tiny().model_dump(mode="json"), walkforward.folds[1], 1, tmp_path)
    ray_row = rows[(1, 1)]
    assert again["weights_sha256"] == ray_row["weights_sha256"]
    assert again["agent"] == ray_row["agent"]
    assert again["best_validation"] == ray_row["best_validation"]


def _config_file(tmp_path: Path, **extra: Any) -> Path:
    import yaml

    from rltrade.training.presets import deep_merge

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(deep_merge(TINY, extra)))
    return path


@pytest.mark.slow
def test_walkforward_command_prints_the_fold_table(
    local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wf"
    code = main(
        [
            "walkforward",
            "-c",
            str(_config_file(tmp_path)),
            "--preset",
            "demo",
            "--folds",
            "1",
            "--seeds",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    saved = json.loads((out / "walkforward.json").read_text())
    assert [(r["fold"], r["seed"]) for r in saved["jobs"]] == [(0, 0)]
    text = capsys.readouterr().out
    assert (
        "walk-forward" in text
        and "buy & hold" in text
        and "flat" in text
        and "supervised" in text
        and "costs: taker fee 0.0100%" in " ".join(text.split())
        and str(out / "walkforward.json") in text
    )
    assert "agent trails buy-and-hold in" in text


def test_walkforward_command_refuses_zero_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "walkforward",
            "-c",
            str(_config_file(tmp_path)),
            "--preset",
            "demo",
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "wf"),
        ]
    )
    assert code == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_ablation_command_reports_each_block(
    local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config_file(tmp_path, features={"layout": {"ticks": False}})
    out = tmp_path / "abl"
    code = main(
        ["ablation", "-c", str(cfg), "--preset", "demo", "--blocks", "ticks,pivots", "--seeds", "1", "--out", str(out)]
    )
    assert code == 0
    rows = json.loads((out / "eval" / "ablation.json").read_text())
    by = {r["removed"]: r for r in rows}
    assert list(by) == ["none", "ticks", "pivots"]
    assert by["ticks"]["status"] == "not in layout" and by["ticks"]["test_return"] is None
    assert by["pivots"]["status"] == "ok" and by["pivots"]["state_blocks_removed"] == ["pivots"]
    assert by["pivots"]["delta_vs_all"] == pytest.approx(by["pivots"]["test_return"] - by["none"]["test_return"])
    assert by["none"]["delta_vs_all"] == 0.0
    assert by["pivots"]["weights_sha256"] != by["none"]["weights_sha256"]
    layout = json.loads((Path(by["pivots"]["run_dir"]) / "layout.json").read_text())
    assert "pivots" not in {b["name"] for b in layout}
    out_text = capsys.readouterr().out
    assert "not in layout" in out_text and "pivots" in out_text


def test_the_verdict_has_flat_buy_and_hold_and_the_seed_ensemble_in_every_fold(
    walkforward: WalkForwardResult,
) -> None:
    from rltrade.training.verdict import RETURNS_PATH
    from rltrade.training.walkforward import ensemble_returns

    saved = json.loads(walkforward.path.read_text())
    verdict = saved["verdict"]
    assert verdict == walkforward.verdict
    assert [f["fold"] for f in verdict["folds"]] == [0, 1]
    for f in verdict["folds"]:
        assert {"agent", "ensemble", "flat", "buy_and_hold"} <= set(f["policies"])
        assert f["policies"]["flat"]["total_return"] == 0.0
        assert f["seeds"] == 2
    n = sum(f["policies"]["agent"]["n_steps"] for f in verdict["folds"])
    assert verdict["aggregate"]["policies"]["agent"]["n_steps"] == n
    # An ensemble of one run twice is that run: the averaged Q-values pick the run's own actions.
    run = Path(next(r["run_dir"] for r in walkforward.rows if r["fold"] == 1))
    import polars as pl

    own = pl.read_parquet(run / RETURNS_PATH)["agent"].to_numpy()
    twice = ensemble_returns([run, run])
    assert twice is not None and np.allclose(twice, own, rtol=0, atol=1e-12)
