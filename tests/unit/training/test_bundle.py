"""Run bundles: complete description, refusal of mismatched layouts, foreign folders and leaky periods."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from rltrade.config import Config, DataConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import load_market
from rltrade.data.splits import SplitError, TimeRange
from rltrade.features.layout import build_layout
from rltrade.features.market_features import FeatureStats
from rltrade.training.bundle import BundleError, create_bundle, open_bundle, start_run
from rltrade.training.pipeline import Prepared


def _bundle(tmp_path: Path) -> Path:
    cfg = Config(data=DataConfig(synthetic=SyntheticConfig(history_days=3, tick_days=0.01)))
    frames = load_market(cfg.data)
    layout = build_layout(LayoutConfig(name="demo"))
    train, test = TimeRange(0, 100), TimeRange(200, 300)
    stats = FeatureStats(0.5, train)
    create_bundle(tmp_path / "run", cfg, layout, stats, frames, splits={"train": train, "test": test}, fitted=[train])
    return tmp_path / "run"


def test_bundle_round_trip(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    layout = build_layout(LayoutConfig(name="demo"))
    bundle = open_bundle(root, layout=layout)
    manifest = bundle.manifest
    assert manifest["layout"] == {"name": "demo", "size": layout.size}
    assert {"eth/trades", "eth/1m", "btc/1d"} <= set(manifest["data"])
    assert len(manifest["data"]["eth/1m"]["sha256"]) == 64
    assert manifest["packages"]["torch"].startswith("2.")
    assert bundle.feature_stats == FeatureStats(0.5, TimeRange(0, 100))
    assert bundle.config.data.synthetic.history_days == 3
    assert bundle.split("test") == TimeRange(200, 300)


def test_mismatched_layout_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    with pytest.raises(BundleError, match="differs from the layout 'full'"):
        open_bundle(root, layout=build_layout(LayoutConfig(name="full")))
    with pytest.raises(BundleError, match="not a run folder"):
        open_bundle(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps(manifest | {"version": 99}))
    with pytest.raises(BundleError, match="retrain"):
        open_bundle(root)


def test_existing_run_is_not_overwritten_and_fitted_periods_are_refused(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    with pytest.raises(BundleError, match="already holds a run"):
        _bundle(tmp_path)
    bundle = open_bundle(root)
    bundle.refuse_overlap(TimeRange(100, 150), what="backtest")
    with pytest.raises(SplitError, match="overlaps the fitted range"):
        bundle.refuse_overlap(TimeRange(50, 150), what="backtest")


def test_start_run_reuses_a_preparation_only_of_the_same_config_but_the_agent(tmp_path: Path) -> None:
    cfg = Config()
    other_market = cast(Prepared, SimpleNamespace(cfg=cfg.model_copy(update={"seed": cfg.seed + 1})))
    with pytest.raises(ValueError, match="same config except its agent section"):
        start_run(cfg, tmp_path / "run", prepared=other_market)
    assert not (tmp_path / "run").exists()
