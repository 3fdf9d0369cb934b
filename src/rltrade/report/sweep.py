"""The sweep report: one offline HTML file for a sweep folder.

It holds the trials table, the PBO, the selection, parameter importances and a parallel-coordinate plot (plotly,
its JavaScript inlined, so the file opens without a network).

Reads ``<sweep>/sweep.json`` and the Optuna study in ``<sweep>/study.journal`` (``rltrade sweep`` writes both), and
``<sweep>/audit.json`` when ``rltrade audit`` wrote one for this ``sweep.json`` (its SHA-256 matches): the
selection-bias table, every trial's validation and test return and their gap (:mod:`rltrade.training.audit`).
Parameter importances are Optuna's default (fANOVA) over the finished trials; with fewer than two finished trials,
or no parameter that varied, the plot is replaced by a note saying so.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any


def write_sweep_report(sweep_dir: Path, out: Path | None = None) -> Path:
    """Write ``<sweep>/sweep_report.html`` (or ``out``) and return its path."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    data = json.loads((sweep_dir / "sweep.json").read_text())
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "study.journal")))
    study = optuna.load_study(study_name="rltrade-sweep", storage=storage)
    parts = [f"<h1>Sweep {html.escape(str(sweep_dir))}</h1>", _summary(data), _table(data), _audit(sweep_dir)]
    first = True
    for title, make in (
        ("Parameter importance (fANOVA over finished trials)", optuna.visualization.plot_param_importances),
        ("Parallel coordinates (objective: median validation return over folds)", _parallel),
    ):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        try:
            fig = make(study)
        except (ValueError, RuntimeError) as exc:
            parts.append(f"<p>not available: {html.escape(str(exc))}</p>")
            continue
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False))
        first = False
    path = out if out is not None else sweep_dir / "sweep_report.html"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>rltrade sweep</title></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    return path


def _parallel(study: Any) -> Any:
    import optuna

    if sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) < 2:
        raise ValueError("fewer than two finished trials")
    return optuna.visualization.plot_parallel_coordinate(study)


def _summary(data: dict[str, Any]) -> str:
    sel = data.get("selection") or {}
    pbo = data.get("pbo")
    pbo_text = "not computed (too few finished trials or steps)" if pbo is None else f"{pbo['pbo']:.3f}"
    final = data.get("final")
    rows = [
        ("selection", sel.get("label", "-")),
        ("probability of backtest overfitting (CSCV)", pbo_text),
        ("best trial", str(data.get("best_trial"))),
        ("wall time", f"{data.get('wall_s', 0.0):.0f} s"),
    ]
    if final:
        m = final["metrics"]
        rows.append(
            (
                "test range (evaluated once)",
                ", ".join(f"{k} {v['total_return']:+.3%}" for k, v in m.items()),
            )
        )
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _table(data: dict[str, Any]) -> str:
    trials = data.get("trials", [])
    names = sorted({k for t in trials for k in t.get("params", {})})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["trial", "state", *names, "objective", "re-run"])
    body = []
    for t in trials:
        vals = [str(t["number"]), t["state"], *(_fmt(t["params"].get(n)) for n in names)]
        vals += [_fmt(t.get("value"), pct=True), _fmt(t.get("rerun_value"), pct=True)]
        body.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>")
    return f"<h2>Trials</h2><table><tr>{head}</tr>{''.join(body)}</table>"


def _audit(sweep_dir: Path) -> str:
    """Render the selection-bias audit's table, or a note that none was made for this ``sweep.json``."""
    path = sweep_dir / "audit.json"
    head = "<h2>Selection-bias audit (every trial once on test, after the selection was frozen)</h2>"
    digest = hashlib.sha256((sweep_dir / "sweep.json").read_bytes()).hexdigest()
    data = json.loads(path.read_text()) if path.is_file() else None
    if not isinstance(data, dict) or data.get("sweep_sha256") != digest:
        return head + "<p>not made for this selection: run <code>rltrade audit SWEEP_DIR</code></p>"
    rho = data.get("spearman")
    rows = [
        ("Spearman(validation, test)", "-" if rho is None else f"{rho:+.3f} over {data.get('n_ranked')} trials"),
        ("chosen trial", str(data.get("chosen_trial"))),
        ("chosen trial's gap", _fmt(data.get("chosen_gap"), pct=True)),
        ("median gap (finished trials)", _fmt(data.get("median_gap"), pct=True)),
        ("test steps", str(data.get("test_steps"))),
        ("validation window steps (per fold)", str(data.get("validation_steps"))),
    ]
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    cols = ("policy", "state", "validation", "test", "gap = validation − test")
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(v)}</td>"
            for v in (r["name"], str(r["state"]), *(_fmt(r[k], pct=True) for k in ("validation", "test", "gap")))
        )
        + "</tr>"
        for r in data.get("rows", [])
    )
    table = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>" + body
    return f"{head}<table>{summary}</table><table>{table}</table>"


def _fmt(v: Any, *, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:+.3%}" if pct else f"{v:.4g}"
    return str(v)
