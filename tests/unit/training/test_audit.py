"""`rltrade audit`: a frozen tiny sweep's trials scored once on test, without touching its selection.

One sequential sweep (3 trials, 1 inner fold, 2 seeds) is audited. The audit refuses while the sweep is still
running (no ``sweep.json`` yet), leaves every selection file byte for byte as it was, reports ``gap =
validation − test`` per row, and its trial test figure equals an independent ``evaluate_bundle`` of a copy of
the trial's run on the same test range.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rltrade.cli import main
from rltrade.data.market import load_market
from rltrade.data.splits import TimeRange
from rltrade.report.sweep import write_sweep_report
from rltrade.training.audit import AUDIT_FILE, AuditError, run_audit, spearman
from rltrade.training.evaluate import evaluate_bundle
from rltrade.training.sweep import parse_space, run_sweep
from tests.support.tiny_config import tiny

SMALL: dict[str, Any] = {
    "agent": {"learning_starts": 32, "batch_size": 16, "buffer_size": 512},
    "train": {"total_steps": 48, "n_envs": 2, "eval_every": 24, "checkpoint_every": 1_000},
}
SPACE: dict[str, Any] = {
    "params": {"agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    "trials": 3,
    "seeds": 2,
    "folds": 1,
    "top_k": 1,
    "top_seeds": 3,
    "pruner": "none",
}


def _hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file a selection lives in: sweep.json, the study journal, the runs' selection files."""
    names = ("sweep.json", "study.journal", "selection.json", "selection_detail.npz", "selection_returns.npz")
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.name in names or p.suffix == ".pt"
    }


def test_spearman_ranks_with_ties() -> None:
    assert spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # ranks x = 1, 2.5, 2.5, 4 and y = 1, 2, 3, 4: Pearson of the ranks.
    assert spearman([0.1, 0.5, 0.5, 0.9], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.9486832980505138)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_audit_of_a_frozen_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny(**SMALL)
    frames = load_market(cfg.data)
    monkeypatch.setattr("rltrade.training.pipeline.load_market", lambda *_a, **_k: frames)
    out = tmp_path / "sweep"
    refused: list[str] = []

    def progress(line: str) -> None:  # runs inside the sweep, before its selection is written
        if not refused:
            with pytest.raises(AuditError, match="not frozen yet") as info:
                run_audit(out, frames=frames)
            refused.append(str(info.value))

    result = run_sweep(
        cfg, parse_space(SPACE, cfg), out, executor="local", final=False, frames=frames, progress=progress
    )
    assert refused and not (out / AUDIT_FILE).exists()
    assert [t["state"] for t in result.trials] == ["complete"] * 3

    before = _hashes(out)
    audit = run_audit(out, frames=frames).data
    assert _hashes(out) == before  # the selection, the study and every run's checkpoints are untouched
    saved = json.loads((out / AUDIT_FILE).read_text())
    assert saved == json.loads(json.dumps(audit))

    rows = {r["name"]: r for r in audit["rows"]}
    assert set(rows) == {"trial0", "trial1", "trial2", "flat", "buy_and_hold"}
    for t in result.trials:
        r = rows[f"trial{t['number']}"]
        assert r["validation"] == t["value"]
        assert r["gap"] == pytest.approx(r["validation"] - r["test"], abs=1e-15)
        assert r["test"] == pytest.approx(sum(r["fold_test"][0]) / 2)  # 1 fold: the mean over the 2 seeds
    for b in ("flat", "buy_and_hold"):
        assert rows[b]["validation"] == result.selection["scores"][b]
        assert rows[b]["gap"] == pytest.approx(rows[b]["validation"] - rows[b]["test"], abs=1e-15)
    assert rows["flat"]["test"] == 0.0

    # One trial's figure, recomputed by the ordinary evaluation on a copy of its run (the original stays as is).
    test = TimeRange(**audit["test"])
    copy = tmp_path / "copy"
    shutil.copytree(out / "trial0001" / f"fold0_seed{cfg.seed + 1}", copy)
    ev = evaluate_bundle(copy, period=test)
    assert rows["trial1"]["fold_test"][0][1] == pytest.approx(float(ev.metrics["agent"]["total_return"]), abs=1e-12)
    assert rows["buy_and_hold"]["test"] == pytest.approx(float(ev.metrics["buy_and_hold"]["total_return"]), abs=1e-12)
    assert ev.period == test and audit["test_steps"] > 0

    trials = [rows[f"trial{i}"] for i in range(3)]
    assert audit["n_ranked"] == 3
    assert audit["spearman"] == spearman([r["validation"] for r in trials], [r["test"] for r in trials])
    chosen = rows[f"trial{result.best_trial}"]
    assert audit["chosen_trial"] == result.best_trial and audit["chosen_gap"] == chosen["gap"]
    assert audit["median_gap"] == sorted(r["gap"] for r in trials)[1]

    # A second audit of the same selection reads nothing again; a changed sweep.json is refused.
    mtime = (out / AUDIT_FILE).stat().st_mtime_ns
    assert run_audit(out, frames=frames).data == saved and (out / AUDIT_FILE).stat().st_mtime_ns == mtime
    report = write_sweep_report(out).read_text()
    assert "Selection-bias audit" in report and "Spearman" in report and "trial2" in report

    assert main(["audit", str(out)]) == 0  # the command prints the stored audit (same selection)
    text = capsys.readouterr().out
    assert "selection-bias audit" in text and "Spearman" in text and "(chosen)" in text
    assert main(["audit", str(tmp_path / "copy")]) == 3
    assert "not frozen yet" in capsys.readouterr().err

    (out / "sweep.json").write_text((out / "sweep.json").read_text() + "\n")
    with pytest.raises(AuditError, match="audits another"):
        run_audit(out, frames=frames)
    assert "not made for this selection" in write_sweep_report(out).read_text()
