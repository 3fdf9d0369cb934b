"""The run folder: a complete, self-describing bundle of one training run (SPEC §2.7).

::

    runs/<name>/
      manifest.json       format version, created time, git commit, package versions, seed,
                          data fingerprints, fitted ranges (everything fitted, with its time range),
                          the train / validation / test ranges
      config.yaml         the resolved config (every default filled in)
      layout.json         the state layout: blocks, shapes, slices
      feature_stats.json  fitted feature statistics with their fit ranges
      checkpoints/        last.pt, best.pt (agent + replay + RNG + counters; atomic, weights-only)
      cnn/                per-timeframe CNN fold models (when CNNs are used)
      tensorboard/        training curves
      eval/               backtest metrics and trades

Backtest and live load a bundle with :func:`open_bundle`, which refuses one whose layout or format does
not match what the caller builds, and evaluation refuses periods overlapping the bundle's fitted ranges.
:func:`start_run` creates (or reopens, to resume) the folder of a training run; :func:`checkpoint_path` and
:func:`load_learner` find and restore its agent. Live and report read run folders through this module only,
never through the training loop (an import-linter contract keeps it so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import yaml

from rltrade.agent.checkpoint import load_learner_state
from rltrade.agent.learner import DQNLearner, resolve_device
from rltrade.config import Config
from rltrade.data.atomic import write_json_atomic
from rltrade.data.market import MarketFrames
from rltrade.data.splits import Fold, TimeRange, ensure_disjoint
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureStats
from rltrade.training.backtest import RowPolicy
from rltrade.training.metrics import BacktestMetrics
from rltrade.training.pipeline import Prepared, block_specs, prepare

BEST_FILE: Final = "best_validation.json"
"""The run folder's record of the best validation backtest (its metrics and step)."""
BUNDLE_FORMAT: Final = "rltrade.run"
BUNDLE_VERSION: Final = 1
logger = logging.getLogger(__name__)
PACKAGES: Final = ("rltrade", "torch", "numpy", "polars", "ta-lib", "gymnasium", "pydantic")


class BestValidation(BacktestMetrics):
    """The best validation backtest's metrics and the step it was run at (``best_validation.json``)."""

    step: int


class BundleError(RuntimeError):
    """A run folder is missing, incomplete, or does not match what it is used with."""


def git_commit() -> str:
    """Return the checked-out commit of the working directory, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def package_versions() -> dict[str, str]:
    """Return the installed version of each package in ``PACKAGES`` (those not installed are left out)."""
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def data_fingerprints(frames: MarketFrames) -> dict[str, dict[str, object]]:
    """Rows, time span and a SHA-256 of the key columns of every input dataset."""
    out: dict[str, dict[str, object]] = {}
    for role, df in frames.trades.items():
        if df.height:
            out[f"{role}/trades"] = _fingerprint(df, ("ts_us", "trade_id", "price", "qty"), "ts_us")
    for role, by_tf in frames.bars.items():
        for tf, df in by_tf.items():
            if df.height:
                out[f"{role}/{tf.value}"] = _fingerprint(
                    df, ("open_us", "open", "high", "low", "close", "volume"), "open_us"
                )
    return out


def _fingerprint(df: Any, cols: tuple[str, ...], time_col: str) -> dict[str, object]:
    h = hashlib.sha256()
    for c in cols:
        h.update(df[c].to_numpy().tobytes())
    return {
        "rows": df.height,
        "first_us": int(df[time_col][0]),
        "last_us": int(df[time_col][-1]),
        "sha256": h.hexdigest(),
    }


@dataclass(frozen=True)
class RunBundle:
    """An open run folder."""

    root: Path
    manifest: Mapping[str, Any]

    @property
    def checkpoints(self) -> Path:
        """The run's checkpoint folder."""
        return self.root / "checkpoints"

    @property
    def config(self) -> Config:
        """The run's config, read from ``config.yaml``."""
        return Config.model_validate(yaml.safe_load((self.root / "config.yaml").read_text()))

    @property
    def layout(self) -> list[dict[str, object]]:
        """The state layout, read from ``layout.json`` (one dict per block)."""
        return list(json.loads((self.root / "layout.json").read_text()))

    @property
    def feature_stats(self) -> FeatureStats:
        """The fitted feature statistics, read from ``feature_stats.json``."""
        return FeatureStats.from_dict(json.loads((self.root / "feature_stats.json").read_text()))

    def fitted_ranges(self) -> list[TimeRange]:
        """Return every time range something was fitted on (from the manifest)."""
        return [TimeRange(**r) for r in self.manifest["fitted_ranges"]]

    def split(self, name: str) -> TimeRange:
        """Return the recorded time range of split ``name`` (``train``, ``validation`` or ``test``)."""
        return TimeRange(**self.manifest["splits"][name])

    def fold(self) -> Fold:
        """Return the train / validation / test ranges this run was trained with."""
        validation = self.split("validation") if "validation" in self.manifest["splits"] else None
        return Fold(0, self.split("train"), validation, self.split("test"))

    def refuse_overlap(self, period: TimeRange, *, what: str) -> None:
        """Raise if ``period`` overlaps anything this run fitted on (training, validation, scalers, CNNs)."""
        ensure_disjoint(period, self.fitted_ranges(), what=what)

    def best_validation(self) -> BestValidation | None:
        """Return the best validation backtest recorded so far (None before the first one)."""
        path = self.root / BEST_FILE
        return cast(BestValidation, json.loads(path.read_text())) if path.exists() else None

    def record_best(self, best: BestValidation) -> BestValidation:
        """Write ``best`` as the run's best validation backtest (atomically); returns it."""
        write_json_atomic(self.root / BEST_FILE, best)
        return best

    def record(self, key: str, value: Any) -> RunBundle:
        """Add or replace ``key`` in the manifest (atomically); returns the updated bundle."""
        manifest = dict(self.manifest)
        manifest[key] = value
        write_json_atomic(self.root / "manifest.json", manifest)
        return RunBundle(self.root, manifest)


def create_bundle(
    root: Path,
    cfg: Config,
    layout: StateLayout,
    stats: FeatureStats,
    frames: MarketFrames,
    *,
    splits: Mapping[str, TimeRange],
    fitted: list[TimeRange],
) -> RunBundle:
    """Create a run folder (refusing to overwrite a different run) and write its description."""
    from rltrade.config import render_commented_yaml

    root.mkdir(parents=True, exist_ok=True)
    refuse_existing_run(root)
    (root / "config.yaml").write_text(render_commented_yaml(cfg) + "\n")
    write_json_atomic(root / "layout.json", layout.describe())
    write_json_atomic(root / "feature_stats.json", stats.to_dict())
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "seed": cfg.seed,
        "layout": {"name": layout.name, "size": layout.size},
        "data": data_fingerprints(frames),
        "splits": {k: v.to_dict() for k, v in splits.items()},
        "fitted_ranges": [r.to_dict() for r in fitted],
    }
    write_json_atomic(root / "manifest.json", manifest)
    return RunBundle(root, manifest)


def open_bundle(root: Path, *, layout: StateLayout | None = None) -> RunBundle:
    """Open a run folder; refuse a foreign or incomplete one, or one built for another layout."""
    path = root / "manifest.json"
    if not path.exists():
        raise BundleError(f"{root} is not a run folder (no manifest.json); train one with `rltrade train`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{root}: run format {manifest.get('format')} v{manifest.get('version')} is not "
            f"{BUNDLE_FORMAT} v{BUNDLE_VERSION}; retrain with this rltrade version"
        )
    for name in ("config.yaml", "layout.json", "feature_stats.json"):
        if not (root / name).exists():
            raise BundleError(f"{root} is incomplete: {name} is missing")
    bundle = RunBundle(root, manifest)
    if layout is not None and bundle.layout != layout.describe():
        raise BundleError(
            f"{root} was trained on layout {manifest['layout']['name']!r} ({manifest['layout']['size']} features), "
            f"which differs from the layout {layout.name!r} ({layout.size}) asked for; use the run's own config"
        )
    return bundle


def refuse_existing_run(run_dir: Path) -> None:
    """Raise :class:`BundleError` if ``run_dir`` already holds a run (a new run never overwrites one)."""
    if (run_dir / "manifest.json").exists():
        raise BundleError(
            f"{run_dir} already holds a run; continue it with `rltrade train --resume {run_dir}` or pick another "
            "--run-dir"
        )


def start_run(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    splits: Fold | None = None,
    log: Callable[[str], None] = logger.info,
    prepared: Prepared | None = None,
) -> tuple[Prepared, RunBundle]:
    """Prepare the data and the run folder of a training run.

    A new run prepares ``cfg`` (on ``splits`` when given: a walk-forward fold) and creates ``run_dir``; a
    resumed one reopens ``run_dir`` and prepares its own config, fitted statistics, ranges and CNNs. Fitted
    CNNs are saved only once the folder exists: a refused run folder never gets its CNN models overwritten.
    ``log`` gets the reason of every timeframe whose CNN was skipped.

    ``prepared`` (a new run only) reuses another run's preparation instead of preparing again: it must
    come from a config equal to ``cfg`` except for its ``agent`` section (benchmarks that compare agent
    options on one market, ``benchmarks/bench_rich_state.py``).
    """
    if not resume:
        refuse_existing_run(run_dir)  # before preparing anything
    if resume:
        bundle = open_bundle(run_dir)
        prep = prepare(bundle.config, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=run_dir / "cnn")
    else:
        if prepared is None:
            prep = prepare(cfg, splits=splits)
        elif splits is None and prepared.cfg.model_copy(update={"agent": cfg.agent}) == cfg:
            prep = replace(prepared, cfg=cfg)
        else:
            raise ValueError("a reused preparation needs no splits and the same config except its agent section")
        ranges = {"train": prep.splits.train, "test": prep.splits.test}
        if prep.splits.validation is not None:
            ranges["validation"] = prep.splits.validation
        bundle = create_bundle(
            run_dir, cfg, prep.layout, prep.stats, prep.frames, splits=ranges, fitted=prep.fitted_ranges()
        )
    if prep.cnn is not None and not prep.cnn.loaded:
        prep.cnn.save(bundle.root / "cnn")
        bundle = bundle.record("cnn", prep.cnn.summary())
        for tf, why in prep.cnn.skipped.items():
            log(f"{tf} CNN skipped (its state rows stay masked): {why}")
    return prep, bundle


def new_learner(cfg: Config, layout: StateLayout) -> DQNLearner:
    """Build a freshly initialised learner for ``layout``, seeded from ``cfg`` (:attr:`Config.learner_config`)."""
    return DQNLearner(
        cfg.learner_config,
        layout.size,
        ACCOUNT_DIM,
        blocks=block_specs(layout),
        device=resolve_device(cfg.train.device),
        mixed_precision=cfg.train.mixed_precision,
    )


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    """``checkpoints/<which>.pt`` of ``run_dir`` (``best`` falls back to ``last``); refuses a run without one."""
    for name in (which, "last"):
        path = run_dir / "checkpoints" / f"{name}.pt"
        if path.exists():
            return path
    raise BundleError(f"{run_dir} holds no agent checkpoint (checkpoints/{which}.pt or last.pt); train it first")


def load_learner(run_dir: Path, layout: StateLayout, cfg: Config, *, which: str = "best") -> DQNLearner:
    """Load the learner saved in ``run_dir`` (:func:`checkpoint_path`), its online network in eval mode.

    It is for backtests and live decisions (greedy, noise off); training resumes through the loop's own
    restore, never through this.
    """
    learner = new_learner(cfg, layout)
    load_learner_state(checkpoint_path(run_dir, which), learner)
    learner.online.eval()
    return learner


class GreedyPolicy:
    """The learner's greedy actions (no exploration, noise off), as every backtest and live use them.

    Called on one observation at a time (live) it runs the whole network. A backtest first offers each
    chunk of states to :meth:`encode` (:class:`rltrade.training.backtest.ChunkPolicy`): a structured
    encoder then runs once per chunk and each step only appends its account and runs the head, with the
    same actions up to float rounding (:meth:`rltrade.agent.learner.DQNLearner.encode_states`).
    """

    def __init__(self, learner: DQNLearner) -> None:
        self.learner = learner

    def __call__(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """Greedy actions for observations ``[B, F + K]``."""
        return self.learner.act(obs, 0, greedy=True)

    def encode(self, states_BF: npt.NDArray[np.float32]) -> RowPolicy | None:
        """Return acting on row ``j`` of ``states_BF`` given its observation, or None for a flat network."""
        if not self.learner.encodes_states:
            return None
        encoded = self.learner.encode_states(states_BF)
        return lambda j, obs: self.learner.act_encoded(encoded[j : j + 1], obs)


def greedy_policy(learner: DQNLearner) -> GreedyPolicy:
    """Wrap the learner's greedy actions (:class:`GreedyPolicy`)."""
    return GreedyPolicy(learner)
