"""Ablation: retrain with one state block removed at a time and compare with the full layout (SPEC §2.7).

Each variant is the config with one layout switch turned off (``rltrade.config.LayoutConfig``)::

    removed   switch                               blocks that disappear (features.layout.build_layout)
    ticks     ticks: false                         eth_ticks
    btc       reference_timeframes: []             every BTC block (bars, and returns when present)
    returns   returns: false                       the recent-returns blocks (<sym>_ret_<tf>)
    cnn       cnn: false                           cnn_hidden, cnn_predictions
    pivots    pivots: false                        pivots
    regime    regime: false                        regime

The reference symbol still enters the regime block (ETH–BTC correlation and beta): ``btc`` removes the BTC
bars, ``regime`` removes that use of BTC. Every variant (and ``removed: "none"``, the config's own layout) is
trained with the same seeds on the config's train / validation / test split, as the same Ray jobs as
:mod:`rltrade.training.walkforward`, and backtested on the test range. ``delta_vs_all`` pairs seeds:
the variant's test return minus the full layout's with the same seed.

A block the config's layout does not hold is reported as ``"not in layout"``; one whose switch the layout
ignores (the ``basic`` layout) as ``"not removable"``; the CNN blocks of a run without the CNN stage
(``cnn.enabled: false``, all zero) as ``"masked"``. None of them is trained, none is silently skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltrade.config import Config
from rltrade.data.atomic import write_json_atomic
from rltrade.data.market import load_market
from rltrade.data.splits import split_span
from rltrade.features.layout import StateLayout, build_layout
from rltrade.training.pipeline import decision_span
from rltrade.training.presets import deep_merge
from rltrade.training.walkforward import Job, JobProgress, WalkForwardError, run_jobs, spread

BLOCKS: tuple[str, ...] = ("ticks", "btc", "returns", "cnn", "pivots", "regime")
"""Blocks the ablation can remove, in table order."""

_SWITCH: dict[str, dict[str, Any]] = {
    "ticks": {"ticks": False},
    "btc": {"reference_timeframes": []},
    "returns": {"returns": False},
    "cnn": {"cnn": False},
    "pivots": {"pivots": False},
    "regime": {"regime": False},
}
"""Layout overrides that remove each block."""

ALL = "none"
"""``removed`` value of the full-layout rows."""


@dataclass(frozen=True)
class AblationResult:
    """What an ablation wrote: the ``eval/ablation.json`` path, its rows and the per-variant summary."""

    path: Path
    """The ``eval/ablation.json`` written."""
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    """Per variant: status, block names removed, spread over seeds of test return, Sharpe and delta."""


def block_names(layout: StateLayout, block: str) -> list[str]:
    """Names of the layout's state blocks that ``block`` (one of :data:`BLOCKS`) stands for."""
    if block == "btc":
        return [b.name for b in layout.blocks if b.symbol == "btc"]
    if block == "returns":
        return [b.name for b in layout.blocks if "_ret_" in b.name]
    names = {"ticks": ["eth_ticks"], "cnn": ["cnn_hidden", "cnn_predictions"]}.get(block, [block])
    return [n for n in names if layout.has(n)]


def variant_config(cfg: Config, block: str) -> Config:
    """``cfg`` with ``block`` switched off in its layout."""
    if block not in _SWITCH:
        raise WalkForwardError(f"unknown ablation block {block!r}; use some of: {', '.join(BLOCKS)}")
    return Config.model_validate(deep_merge(cfg.model_dump(mode="json"), {"features": {"layout": _SWITCH[block]}}))


def block_status(cfg: Config, block: str) -> tuple[str, list[str]]:
    """``("ok" | "not in layout" | "not removable", state blocks of the config's layout it stands for)``."""
    present = block_names(build_layout(cfg.features.layout), block)
    if not present:
        return "not in layout", []
    if block == "cnn" and not cfg.cnn.enabled:
        return "masked (cnn.enabled: false)", present  # all-zero blocks: removing them would measure nothing
    left = block_names(build_layout(variant_config(cfg, block).features.layout), block)
    return ("not removable", present) if left else ("ok", present)


def run_ablation(
    cfg: Config,
    out_dir: Path,
    *,
    blocks: Sequence[str] = BLOCKS,
    seeds: int = 1,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    progress: JobProgress | None = None,
) -> AblationResult:
    """Train the config's layout and each variant without one of ``blocks``, ``seeds`` seeds each.

    The runs are parallel jobs on the config's split; the rows go to ``out_dir/eval/ablation.json`` (a list
    of row dicts).
    """
    if seeds < 1:
        raise WalkForwardError(f"--seeds must be at least 1, got {seeds}")
    unknown = [b for b in blocks if b not in _SWITCH]
    if unknown:
        raise WalkForwardError(f"unknown ablation block(s) {unknown}; use some of: {', '.join(BLOCKS)}")
    frames = load_market(cfg.data)
    fold = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    seed_list = [cfg.seed + s for s in range(seeds)]
    status = {b: block_status(cfg, b) for b in blocks}
    variants = {ALL: cfg} | {b: variant_config(cfg, b) for b in blocks if status[b][0] == "ok"}
    keys = [(name, seed) for name in variants for seed in seed_list]
    jobs = [
        Job(
            variants[name].model_dump(mode="json"),
            fold,
            seed,
            out_dir / "runs" / ("all" if name == ALL else f"no_{name}"),
            f"all blocks seed {seed}" if name == ALL else f"without {name} seed {seed}",
        )
        for name, seed in keys
    ]
    results = run_jobs(jobs, ray_address=ray_address, num_cpus=num_cpus, progress=progress)
    by_key = dict(zip(keys, results, strict=True))
    rows: list[dict[str, Any]] = []
    for name in (ALL, *blocks):
        st, removed_blocks = ("ok", []) if name == ALL else status[name]
        if st != "ok":
            rows.append(_row(name, None, st, removed_blocks, None, None))
            continue
        for seed in seed_list:
            r, base = by_key[(name, seed)], by_key[(ALL, seed)]
            rows.append(_row(name, seed, "failed" if "error" in r else "ok", removed_blocks, r, base))
    path = out_dir / "eval" / "ablation.json"
    write_json_atomic(path, rows)
    return AblationResult(path, rows, summarise(rows))


def _row(
    removed: str,
    seed: int | None,
    status: str,
    blocks: list[str],
    r: dict[str, Any] | None,
    base: dict[str, Any] | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "removed": removed,
        "seed": seed,
        "status": status,
        "state_blocks_removed": blocks,
        "test_return": None,
        "sharpe": None,
        "delta_vs_all": None,
        "sharpe_delta_vs_all": None,
    }
    if r is None or "error" in r:
        if r is not None:
            row["error"] = r["error"]
        return row
    row.update(
        test_return=r["test_return"],
        sharpe=r["sharpe"],
        direction_accuracy=r["agent"].get("direction_accuracy"),
        exposure=r["agent"].get("exposure"),
        n_trades=r["agent"].get("n_trades"),
        weights_sha256=r["weights_sha256"],
        run_dir=r["run_dir"],
    )
    if base is not None and "error" not in base:
        row["delta_vs_all"] = r["test_return"] - base["test_return"]
        row["sharpe_delta_vs_all"] = r["sharpe"] - base["sharpe"]
    return row


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per ``removed`` value: its status and the spread over seeds of return, Sharpe and delta."""
    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["removed"] for r in rows):
        mine = [r for r in rows if r["removed"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        entry: dict[str, Any] = {
            "removed": name,
            "status": "ok" if ok else mine[0]["status"],
            "seeds": len(ok),
            "failed": sum(r["status"] == "failed" for r in mine),
        }
        for key in ("test_return", "sharpe", "delta_vs_all"):
            entry[key] = spread([float(r[key]) for r in ok if r[key] is not None])
        entry["mean_direction_accuracy"] = float(np.mean([r["direction_accuracy"] for r in ok])) if ok else None
        out.append(entry)
    return out
