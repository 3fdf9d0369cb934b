"""Tables of the report: the metrics table of ``eval/metrics.json`` and generic tables read from JSON.

Generic table files (``eval/regimes.json``, ``eval/ablation.json``, ``cnn/metrics.json``, or any
other a report section reads) may take any of three shapes; every row is a mapping of column name to
cell value:

1. ``{"title": str, "columns": [str, ...], "rows": [{column: value, ...}, ...], "note": str}``; only
   ``rows`` is required. Without ``columns``, the columns are the rows' keys in first-seen order, those
   holding text before those holding numbers (JSON writers often sort keys alphabetically).
2. a bare list of row mappings ``[{column: value, ...}, ...]``;
3. a mapping of row name to row mapping ``{name: {column: value, ...}, ...}`` (the shape of
   ``metrics.json``'s ``metrics``), read as rows with the name in a first column ``name``.

A cell value is a number, a string, a boolean, null, ``[lo, hi]`` (an interval), a list of strings
(joined with commas), or an estimate with its confidence interval
``{"value" | "mean" | "median" | "estimate": x, "lo" | "low" | "ci_low": a, "hi" | "high" | "ci_high": b}``
(rendered ``x [a, b]``). Any other value is shown as compact JSON.

Two files have their own readers: ``eval/metrics.json`` (:func:`metrics_table`: one row per policy, the
metrics' confidence intervals from ``<metric>_ci_low`` / ``<metric>_ci_high``, ``<metric>_ci`` or
``ci[<metric>]``, and the agent-vs-best-baseline comparison ``diff_vs_best_baseline`` in the note) and the
CNN stage's ``cnn/metrics.json`` (:func:`cnn_table`: ``{"timeframes": {tf: {"pooled": {predictor:
{metric: value}}}}, "skipped": {tf: reason}}``, one row per timeframe and predictor).

Cells are formatted here to strings; the HTML layer only escapes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_ESTIMATE_KEYS: Final = ("value", "mean", "median", "estimate")
_LOW_KEYS: Final = ("lo", "low", "ci_low")
_HIGH_KEYS: Final = ("hi", "high", "ci_high")


class TableFormatError(ValueError):
    """A table file does not have one of the shapes of the module docstring."""


@dataclass(frozen=True)
class Table:
    """A formatted table: header, rows of cell strings, which columns are numeric (right-aligned)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    note: str = ""


def _num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.3g}"
    return f"{x:.4g}"


def _interval(value: Any) -> tuple[Any, Any, Any] | None:
    """``(estimate or None, lo, hi)`` when ``value`` is an interval or an estimate with its interval."""
    if isinstance(value, Mapping):
        est = next((value[k] for k in _ESTIMATE_KEYS if k in value), None)
        lo = next((value[k] for k in _LOW_KEYS if k in value), None)
        hi = next((value[k] for k in _HIGH_KEYS if k in value), None)
        if lo is not None and hi is not None:
            return est, lo, hi
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return None, value[0], value[1]
    return None


def format_cell(value: Any, fmt: Any = None) -> str:
    """One cell as text; ``fmt`` (a callable float → str) formats numbers, default 4 significant digits."""
    number = fmt if fmt is not None else _num
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if fmt is None else number(float(value))
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "–"
    ci = _interval(value)
    if ci is not None:
        est, lo, hi = ci
        interval = f"[{format_cell(lo, fmt)}, {format_cell(hi, fmt)}]"
        return interval if est is None else f"{format_cell(est, fmt)} {interval}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _is_numeric(cells: Sequence[Any]) -> bool:
    present = [c for c in cells if c is not None]
    return bool(present) and all(
        (isinstance(c, int | float) and not isinstance(c, bool)) or _interval(c) is not None for c in present
    )


def table_from_json(raw: Any, *, title: str, where: str) -> Table:
    """Read a :class:`Table` from any shape of the module docstring; ``where`` names the source in errors."""
    note = ""
    columns: list[str] | None = None
    if isinstance(raw, Mapping) and "rows" in raw:
        title = str(raw.get("title") or title)
        note = str(raw.get("note") or "")
        if raw.get("columns") is not None:
            if not isinstance(raw["columns"], list) or not all(isinstance(c, str) for c in raw["columns"]):
                raise TableFormatError(f"{where}: 'columns' must be a list of column names")
            columns = list(raw["columns"])
        rows_raw = raw["rows"]
    elif isinstance(raw, Mapping) and raw and all(isinstance(v, Mapping) for v in raw.values()):
        rows_raw = [{"name": name, **row} for name, row in raw.items()]
    else:
        rows_raw = raw
    if not isinstance(rows_raw, list) or not all(isinstance(r, Mapping) for r in rows_raw):
        raise TableFormatError(
            f"{where}: expected rows as a list of {{column: value}} mappings (or {{'rows': [...]}}, or "
            f"{{name: {{column: value}}}}), got {type(rows_raw).__name__}"
        )
    if columns is None:
        seen = list(dict.fromkeys(k for r in rows_raw for k in r))
        # JSON writers often sort keys: put the columns that name a row (text) before the figures
        text = [c for c in seen if not _is_numeric([r.get(c) for r in rows_raw])]
        columns = text + [c for c in seen if c not in text]
    cells = [[r.get(c) for c in columns] for r in rows_raw]
    return Table(
        title=title,
        columns=tuple(columns),
        rows=tuple(tuple(format_cell(v) for v in row) for row in cells),
        numeric=tuple(_is_numeric([row[j] for row in cells]) for j in range(len(columns))),
        note=note,
    )


def load_table(path: Path, *, title: str) -> Table:
    """Read a table file (module docstring); :class:`TableFormatError` names the file when it is not one."""
    where = f"{path.parent.name}/{path.name}"  # relative to the run folder: messages end up in a shared report
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TableFormatError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return table_from_json(raw, title=title, where=where)


def _pct(x: float) -> str:
    return f"{x:+.2%}"


def _pct_plain(x: float) -> str:
    return f"{x:.1%}"


def _fixed(digits: int) -> Any:
    return lambda x: f"{x:,.{digits}f}"


METRIC_COLUMNS: Final = (
    ("total_return", "return", _pct),
    ("sharpe", "Sharpe", _fixed(2)),
    ("sortino", "Sortino", _fixed(2)),
    ("max_drawdown", "max drawdown", _pct_plain),
    ("n_trades", "trades", _fixed(0)),
    ("fees_paid", "fees ({quote})", _fixed(2)),
    ("exposure", "time in market", _pct_plain),
    ("turnover_per_day", "turnover / day", _fixed(1)),
    ("direction_accuracy", "direction accuracy", _pct_plain),
    ("win_rate", "win rate", _pct_plain),
)
"""``metrics.json`` key, column header, number format."""


def _metric_value(m: Mapping[str, Any], key: str) -> Any:
    """Read the metric with its confidence interval when the file has one.

    The interval is read from ``key`` as an estimate object, ``key_ci_low`` / ``key_ci_high``, ``key_ci`` as
    ``[lo, hi]``, or ``m["ci"][key]``.
    """
    value = m.get(key)
    ci = m.get(f"{key}_ci")
    if ci is None and f"{key}_ci_low" in m and f"{key}_ci_high" in m:
        ci = [m[f"{key}_ci_low"], m[f"{key}_ci_high"]]
    if ci is None and isinstance(m.get("ci"), Mapping):
        ci = m["ci"].get(key)
    if ci is not None and isinstance(value, int | float) and (bounds := _interval(ci)) is not None:
        return {"value": value, "lo": bounds[1], "hi": bounds[2]}
    return value


def metrics_table(raw: Mapping[str, Any], *, quote: str, where: str) -> Table:
    """Read the agent and every baseline of ``eval/metrics.json`` (``{"period": ..., "metrics": {name: {...}}}``)."""
    metrics = raw.get("metrics")
    if not isinstance(metrics, Mapping) or not all(isinstance(v, Mapping) for v in metrics.values()):
        raise TableFormatError(f"{where}: expected {{'metrics': {{policy: {{metric: value}}}}}}")
    names = sorted(metrics, key=lambda n: (n != "agent", list(metrics).index(n)))
    rows = []
    for name in names:
        m = metrics[name]
        rows.append((name, *(format_cell(_metric_value(m, key), fmt) for key, _, fmt in METRIC_COLUMNS)))
    annualisation = next((m.get("annualisation") for m in metrics.values() if m.get("annualisation")), None)
    has_ci = any(_metric_value(m, key) != m.get(key) for m in metrics.values() for key, _, _ in METRIC_COLUMNS)
    note = "PnL after fees, spread and short carry; the position is closed at the end of the period."
    if annualisation:
        note += f" Sharpe and Sortino annualised as {annualisation}."
    if has_ci:
        level = next(
            (m["sharpe_ci_level"] for m in metrics.values() if isinstance(m.get("sharpe_ci_level"), float)), None
        )
        note += (
            f" Brackets: {level:.0%} confidence intervals" if level is not None else " Brackets: confidence intervals"
        )
        boot = raw.get("bootstrap")
        note += (
            f" ({boot['method']}, {boot.get('n_resamples', '?')} resamples)."
            if isinstance(boot, Mapping) and "method" in boot
            else "."
        )
    else:
        note += " No confidence intervals in this file."
    diff = raw.get("diff_vs_best_baseline")
    if isinstance(diff, Mapping) and isinstance(diff.get("sharpe_diff"), int | float):
        ci = _interval(diff)
        interval = f" [{format_cell(ci[1], _fixed(2))}, {format_cell(ci[2], _fixed(2))}]" if ci is not None else ""
        note += (
            f" Agent's Sharpe minus the best baseline's ({diff.get('baseline', '?')}): "
            f"{diff['sharpe_diff']:,.2f}{interval}."
        )
    sel = raw.get("selection")
    if isinstance(sel, Mapping) and isinstance(sel.get("label"), str):
        note = f"{sel['label'][:1].upper()}{sel['label'][1:]}. " + note
    return Table(
        title="Agent and baselines on the evaluation period",
        columns=("policy", *(label.format(quote=quote) for _, label, _ in METRIC_COLUMNS)),
        rows=tuple(rows),
        numeric=(False, *(True for _ in METRIC_COLUMNS)),
        note=note,
    )


CNN_COLUMNS: Final = (
    ("n", "windows", _fixed(0)),
    ("accuracy", "accuracy", _pct_plain),
    ("balanced_accuracy", "balanced accuracy", _pct_plain),
    ("direction_accuracy", "direction accuracy", _pct_plain),
    ("log_loss", "log loss", _fixed(4)),
)


def cnn_table(raw: Any, *, where: str) -> Table:
    """Out-of-sample figures of the run's CNN stage (module docstring), or a generic table file."""
    if isinstance(raw, Mapping) and "rows" in raw:
        return table_from_json(raw, title="CNN out-of-sample accuracy", where=where)
    per_tf = raw.get("timeframes") if isinstance(raw, Mapping) else None
    if not isinstance(per_tf, Mapping):
        raise TableFormatError(f"{where}: expected {{'timeframes': {{tf: {{'pooled': ...}}}}, 'skipped': ...}}")
    rows = []
    for tf, entry in per_tf.items():
        pooled = entry.get("pooled") if isinstance(entry, Mapping) else None
        if not isinstance(pooled, Mapping):
            raise TableFormatError(f"{where}: timeframe {tf!r} has no 'pooled' figures")
        for predictor, m in pooled.items():
            label = "CNN" if predictor == "model" else f"{predictor} (baseline)"
            rows.append((str(tf), label, *(format_cell(m.get(k), fmt) for k, _, fmt in CNN_COLUMNS)))
    skipped = raw.get("skipped") or {}
    note = "Walk-forward: every window is predicted by a model fitted only on data before it; pooled over the folds."
    if skipped:
        note += " Skipped: " + "; ".join(f"{tf}: {why}" for tf, why in skipped.items())
    return Table(
        title="CNN out-of-sample accuracy",
        columns=("timeframe", "predictor", *(label for _, label, _ in CNN_COLUMNS)),
        rows=tuple(rows),
        numeric=(False, False, *(True for _ in CNN_COLUMNS)),
        note=note,
    )


def scorecard_table(raw: Mapping[str, Any], *, where: str) -> Table:
    """Build the table of the five success metrics of ``scorecard.json``, one row each.

    Parameters
    ----------
    raw
        The parsed ``scorecard.json`` (:mod:`rltrade.training.scorecard`).
    where
        The file's path, named in errors.

    Returns
    -------
    Table
        Metric, verdict, figure (with any alarm), design target and definition.

    Raises
    ------
    TableFormatError
        When ``raw`` has no ``metrics`` list of rows with those fields.
    """
    rows = raw.get("metrics")
    keys = ("name", "status", "figure", "target", "definition")
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and all(k in r for k in keys) for r in rows):
        raise TableFormatError(f"{where}: expected {{'metrics': [{{{', '.join(map(repr, keys))}: ...}}, ...]}}")
    cells = tuple(
        (
            str(r["name"]),
            str(r["status"]),
            str(r["figure"]) + (f" — {r['alarm']}" if r.get("alarm") else ""),
            str(r["target"]),
            f"{r['definition']} (from {r.get('source', '?')})",
        )
        for r in rows
    )
    note = (
        f"Scored against the run's own layout ({raw.get('layout', '?')}, {raw.get('layout_size', 0):,} features), "
        f"{raw.get('market', '?')} market; evaluation: {raw.get('evaluation', '?')}."
    )
    columns = ("metric", "verdict", "figure", "design target", "definition")
    return Table("Success metrics (scorecard)", columns, cells, (False,) * 5, note)
