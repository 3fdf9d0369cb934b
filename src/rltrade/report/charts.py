"""Plotly figures of the report, one per chart section, with one palette and one style.

* :func:`price_figure`: candles of the evaluation period, Williams pivots per level, the agent's entries
  and exits, shading by classified regime, and a strip comparing classified and (synthetic) true regimes;
* :func:`equity_figure`: equity after costs of the agent and buy-and-hold, drawdown, and the position;
* :func:`training_figure`: one small panel per TensorBoard scalar.

Times are drawn in UTC. Every figure draws at most ``Limits.max_points`` points (the data layer has
decimated the lines; candles, pivots and trades are capped there too).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rltrade.report.curves import EquityView, Line, TradeMarks, TrainingCurves
from rltrade.report.decimate import label_runs
from rltrade.report.market import PriceView
from rltrade.types import Regime

FONT: Final = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"
INK: Final = "#1f2933"
GRID: Final = "#e4e7eb"
AGENT: Final = "#1f5fbf"
HOLD: Final = "#7b8794"
UP: Final = "#1b8a5a"
DOWN: Final = "#c8372d"
EXIT: Final = "#323f4b"
PIVOT_COLORS: Final = ("#a48fd6", "#8a63d2", "#6f42c1", "#55259f", "#3d1478", "#24094f")
REGIME_COLORS: Final = {
    -1: "#d9dde2",
    int(Regime.TREND_UP): "#2f9e44",
    int(Regime.TREND_DOWN): "#e03131",
    int(Regime.RANGE): "#1c7ed6",
    int(Regime.VOLATILE): "#f08c00",
}
REGIME_NAMES: Final = {-1: "unknown (warm-up)", **{int(r): r.name.lower().replace("_", " ") for r in Regime}}
SHADE_OPACITY: Final = 0.09
CHART_CONFIG: Final = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png", "scale": 2}}
"""Plotly config every figure is rendered with."""


def _times(us: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]")


def _x_range(start_us: int, end_us: int) -> list[str]:
    """Return an explicit time range, so plotly adds no padding beyond the period."""
    return [str(t) for t in _times([start_us, end_us])]


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 16, "color": INK}},
        font={"family": FONT, "size": 12, "color": INK},
        height=height,
        margin={"l": 70, "r": 24, "t": 96, "b": 48},
        legend={"orientation": "h", "x": 0.0, "y": 1.0, "yanchor": "bottom", "font": {"size": 11}},
        hovermode="closest",
        paper_bgcolor="white",
        plot_bgcolor="white",
    )
    fig.update_xaxes(gridcolor=GRID, linecolor="#9aa5b1", ticks="outside", showline=True)
    fig.update_yaxes(gridcolor=GRID, linecolor="#9aa5b1", ticks="outside", showline=True, zeroline=False)
    return fig


def _regime_shading(fig: go.Figure, start_us_K: npt.NDArray[np.int64], bar_us: int, regime_K: Any, yref: str) -> None:
    """One translucent rectangle per run of equal classified regime, and a legend swatch per regime seen."""
    runs = label_runs(regime_K)
    edges = _times(np.concatenate([start_us_K, [start_us_K[-1] + bar_us]])) if start_us_K.size else None
    if edges is None:
        return
    for s, e, label in zip(runs.start_R.tolist(), runs.stop_R.tolist(), runs.label_R.tolist(), strict=True):
        if label < 0:
            continue
        fig.add_shape(
            type="rect",
            xref="x",
            yref=yref,
            x0=edges[s],
            x1=edges[e],
            y0=0,
            y1=1,
            fillcolor=REGIME_COLORS[label],
            opacity=SHADE_OPACITY,
            line_width=0,
            layer="below",
        )
    for label in sorted(set(runs.label_R.tolist()) - {-1}):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"symbol": "square", "size": 12, "color": REGIME_COLORS[label], "opacity": 0.45},
                name=f"regime: {REGIME_NAMES[label]}",
                legendgroup="regime",
                hoverinfo="skip",
            )
        )


def _regime_strip(view: PriceView) -> go.Heatmap:
    rows = [("classified", view.regime_K)]
    if view.true_regime_K is not None:
        rows.append(("true (synthetic)", view.true_regime_K))
    z = np.stack([r for _, r in rows]).astype(np.float64)
    # discrete colours: z in -1..3 maps to (z + 1) / 4, each value owning one fifth of the scale
    scale = []
    for i, code in enumerate(range(-1, 4)):
        scale += [[i / 5, REGIME_COLORS[code]], [(i + 1) / 5, REGIME_COLORS[code]]]
    names = np.vectorize(REGIME_NAMES.__getitem__)(z.astype(int))
    return go.Heatmap(
        x=_times(view.candles.open_us_K + view.bar_us // 2),
        y=[name for name, _ in rows],
        z=z,
        zmin=-1.5,
        zmax=3.5,
        colorscale=scale,
        showscale=False,
        text=names,
        hovertemplate="%{x|%H:%M:%S} %{y}: %{text}<extra></extra>",
        name="regime",
        xgap=0,
        ygap=2,
    )


def _bar_label(bar_us: int) -> str:
    seconds = bar_us // 1_000_000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def price_figure(view: PriceView, trades: TradeMarks, *, quote: str) -> go.Figure:
    """Candles, pivots, trades and regimes of the evaluation period (module docstring)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.86, 0.14], vertical_spacing=0.04)
    c = view.candles
    fig.add_trace(
        go.Candlestick(
            x=_times(c.open_us_K),
            open=c.open_K,
            high=c.high_K,
            low=c.low_K,
            close=c.close_K,
            name=f"{view.symbol} {_bar_label(view.bar_us)}",
            increasing={"line": {"color": UP, "width": 1}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN, "width": 1}, "fillcolor": DOWN},
            opacity=0.85,
        ),
        row=1,
        col=1,
    )
    for p in view.pivots:
        if p.time_us_P.size == 0:
            continue
        kind = np.where(p.is_high_P, "swing high", "swing low")
        fig.add_trace(
            go.Scatter(
                x=_times(p.time_us_P + view.bar_us // 2),
                y=p.price_P,
                mode="markers",
                marker={
                    "symbol": "circle-open",
                    "size": 5 + 3 * p.level,
                    "color": PIVOT_COLORS[min(p.level, len(PIVOT_COLORS) - 1)],
                    "line": {"width": 1.5 + 0.25 * p.level},
                },
                name=f"pivots level {p.level}",
                customdata=np.stack([kind, _times(p.confirm_us_P).astype(str)], axis=-1),
                hovertemplate=f"level {p.level} %{{customdata[0]}}<br>%{{y:,.2f}} {quote}"
                "<br>confirmed %{customdata[1]}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    pnl_text = np.char.add(
        np.char.add(np.round(trades.pnl_N, 2).astype(str), f" {quote} PnL, fees "),
        np.round(trades.fees_N, 2).astype(str),
    )
    for is_long, name, symbol, color in (
        (True, "long entry", "triangle-up", UP),
        (False, "short entry", "triangle-down", DOWN),
    ):
        sel = trades.is_long_N == is_long
        fig.add_trace(
            go.Scatter(
                x=_times(trades.entry_us_N[sel]),
                y=trades.entry_price_N[sel],
                mode="markers",
                marker={"symbol": symbol, "size": 10, "color": color, "line": {"color": INK, "width": 0.75}},
                name=name,
                text=pnl_text[sel],
                hovertemplate=f"{name} %{{x|%H:%M:%S}}<br>%{{y:,.2f}} {quote}<br>%{{text}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    # A reversal's exit is the next trade's entry: mark only exits to flat, so markers do not pile up.
    to_flat = ~np.isin(trades.exit_us_N, trades.entry_us_N)
    fig.add_trace(
        go.Scatter(
            x=_times(trades.exit_us_N[to_flat]),
            y=trades.exit_price_N[to_flat],
            mode="markers",
            marker={"symbol": "x-thin", "size": 8, "color": EXIT, "line": {"color": EXIT, "width": 1.5}},
            name="exit to flat",
            text=pnl_text[to_flat],
            hovertemplate=f"exit %{{x|%H:%M:%S}}<br>%{{y:,.2f}} {quote}<br>%{{text}}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(_regime_strip(view), row=2, col=1)
    _regime_shading(fig, c.open_us_K, view.bar_us, view.regime_K, "y domain")
    shown = (
        f"{trades.entry_us_N.size:,} of {trades.n_total:,} trades (largest |PnL|)"
        if trades.entry_us_N.size < trades.n_total
        else f"{trades.n_total:,} trades"
    )
    _style(
        fig,
        f"{view.symbol}: {_bar_label(view.bar_us)} candles, Williams pivots by level, {shown}, regimes",
        height=680,
    )
    fig.update_xaxes(rangeslider_visible=False, range=_x_range(c.open_us_K[0], c.open_us_K[-1] + view.bar_us))
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_yaxes(title_text=f"price ({quote})", tickformat=",.2f", row=1, col=1)
    fig.update_yaxes(showgrid=False, ticks="", row=2, col=1)
    return fig


def _line(
    line: Line,
    color: str,
    *,
    width: float = 1.6,
    shape: str = "linear",
    name: str | None = None,
    **extra: Any,
) -> go.Scatter:
    return go.Scatter(
        x=_times(line.x),
        y=line.y,
        mode="lines",
        name=name or line.name,
        line={"color": color, "width": width, "shape": shape},
        **extra,
    )


def equity_figure(view: EquityView, *, quote: str, price: PriceView | None) -> go.Figure:
    """Equity and drawdown of the agent vs buy-and-hold, and the agent's position (module docstring)."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.56, 0.26, 0.18], vertical_spacing=0.05)
    money = f"%{{y:,.2f}} {quote}"
    fig.add_trace(_line(view.equity, AGENT, legendgroup="agent", hovertemplate=f"agent {money}<extra></extra>"), 1, 1)
    if view.hold_equity is not None:
        fig.add_trace(
            _line(
                view.hold_equity,
                HOLD,
                width=1.3,
                legendgroup="hold",
                hovertemplate=f"buy & hold {money}<extra></extra>",
            ),
            1,
            1,
        )
    fig.add_hline(y=view.initial_equity, line={"color": "#9aa5b1", "width": 1, "dash": "dot"}, row=1, col=1)
    pct = "%{y:.2f} %"
    dd = Line(view.drawdown.name, view.drawdown.x, 100 * view.drawdown.y, view.drawdown.n_source)
    fig.add_trace(
        _line(
            dd,
            AGENT,
            width=1.2,
            fill="tozeroy",
            fillcolor="rgba(31, 95, 191, 0.15)",
            legendgroup="agent",
            showlegend=False,
            hovertemplate=f"agent drawdown {pct}<extra></extra>",
        ),
        2,
        1,
    )
    if view.hold_drawdown is not None:
        hd = Line(
            view.hold_drawdown.name, view.hold_drawdown.x, 100 * view.hold_drawdown.y, view.hold_drawdown.n_source
        )
        fig.add_trace(
            _line(
                hd,
                HOLD,
                width=1.2,
                legendgroup="hold",
                showlegend=False,
                hovertemplate=f"buy & hold drawdown {pct}<extra></extra>",
            ),
            2,
            1,
        )
    fig.add_trace(
        _line(
            view.position,
            EXIT,
            width=1.0,
            shape="hv",
            name="agent position",
            hovertemplate="position %{y:+d}<extra></extra>",
        ),
        3,
        1,
    )
    if price is not None:
        _regime_shading(fig, price.candles.open_us_K, price.bar_us, price.regime_K, "paper")
    _style(fig, f"Equity after costs ({quote}): agent vs buy-and-hold, drawdown, position", height=620)
    fig.update_layout(hovermode="x unified")
    fig.update_yaxes(title_text=f"equity ({quote})", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown (%)", ticksuffix=" %", row=2, col=1)
    fig.update_yaxes(
        title_text="position", tickvals=[-1, 0, 1], ticktext=["short", "flat", "long"], range=[-1.3, 1.3], row=3, col=1
    )
    fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
    fig.update_xaxes(range=_x_range(int(view.equity.x[0]), int(view.equity.x[-1])))
    return fig


def _curve_color(tag: str) -> str:
    group = tag.split("/", 1)[0]
    return {"train": AGENT, "validation": UP, "reward": PIVOT_COLORS[3]}.get(group, HOLD)


def training_figure(curves: TrainingCurves, *, cols: int = 3) -> go.Figure:
    """One panel per training curve (x: environment step), coloured by group (train / validation / reward)."""
    n = len(curves.curves)
    rows = max(1, math.ceil(n / cols))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[c.name for c in curves.curves],
        horizontal_spacing=0.07,
        vertical_spacing=min(0.3 / rows + 0.04, 0.12),
    )
    for i, c in enumerate(curves.curves):
        few = c.x.size <= 40
        fig.add_trace(
            go.Scatter(
                x=c.x,
                y=c.y,
                mode="lines+markers" if few else "lines",
                line={"color": _curve_color(c.name), "width": 1.4},
                marker={"size": 5},
                name=c.name,
                showlegend=False,
                hovertemplate=f"{c.name}<br>step %{{x:,}}: %{{y:.4g}}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    _style(fig, "Training curves (TensorBoard scalars; x: environment steps)", height=90 + 210 * rows)
    fig.update_annotations(font={"size": 12, "color": INK})
    for j in range(cols):
        fig.update_xaxes(title_text="step", row=rows, col=j + 1)
    fig.update_xaxes(tickformat="~s")
    fig.update_yaxes(tickformat="~g")
    return fig


def n_points(fig: go.Figure) -> int:
    """Points a figure draws: the x positions of every trace (a heatmap counts its cells)."""
    total = 0
    for trace in fig.data:
        z = getattr(trace, "z", None)
        if z is not None:
            total += int(np.asarray(z).size)
        elif getattr(trace, "x", None) is not None:
            total += sum(v is not None for v in np.asarray(trace.x, dtype=object).ravel())
    return total
