"""`rltrade sweep` on a local Ray (2 CPUs): the table, the PBO, the selection line, the final test, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rltrade.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
ray = pytest.importorskip("ray")

CONFIG = {
    "data": {"synthetic": {"history_days": 12, "tick_days": 0.06}},
    "splits": {"purge_s": 120, "embargo_s": 30},
    "cnn": {"enabled": False},
    "agent": {"learning_starts": 32, "buffer_size": 512, "batch_size": 16, "epsilon_steps": 200},
    "train": {"total_steps": 48, "n_envs": 2, "eval_every": 24, "eval_max_steps": 200, "checkpoint_every": 1000},
}
SPACE = {
    "trials": 3,
    "seeds": 2,
    "folds": 1,
    "top_k": 2,
    "top_seeds": 3,
    "params": {
        "agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "reward.turnover_weight": {"type": "float", "low": 0.0, "high": 0.001},
        "train.fee_multiplier": {"type": "float", "low": 1.0, "high": 3.0},
    },
}


def test_sweep_cli_on_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "sweep"
    args = ["sweep", "--space", str(tmp_path / "space.yaml"), "-c", str(tmp_path / "cfg.yaml"), "--preset", "demo"]
    assert main([*args, "--out", str(out), "--num-cpus", "2"]) == 0
    text = capsys.readouterr().out
    assert "PBO" in text and "selected: " in text and "test range, evaluated once" in text
    saved = json.loads((out / "sweep.json").read_text())
    assert len(saved["trials"]) == 3 and f"selected: {saved['selection']['selected']}" in text
    assert saved["final"]["metrics"].keys() >= {"agent", "flat", "buy_and_hold"}
    assert (out / "study.journal").is_file() and (out / "final" / "selection.json").is_file()
    report = (out / "sweep_report.html").read_text()
    assert report.count("plotly-graph-div") == 2  # parameter importance and parallel coordinates
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPACE, "params": {"env.taker_fee": {"type": "float", "low": 0, "high": 1}}}))
    assert main(["sweep", "--space", str(bad), "-c", str(tmp_path / "cfg.yaml"), "--out", str(out)]) == 2
    assert "cannot be searched" in capsys.readouterr().err
