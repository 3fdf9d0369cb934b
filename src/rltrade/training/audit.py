"""Selection-bias audit of a finished sweep: every trial scored once on the outer test range.

Picking the best of many trials on validation is biased upward (the winner's curse). Once a sweep's selection
is **frozen** (``sweep.json`` written by :func:`rltrade.training.sweep.run_sweep`), :func:`run_audit` measures
that bias; it never changes the selection:

* It refuses a sweep folder without ``sweep.json`` (no frozen selection), and refuses to overwrite an
  ``audit.json`` made for another ``sweep.json`` (the selection changed after the test range was read).
* **Trials.** Every trial's stored runs (``trial<NNNN>/fold<k>_seed<s>``: the inner folds' runs on the search
  seeds, their ``best.pt`` chosen on each fold's validation) are backtested greedily on the outer test range,
  with the same fills and the config's costs. A trial's **test** score is aggregated as its objective is: the
  median over folds of the mean over seeds of the total return after costs. Its **validation** score is its
  objective (the median over folds of the seed-mean selection-window return; a pruned trial: over the folds it
  ran). Nothing is retrained.
* **Baselines.** ``flat`` and ``buy_and_hold``: validation = their scores in the frozen selection (median over
  folds of the selection-window return), test = their return on the outer test range.
* **Figures.** ``gap = validation − test`` per row; the Spearman rank correlation between validation and test
  over the finished trials (None with fewer than 3); the chosen trial's gap (``best_trial``, the configuration
  the sweep's ``final/`` run trained) beside the median gap of the finished trials.

The windows differ in length (a validation selection window holds at most ``train.eval_max_steps`` steps, the
test range all of its own), so a gap mixes the winner's curse with the length difference; the rank correlation
and the chosen-versus-median gap compare trials on the same windows. ``audit.json`` keeps the SHA-256 of the
``sweep.json`` it audited; the sweep report shows the audit only when that file is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from rltrade.config import Config
from rltrade.data.atomic import write_json_atomic
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import TimeRange, split_span
from rltrade.env.prices import PeriodData
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions, flat_actions
from rltrade.training.bundle import BundleError, RunBundle, load_learner, open_bundle
from rltrade.training.confirmation import read_selection
from rltrade.training.evaluate import backtest_learner, period_in_span, run_config
from rltrade.training.pipeline import Prepared, decision_span, prepare
from rltrade.training.selection import BASELINES
from rltrade.training.sweep import RESULT as SWEEP_FILE

AUDIT_FILE: Final = "audit.json"
MIN_TRIALS_FOR_RANK: Final = 3
"""Fewest finished trials for a rank correlation."""

AuditProgress = Callable[[str], None]


class AuditError(BundleError):
    """The sweep folder cannot be audited (no frozen selection, or an audit of another selection is there)."""


@dataclass(frozen=True)
class Audit:
    """What :func:`run_audit` wrote to ``audit.json`` (see :meth:`to_dict` for the fields)."""

    path: Path
    data: dict[str, Any]


def file_sha256(path: Path) -> str:
    """SHA-256 of the bytes of ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_frozen(sweep_dir: Path) -> dict[str, Any]:
    """Read the frozen ``sweep.json`` of ``sweep_dir``; refuse a folder whose selection is not written yet."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        raise AuditError(
            f"{sweep_dir} holds no {SWEEP_FILE}: the sweep's selection is not frozen yet. Let `rltrade sweep --out "
            f"{sweep_dir}` finish (it resumes) before auditing: the audit reads the test range only after the "
            "selection is written"
        )
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("format") != "rltrade.sweep" or "selection" not in data:
        raise AuditError(f"{path} is not a finished sweep's result (no selection); rerun `rltrade sweep`")
    return data


def read_audit(sweep_dir: Path) -> dict[str, Any] | None:
    """``audit.json`` of ``sweep_dir`` when it audits the current ``sweep.json`` (else None)."""
    path, sweep = sweep_dir / AUDIT_FILE, sweep_dir / SWEEP_FILE
    if not path.is_file() or not sweep.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("sweep_sha256") != file_sha256(sweep):
        return None
    return data


def run_audit(sweep_dir: Path, *, frames: MarketFrames | None = None, progress: AuditProgress | None = None) -> Audit:
    """Audit the frozen sweep in ``sweep_dir`` (module docstring); write and return ``audit.json``.

    An ``audit.json`` already made for this ``sweep.json`` is returned as it is: the test range is read once.
    """
    say = progress or (lambda _: None)
    data = read_frozen(sweep_dir)
    sweep_path, out = sweep_dir / SWEEP_FILE, sweep_dir / AUDIT_FILE
    digest = file_sha256(sweep_path)
    if out.is_file():
        old = json.loads(out.read_text())
        if isinstance(old, dict) and old.get("sweep_sha256") == digest:
            say(f"{out} already audits this selection; not reading the test range again")
            return Audit(out, old)
        raise AuditError(
            f"{out} audits another {SWEEP_FILE} (the selection changed after the test range was read); keep it as a "
            "record, or move it away to audit the new selection"
        )
    cfg = Config.model_validate(data["config"])
    frames = frames if frames is not None else load_market(cfg.data)
    test = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us).test
    for f in data.get("folds", []):
        if TimeRange(**f["test"]).end_us > test.start_us:
            raise AuditError(f"{sweep_path}: inner fold {f['index']} reaches into the test range {test}")
    seeds: list[int] = [int(s) for s in data["seeds"]]
    cache: dict[str, Prepared] = {}
    rows: list[dict[str, Any]] = []
    per: PeriodData | None = None
    for t in data["trials"]:
        n_folds = len(t.get("fold_scores") or [])
        if n_folds == 0:
            rows.append(_row(f"trial{t['number']}", t, None, None, []))
            continue
        fold_test: list[list[float]] = []
        for k in range(n_folds):
            got = []
            for s in seeds:
                ret, per = _agent_test_return(
                    sweep_dir / f"trial{t['number']:04d}" / f"fold{k}_seed{s}", test, frames, cache
                )
                got.append(ret)
            fold_test.append(got)
        val = statistics.median(float(v) for v in t["fold_scores"])
        score = statistics.median(float(np.mean(g)) for g in fold_test)
        say(f"trial {t['number']}: validation {val:+.4%}, test {score:+.4%}, gap {val - score:+.4%}")
        rows.append(_row(f"trial{t['number']}", t, val, score, fold_test))
    if per is None:
        raise AuditError(f"{sweep_path}: no trial has a stored run to score on the test range")
    scores = data["selection"].get("scores", {})
    for b, actions in (("flat", flat_actions(per)), ("buy_and_hold", buy_and_hold_actions(per))):
        ret = float(backtest_actions(per, actions, cfg.env).metrics["total_return"])
        val_b = float(scores[b]) if b in scores else None
        gap = None if val_b is None else val_b - ret
        rows.append(
            {"name": b, "trial": None, "state": "baseline", "params": {}, "validation": val_b, "test": ret}
            | {"gap": gap, "fold_test": []}
        )
    result = _figures(rows, data)
    if file_sha256(sweep_path) != digest:
        raise AuditError(f"{sweep_path} changed while the audit ran; audit again once the sweep has finished")
    payload = {
        "format": "rltrade.sweep_audit",
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sweep_sha256": digest,
        "test": test.to_dict(),
        "test_steps": per.n_steps,
        "validation_steps": _validation_steps(sweep_dir, data, seeds),
        "seeds": seeds,
        "metric": "total return after costs (the config's fee); trial test = median over folds of the seed mean",
        "rows": rows,
        **result,
        "final_test": _final_test(data),
    }
    write_json_atomic(out, payload)
    return Audit(out, payload)


def _row(
    name: str, trial: Mapping[str, Any], val: float | None, test: float | None, fold_test: list[list[float]]
) -> dict[str, Any]:
    return {
        "name": name,
        "trial": int(trial["number"]),
        "state": trial.get("state"),
        "params": trial.get("params", {}),
        "validation": val,
        "test": test,
        "gap": None if val is None or test is None else val - test,
        "fold_test": fold_test,
    }


def _figures(rows: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> dict[str, Any]:
    """Spearman over the finished trials, the chosen trial's gap and the finished trials' median gap."""
    done = [r for r in rows if r["state"] == "complete" and r["gap"] is not None]
    rho = None
    if len(done) >= MIN_TRIALS_FOR_RANK:
        rho = spearman([float(r["validation"]) for r in done], [float(r["test"]) for r in done])
    best = data.get("best_trial")
    chosen = next((r for r in rows if r["trial"] is not None and r["trial"] == best), None)
    median_gap = statistics.median(float(r["gap"]) for r in done) if done else None
    selected = str(data["selection"].get("selected", ""))
    picked = next((r for r in rows if r["name"] == selected), None) if selected in BASELINES else chosen
    return {
        "spearman": rho,
        "n_ranked": len(done),
        "chosen_trial": best,
        "chosen_gap": None if chosen is None else chosen["gap"],
        "median_gap": median_gap,
        "selected": selected,
        "selected_test": None if picked is None else picked["test"],
        "selection_label": data["selection"].get("label"),
    }


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    rx = pl.Series(x, dtype=pl.Float64).rank("average").to_numpy()
    ry = pl.Series(y, dtype=pl.Float64).rank("average").to_numpy()
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _agent_test_return(
    run_dir: Path, test: TimeRange, frames: MarketFrames, cache: dict[str, Prepared]
) -> tuple[float, PeriodData]:
    """Total return after costs of ``run_dir``'s ``best.pt`` on ``test`` (and the period it ran on)."""
    bundle = open_bundle(run_dir)
    bundle.refuse_overlap(test, what=f"audit of {run_dir}")
    cfg = run_config(bundle)
    key = _prep_key(bundle, cfg)
    prep = cache.get(key)
    if prep is None:
        prep = prepare(cfg, frames=frames, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=run_dir / "cnn")
        cache[key] = prep
    per = period_in_span(prep, test)
    learner = load_learner(run_dir, prep.layout, cfg, which="best")
    return float(backtest_learner(learner, prep, per).metrics["total_return"]), per


def _prep_key(bundle: RunBundle, cfg: Config) -> str:
    """Key what a run's states and test period depend on: runs that agree share one :func:`prepare`.

    A run with CNN models of its own never shares (its CNN blocks are its own).
    """
    dump = cfg.model_dump(mode="json")
    for k in ("agent", "train", "seed", "selection"):
        dump.pop(k, None)
    own = str(bundle.root) if "cnn" in bundle.manifest else ""
    return json.dumps(
        {"cfg": dump, "stats": bundle.feature_stats.to_dict(), "splits": bundle.manifest["splits"], "cnn": own},
        sort_keys=True,
        default=str,
    )


def _final_test(data: Mapping[str, Any]) -> float | None:
    """Return the test return of the agent of the sweep's ``final/`` run (the chosen config on its own splits)."""
    final = data.get("final")
    if not final:
        return None
    agent = final.get("metrics", {}).get("agent")
    return None if agent is None else float(agent["total_return"])


def _validation_steps(sweep_dir: Path, data: Mapping[str, Any], seeds: Sequence[int]) -> list[int | None]:
    """Count the steps of each inner fold's selection window (as the first trial's first seed recorded it)."""
    first = next((t for t in data["trials"] if t.get("fold_scores")), None)
    out: list[int | None] = []
    if first is None:
        return out
    step_us = Config.model_validate(data["config"]).env.step.us
    for k in range(len(first["fold_scores"])):
        sel = read_selection(sweep_dir / f"trial{first['number']:04d}" / f"fold{k}_seed{seeds[0]}")
        win = None if sel is None else sel.get("selection_window")
        out.append(None if win is None else (int(win["end_us"]) - int(win["start_us"])) // step_us)
    return out
