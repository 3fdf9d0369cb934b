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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from rltrade.config import Config
from rltrade.data.atomic import atomic_write
from rltrade.data.market import MarketFrames
from rltrade.data.splits import TimeRange, ensure_disjoint
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureStats

BUNDLE_FORMAT: Final = "rltrade.run"
BUNDLE_VERSION: Final = 1
PACKAGES: Final = ("rltrade", "torch", "numpy", "polars", "ta-lib", "gymnasium", "pydantic")


class BundleError(RuntimeError):
    """A run folder is missing, incomplete, or does not match what it is used with."""


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    text = json.dumps(payload, indent=2, sort_keys=True).encode()
    atomic_write(path, lambda fh: fh.write(text))


def git_commit() -> str:
    """The checked-out commit of the working directory, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def package_versions() -> dict[str, str]:
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
        return self.root / "checkpoints"

    @property
    def config(self) -> Config:
        return Config.model_validate(yaml.safe_load((self.root / "config.yaml").read_text()))

    @property
    def layout(self) -> list[dict[str, object]]:
        return list(json.loads((self.root / "layout.json").read_text()))

    @property
    def feature_stats(self) -> FeatureStats:
        return FeatureStats.from_dict(json.loads((self.root / "feature_stats.json").read_text()))

    def fitted_ranges(self) -> list[TimeRange]:
        return [TimeRange(**r) for r in self.manifest["fitted_ranges"]]

    def split(self, name: str) -> TimeRange:
        return TimeRange(**self.manifest["splits"][name])

    def refuse_overlap(self, period: TimeRange, *, what: str) -> None:
        """Raise if ``period`` overlaps anything this run fitted on (training, validation, scalers, CNNs)."""
        ensure_disjoint(period, self.fitted_ranges(), what=what)

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
    if (root / "manifest.json").exists():
        raise BundleError(f"{root} already holds a run; use --resume to continue it or pick another --run-dir")
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
