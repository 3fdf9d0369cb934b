"""The agent of a run folder, loaded for live use: config, layout, fitted statistics, the greedy learner, CNNs.

Live needs no batch features, replay or env: only what turns a streamed state into an action. The layout
is rebuilt from the run's config and checked against the bundle's ``layout.json`` (``open_bundle`` refuses
a mismatch), the feature statistics come from ``feature_stats.json``, and only the learner is restored from
the checkpoint (``best.pt``, else ``last.pt``), exactly as :func:`rltrade.training.bundle.load_learner` does.
The CNNs (when the run has a CNN stage) are the last walk-forward fold of each timeframe, run once per bar
close by the streaming bridge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rltrade.agent.learner import DQNLearner
from rltrade.config import Config
from rltrade.features.layout import StateLayout, build_layout
from rltrade.features.market_features import FeatureStats
from rltrade.models.bridge import StreamingCnnBridge
from rltrade.models.io import load_cnn
from rltrade.models.train import TrainedCnn
from rltrade.training.backtest import Policy
from rltrade.training.bundle import BundleError, checkpoint_path, greedy_policy, load_learner, open_bundle
from rltrade.training.cnn_stage import METRICS_FILE, needs_cnn
from rltrade.types import Timeframe


@dataclass(frozen=True, eq=False)
class LiveModel:
    """What the live engine needs from a run folder."""

    run_dir: Path
    config: Config
    layout: StateLayout
    stats: FeatureStats
    learner: DQNLearner
    checkpoint: Path

    @property
    def policy(self) -> Policy:
        """Greedy actions (no exploration, noise off), as in every backtest."""
        return greedy_policy(self.learner)


def load_live_model(run_dir: Path, *, which: str = "best") -> LiveModel:
    """Load the agent of ``run_dir`` (``which``: ``best`` or ``last`` checkpoint; ``best`` falls back to ``last``)."""
    cfg = open_bundle(run_dir).config
    layout = build_layout(cfg.features.layout)
    bundle = open_bundle(run_dir, layout=layout)  # refuses a bundle whose recorded layout differs
    learner = load_learner(run_dir, layout, cfg, which=which)
    path = checkpoint_path(run_dir, which)
    return LiveModel(run_dir, cfg, layout, bundle.feature_stats, learner, path)


def load_live_cnn(run_dir: Path, cfg: Config) -> StreamingCnnBridge | None:
    """Load the run's CNNs for live use (None without a CNN stage).

    Per timeframe this is its *last* walk-forward fold, the one serving the test range and everything after
    it (:mod:`rltrade.training.cnn_stage`), with its fold index as ``model_id``, as the batch rows have it.
    """
    layout = build_layout(cfg.features.layout)
    if not needs_cnn(layout, cfg):
        return None
    folder = run_dir / "cnn"
    metrics_path = folder / METRICS_FILE
    if not metrics_path.is_file():
        raise BundleError(f"{run_dir} has a CNN stage but no {metrics_path.relative_to(run_dir)}; retrain the run")
    metrics = json.loads(metrics_path.read_text())
    models: dict[Timeframe, tuple[TrainedCnn, int]] = {}
    for name, entry in metrics["timeframes"].items():
        folds = entry["folds"]
        trained = load_cnn(folder / folds[-1]["file"])
        if trained.config != cfg.cnn:
            raise BundleError(f"{folder}: the {name} CNN was fitted with another cnn config; retrain the run")
        models[Timeframe(name)] = (trained, len(folds) - 1)
    return StreamingCnnBridge(models, embargo_us=cfg.splits.embargo_us)
