"""The report as one self-contained HTML file: :func:`write_report`.

The page holds plotly.js once, inline in ``<head>`` (no CDN, nothing fetched: it opens offline and
in a mail attachment), then the sections in reading order: warnings, run summary, metrics of the agent
and the baselines, the scorecard of the five success metrics, the price chart, equity, results per regime,
ablation, training curves, CNN accuracy.
Every chart is a ``<div>`` plus a small inline script calling ``Plotly.newPlot``; tables are plain HTML
with escaped cells. The file is written atomically (:func:`rltrade.data.atomic.atomic_write`).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from pathlib import Path
from typing import BinaryIO, Final

import plotly
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from rltrade.data.atomic import atomic_write
from rltrade.report.charts import CHART_CONFIG, equity_figure, price_figure, training_figure
from rltrade.report.data import Limits, Progress, ReportData, TableSection, collect, span
from rltrade.report.tables import Table

CSS: Final = """
:root { --ink: #1f2933; --muted: #52606d; --line: #d9dde2; --band: #f5f7fa; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink);
       font: 14px/1.5 Inter, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; padding-bottom: 8px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; border-bottom: 2px solid var(--line); }
table.metrics tbody tr:first-child td { font-weight: 600; background: #eef3fb; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
table.summary th { background: none; border-bottom: 1px solid var(--line); width: 170px; color: var(--muted); }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 0; }
.missing { color: var(--muted); font-style: italic; background: var(--band); padding: 10px 14px;
           border-left: 3px solid var(--line); }
.warning { background: #fff4e5; border-left: 4px solid #f08c00; padding: 10px 14px; margin: 8px 0; }
.scroll { max-height: 560px; overflow: auto; }
.scroll th { position: sticky; top: 0; }
.scroll td { overflow-wrap: anywhere; max-width: 360px; }
code { font: 12.5px ui-monospace, Menlo, Consolas, monospace; background: #eef1f5; padding: 1px 5px;
       border-radius: 3px; font-style: normal; color: var(--ink); }
.chart { border: 1px solid var(--line); border-radius: 4px; padding: 4px; margin: 8px 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; border-top: 1px solid var(--line);
         padding-top: 8px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(table: Table, *, show_title: bool = True, css_class: str = "") -> str:
    """Render a table as HTML; numeric columns right-aligned."""

    def cls(j: int) -> str:
        return ' class="num"' if table.numeric[j] else ""

    head = "".join(f"<th{cls(j)}>{_e(c)}</th>" for j, c in enumerate(table.columns))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(j)}>{_e(v)}</td>" for j, v in enumerate(row)) + "</tr>" for row in table.rows
    )
    title = f"<h3>{_e(table.title)}</h3>" if show_title else ""
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    attr = f' class="{css_class}"' if css_class else ""
    return f"{title}<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _with_code(text: str) -> str:
    """Escaped ``text`` with its `backticked` commands set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _section_table(section: TableSection) -> str:
    if section.table is None:
        return f'<p class="missing">{_with_code(section.message)}</p>'
    return f'<div class="scroll">{table_html(section.table, show_title=False)}</div>'


def figure_html(fig: go.Figure, div_id: str) -> str:
    """Render a figure as a ``div`` and its inline plotting script (plotly.js itself is in the page head)."""
    inner = fig.to_html(
        full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id, config=CHART_CONFIG
    )
    return f'<div class="chart">{inner}</div>'


def _summary(data: ReportData) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data.summary)
    return f'<table class="summary"><tbody>{rows}</tbody></table>'


def render(data: ReportData) -> str:
    """Render the whole page as a string (module docstring)."""
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, body)
    sections.append(("summary", "Run", _summary(data)))
    sections.append(("metrics", "Agent vs baselines", table_html(data.metrics, show_title=False, css_class="metrics")))
    sections.append(("scorecard", "Success metrics (scorecard)", _section_table(data.scorecard)))
    if data.price is not None:
        p = data.price
        agree = ""
        if p.true_regime_K is not None:
            known = p.regime_K >= 0
            share = float((p.regime_K[known] == p.true_regime_K[known]).mean()) if known.any() else float("nan")
            agree = f" The classifier agrees with the synthetic market's true regime on {share:.0%} of the candles."
        note = (
            f"{p.candles.open_us_K.size:,} candles aggregated from {p.source_tf.value} bars. Pivots are computed on "
            "these candles; a pivot is confirmed (known) only after the next candles close — hover for the time. "
            "Shading: the regime classifier's label at each candle's open (what the agent could know)." + agree
        )
        body = (
            figure_html(price_figure(p, data.trades, quote=data.quote), "chart-price")
            + f'<p class="note">{_e(note)}</p>'
        )
    else:
        body = '<p class="missing">The price chart needs the run\'s market data; see the warning above.</p>'
    sections.append(("price", "Price, pivots, trades and regimes", body))
    eq_note = (
        f"Equity after every cost, starting at {data.equity.initial_equity:,.0f} {data.quote}; lines decimated to "
        f"{data.equity.equity.x.size:,} of {data.equity.equity.n_source:,} points keeping every bucket's extremes."
    )
    sections.append(
        (
            "equity",
            "Equity, drawdown and position",
            figure_html(equity_figure(data.equity, quote=data.quote, price=data.price), "chart-equity")
            + f'<p class="note">{_e(eq_note)}</p>',
        )
    )
    sections.append(("regimes", "Results per market regime", _section_table(data.regimes)))
    sections.append(("ablation", "Ablation", _section_table(data.ablation)))
    if data.training is not None and data.training.curves:
        body = figure_html(training_figure(data.training), "chart-training")
        if data.training.all_zero:
            body += f'<p class="note">Always 0, not drawn: {_e(", ".join(data.training.all_zero))}.</p>'
    else:
        body = '<p class="missing">No TensorBoard scalars in this run folder (tensorboard/).</p>'
    sections.append(("training", "Training curves", body))
    sections.append(("cnn", "CNN accuracy", _section_table(data.cnn)))

    warnings = "".join(f'<div class="warning">{_with_code(w)}</div>' for w in data.warnings)
    nav = "".join(f'<a href="#{a}">{_e(h)}</a>' for a, h, _ in sections)
    body_html = "".join(f'<section id="{a}"><h2>{_e(h)}</h2>{b}</section>' for a, h, b in sections)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(data.title)}</title><style>{CSS}</style>"
        f'<script id="plotly-js" type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><main><header><h1>{_e(data.title)}</h1>"
        f'<p class="sub">Evaluation period {_e(span(data.period))} · report generated {now}</p>'
        f"<nav>{nav}</nav></header>{warnings}{body_html}"
        f"<footer>Generated by rltrade from run {_e(data.run_dir.resolve().name)}. Self-contained: plotly.js "
        f"{_e(plotly.__version__)} (python) is embedded; the file needs no network.</footer>"
        "</main></body></html>\n"
    )


def write_report(
    run_dir: Path, out: Path | None = None, *, limits: Limits = Limits(), progress: Progress | None = None
) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` (default ``<run>/report.html``); returns the path.

    ``progress(done, total, what)`` is called as the stages go by.
    """
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / "report.html"
    total = 7

    def step(done: int, _total: int, what: str) -> None:
        if progress is not None:
            progress(done, total, what)

    data = collect(run_dir, limits=limits, progress=step)
    step(5, total, "drawing the charts")
    page = render(data).encode("utf-8")
    step(6, total, "writing the file")

    def write(fh: BinaryIO) -> None:
        # mkstemp creates 0600 files; a report is meant to be shared (set before the atomic rename)
        os.fchmod(fh.fileno(), 0o644)
        fh.write(page)

    atomic_write(target, write)
    step(7, total, f"wrote {target}")
    return target
