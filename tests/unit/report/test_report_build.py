"""Collecting a run folder into report data, the point caps of every chart, and the self-contained page."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rltrade.report.charts import equity_figure, n_points, price_figure, training_figure
from rltrade.report.curves import drawdown
from rltrade.report.data import Limits, ReportData, collect
from rltrade.report.html import render, write_report
from rltrade.report.market import ReportDataError
from rltrade.types import Regime
from tests.support.report_runs import make_report_run

SMALL = Limits(max_points=400, max_candles=40, max_trades=25)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report_run(tmp_path_factory.mktemp("report") / "run", tables=True)


@pytest.fixture(scope="module")
def small(run: Path) -> ReportData:
    return collect(run, limits=SMALL)


def test_every_chart_respects_the_point_cap(small: ReportData) -> None:
    assert small.price is not None and small.training is not None
    figures = {
        "price": price_figure(small.price, small.trades, quote=small.quote),
        "equity": equity_figure(small.equity, quote=small.quote, price=small.price),
        "training": training_figure(small.training),
    }
    for name, fig in figures.items():
        assert 0 < n_points(fig) <= SMALL.max_points, name
    assert small.price.candles.open_us_K.size <= SMALL.max_candles
    assert small.trades.entry_us_N.size == min(SMALL.max_trades, small.trades.n_total)


def test_decimated_equity_keeps_the_extremes_and_the_final_value(run: Path, small: ReportData) -> None:
    steps = pl.read_parquet(run / "eval" / "agent_steps.parquet")
    equity = steps["equity"].to_numpy()
    line = small.equity.equity
    assert line.n_source == equity.size > line.x.size
    assert line.y.min() == equity.min() and line.y.max() == equity.max()
    assert line.y[-1] == equity[-1] and line.x[-1] == steps["time_us"][-1]
    assert small.equity.drawdown.y.min() == drawdown(equity).min() < 0


def test_buy_and_hold_is_recomputed_on_the_same_clock(run: Path) -> None:
    data = collect(run, limits=Limits(max_points=20_000))  # room for every step: nothing decimated
    hold = data.equity.hold_equity
    assert hold is not None and hold.n_source == hold.x.size
    np.testing.assert_array_equal(hold.x, data.equity.equity.x)
    expected = json.loads((run / "eval" / "metrics.json").read_text())["metrics"]["buy_and_hold"]["total_return"]
    assert hold.y[-1] / hold.y[0] - 1 == pytest.approx(expected, rel=1e-9)


def test_market_view_has_pivots_and_both_regime_sources(small: ReportData) -> None:
    p = small.price
    assert p is not None
    assert p.pivots and p.pivots[0].time_us_P.size > 0
    assert set(np.unique(p.pivots[0].time_us_P)) <= set(p.candles.open_us_K.tolist())
    assert p.true_regime_K is not None and p.true_regime_K.shape == p.regime_K.shape
    assert set(np.unique(p.true_regime_K).tolist()) <= {int(r) for r in Regime}


def test_training_curves_and_optional_tables(small: ReportData) -> None:
    assert small.training is not None
    assert {c.name for c in small.training.curves} == {"train/loss", "train/q_mean", "validation/total_return"}
    assert small.training.all_zero == ("reward/cnn",)
    assert small.regimes.table is not None and small.regimes.table.title == "Per regime"
    assert small.regimes.table.rows[0] == ("range", "900", "0.01 [-0.02, 0.03]")
    assert small.ablation.table is not None and small.ablation.table.rows[0][1] == "eth_ticks"
    assert small.cnn.table is not None and small.cnn.table.rows[0][:2] == ("1m", "CNN")


def test_missing_inputs_are_reported_not_drawn(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "eval" / "regimes.json").unlink()
    (copy / "eval" / "ablation.json").write_text('{"rows": 3}')
    shutil.rmtree(copy / "cnn")
    shutil.rmtree(copy / "tensorboard")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["data"]["eth/1m"]["sha256"] = "0" * 64  # the market no longer matches the run
    (copy / "manifest.json").write_text(json.dumps(manifest))
    data = collect(copy, limits=SMALL)
    assert data.price is None and data.equity.hold_equity is None
    assert len(data.warnings) == 1 and "differs from what the run was trained on (eth/1m)" in data.warnings[0]
    # Hints name the run folder as given when relative; an absolute path is not written into a shared report.
    assert data.regimes.table is None and "rltrade backtest --run RUN_DIR" in data.regimes.message
    assert data.ablation.table is None and "Could not read ablation.json" in data.ablation.message
    assert data.cnn.table is None and "No CNNs were trained in this run" in data.cnn.message
    assert data.training is None
    assert data.scorecard.table is None and "rltrade scorecard RUN_DIR" in data.scorecard.message
    page = render(data)
    assert str(tmp_path) not in page, "the report embeds a local path"
    assert "Not computed — run" in page and "No TensorBoard scalars" in page
    assert 'class="warning"' in page and page.count('class="plotly-graph-div"') == 1  # equity only
    (copy / "eval" / "agent_steps.parquet").unlink()
    with pytest.raises(ReportDataError, match=r"agent_steps\.parquet is missing: evaluate the run first"):
        collect(copy)


class _Refs(HTMLParser):
    """Every tag's attributes and the text of every script, for the self-containment checks."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str | None]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


def test_the_page_is_self_contained_and_written_atomically(run: Path, tmp_path: Path) -> None:
    out = write_report(run, tmp_path / "sub" / "r.html", limits=SMALL)
    assert out == tmp_path / "sub" / "r.html"
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temporary file left behind
    assert out.stat().st_mode & 0o777 == 0o644
    page = out.read_text()
    refs = _Refs()
    refs.feed(page)
    assert not [a for a in refs.attrs if a[1] in ("src", "href") and a[2] and not a[2].startswith("#")]
    assert not [a for a in refs.attrs if a[0] in ("link", "iframe", "img", "object", "embed")]
    plotly_js = [text for attrs, text in refs.scripts if attrs.get("id") == "plotly-js"]
    assert len(plotly_js) == 1 and len(plotly_js[0]) > 1_000_000  # plotly.js inline, once
    assert page.count("plotly.js v") == 1
    rest = page.replace(plotly_js[0], "")
    assert not re.search(r"https?://", rest), re.findall(r".{40}https?://.{40}", rest)[:3]
    assert len(re.findall(r'class="plotly-graph-div"', page)) == 3
    # Shared as one file: no local path of the run (absolute or its temporary parents) is embedded.
    assert str(run.resolve().parent) not in rest and str(tmp_path) not in rest


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    from rltrade.training.bundle import BundleError

    with pytest.raises(BundleError, match="not a run folder"):
        write_report(tmp_path)


def test_cli_writes_the_report_and_maps_errors(run: Path, tmp_path: Path) -> None:
    import rltrade.cli.report  # noqa: F401  (registers `rltrade report` until the package imports it)
    from rltrade.cli import main

    out = tmp_path / "cli.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert out.stat().st_size > 1_000_000
    assert main(["report", str(tmp_path / "nothing")]) == 3  # not a run folder: inconsistent, as elsewhere
