"""``docs/RESULTS.md`` from walk-forward folders: the verdict, per-fold and pooled tables, per regime.

Everything comes from each folder's ``walkforward.json`` (its ``verdict``, :mod:`rltrade.training.verdict`, and
its ``config``); nothing is typed by hand. The verdict sentence is chosen by rule from the pooled paired
interval of the agent's Sharpe minus buy-and-hold's:

* ``edge``: the interval lies above 0 and the one against flat too;
* ``worse``: the interval lies below 0 (the agent is worse than buy-and-hold, with confidence);
* ``no edge shown``: otherwise (the interval includes 0).

Each sentence also says in how many folds the agent's test return trails buy-and-hold's.

The ``selected per fold`` column is the policy the fold's selection chose among its seeds' selected policies,
flat and buy-and-hold (:func:`rltrade.training.verdict.fold_selection`). A ``walkforward.json`` written before
that selection existed gets it from its run folders (their ``selection.json``, ``selection_detail.npz`` and
``eval/returns.parquet``); a fold whose runs lack them reads "not recorded".
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rltrade.config import FEE_TIERS

WALKFORWARD_FILE: Final = "walkforward.json"

NAMES: Final = {
    "agent": "agent (seeds' mean)",
    "selected": "selected per fold",
    "ensemble": "seed ensemble",
    "supervised": "supervised",
    "flat": "flat",
    "buy_and_hold": "buy & hold",
}


class ResultsError(ValueError):
    """A folder is not a walk-forward folder with a verdict (the message says which and what to do)."""


def load_walkforward(folder: Path) -> dict[str, Any]:
    """Read ``folder/walkforward.json``; :class:`ResultsError` when it is missing or has no verdict."""
    path = Path(folder) / WALKFORWARD_FILE
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: pass folders written by `rltrade walkforward`")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON ({exc}); re-run the walk-forward") from None
    if not isinstance(doc, dict) or doc.get("format") != "rltrade.walkforward":
        raise ResultsError(f"{path} is not a walk-forward file")
    if not doc.get("verdict"):
        raise ResultsError(
            f"{path} has no verdict (written before verdicts existed, or every job failed); re-run the walk-forward"
        )
    return doc


def verdict_sentence(verdict: Mapping[str, Any]) -> str:
    """Return the plain verdict sentence of one walk-forward (module docstring)."""
    agg = verdict["aggregate"]
    bh, flat = agg["agent_vs"]["buy_and_hold"], agg["agent_vs"]["flat"]
    n, trails = agg["n_folds"], agg["agent_trails"]["buy_and_hold"]
    ci = f"[{bh['ci_low']:+.2f}, {bh['ci_high']:+.2f}]"
    folds = f"the agent trails buy-and-hold in {trails} of {n} folds"
    level = f"{bh['ci_level']:.0%}"
    if bh["ci_low"] > 0 and flat["ci_low"] > 0:
        return (
            f"**Edge:** the agent beats buy-and-hold and flat over the concatenated test returns: Sharpe difference "
            f"vs buy-and-hold {bh['sharpe_diff']:+.2f}, {level} CI {ci} above 0; {folds}."
        )
    if bh["ci_high"] < 0:
        return (
            f"**No edge: the agent is worse than buy-and-hold.** {folds.capitalize()}; the aggregate Sharpe "
            f"difference {bh['sharpe_diff']:+.2f} has {level} CI {ci}, below 0."
        )
    return (
        f"**No edge shown:** {folds}; the aggregate Sharpe difference vs buy-and-hold "
        f"{bh['sharpe_diff']:+.2f} has {level} CI {ci}, which includes 0."
    )


def _day(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d")


def _minute(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _cell(p: Mapping[str, Any] | None, *, missing: str = "–") -> str:
    if p is None:
        return missing
    return f"{p['total_return']:+.1%} / {p['sharpe']:+.2f} [{p['sharpe_ci_low']:+.2f}, {p['sharpe_ci_high']:+.2f}]"


def _diff(d: Mapping[str, Any]) -> str:
    return f"{d['sharpe_diff']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def _selected(doc: Mapping[str, Any]) -> str:
    counts = doc.get("aggregate", {}).get("overall", {}).get("selected", {})
    return ", ".join(f"{name} in {n} job{'s' if n != 1 else ''}" for name, n in counts.items()) or "unknown"


def _costs(cfg: Mapping[str, Any]) -> str:
    env = cfg.get("env", {})
    tier = FEE_TIERS.get(env.get("fee_tier") or "")
    named = f" (fee tier {tier.name}: {tier.what}; {tier.dated})" if tier is not None else ""
    funding = env.get("funding_file")
    carry = (
        f"longs pay and shorts receive the real USDⓈ-M funding rates (the reverse when negative) of "
        f"{Path(funding).name}"
        if funding
        else f"shorts pay a {float(env.get('borrow_annual_rate', 0.0)):.1%} a year borrow rate"
    )
    return (
        f"taker fee {float(env.get('taker_fee', 0.0)):.3%} per side{named}, half spread {env.get('half_spread_bps')} "
        f"bps, impact {env.get('impact_bps')} bps; {carry}"
    )


def _market(cfg: Mapping[str, Any]) -> str:
    """Say which market the folder traded: the venue (spot or USDⓈ-M perpetual) and where the prices came from."""
    data = cfg.get("data")
    if not data:
        return "not recorded in walkforward.json"
    exchange = str(data.get("exchange", ""))
    venue = (
        f"{exchange.removesuffix('usdm').capitalize()} USDⓈ-M perpetual futures"
        if exchange.endswith("usdm")
        else f"{exchange.capitalize()} spot"
    )
    source = (
        "the embedded synthetic market"
        if data.get("source") == "synthetic"
        else f"store {data.get('store')} (exchange folder {exchange})"
    )
    return f"{data.get('symbol')} (reference {data.get('reference')}), {venue}; source {source}"


def _span(doc: Mapping[str, Any]) -> str:
    """Say how long the folds' ranges are (fold 0's) and the decision span the folds cover."""
    folds = doc.get("folds") or []
    if not folds:
        return ""
    first, last = folds[0], folds[-1]

    def days(r: Mapping[str, int] | None) -> str:
        return "–" if r is None else f"{(r['end_us'] - r['start_us']) / 86_400e6:.1f} d"

    return (
        f"; decisions {_minute(first['train']['start_us'])} → {_minute(last['test']['end_us'])} UTC; "
        f"fold 0 fits on {days(first['train'])} of training and {days(first['validation'])} of validation "
        f"(checkpoint choice, then confirmation against flat and buy-and-hold) and tests on the next "
        f"{days(first['test'])}"
    )


def with_selection(folder: Path, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``doc``'s verdict, with the selection per fold computed from its run folders when it lacks it."""
    from rltrade.training.metrics import steps_per_year
    from rltrade.training.verdict import VerdictError, with_fold_selection
    from rltrade.types import Timeframe

    v: dict[str, Any] = dict(doc["verdict"])
    if all("selection" in f for f in v["folds"]):
        return v
    cfg = doc.get("config", {})
    sel = cfg.get("selection", {})

    def resolve(row: Mapping[str, Any]) -> Path:
        stored = Path(str(row.get("run_dir", "")))
        return stored if stored.is_dir() else Path(folder) / "runs" / str(row.get("name", stored.name))

    try:
        per_year = steps_per_year(Timeframe(cfg.get("env", {}).get("step", "1s")).us)
        return with_fold_selection(
            v,
            [r for r in doc.get("jobs", []) if "run_dir" in r],
            per_year,
            confirm_resamples=int(sel.get("n_resamples", 1000)),
            confirm_level=float(sel.get("level", 0.95)),
            resolve=resolve,
        )
    except (VerdictError, OSError, KeyError, ValueError):
        return v


def _selected_cell(f: Mapping[str, Any]) -> str:
    sel = f.get("selection")
    if not isinstance(sel, dict):
        return "not recorded"
    return f"{sel['selected']}: {_cell(f['policies'].get('selected'))}"


def section(folder: Path, doc: Mapping[str, Any]) -> list[str]:
    """Return the Markdown lines of one walk-forward folder."""
    v, cfg = with_selection(folder, doc), doc.get("config", {})
    policies = [p for p in NAMES if p in v["aggregate"]["policies"] or p == "selected"]
    env, train = cfg.get("env", {}), cfg.get("train", {})
    lines = [
        f"## {Path(folder).name}",
        "",
        verdict_sentence(v),
        "",
        f"- run folder: {folder}",
        f"- market: {_market(cfg)}; {env.get('step')} clock",
        f"- costs: {_costs(cfg)}",
        f"- budget: {train.get('total_steps')} steps × {train.get('n_envs')} envs per job; seeds per fold "
        f"{len(doc.get('seeds', []))}",
        f"- folds: {v['aggregate']['n_folds']} ({'expanding' if doc.get('expanding') else 'rolling'}){_span(doc)}",
        f"- each cell: test return / annualised Sharpe [{v['n_resamples']}-resample stationary-bootstrap 95 % CI]",
        f"- the agent row is the trained agent as it trades; the runs' do-no-harm selection (validation, then "
        f"confirmation) picked: {_selected(doc)}",
        "- selected per fold: one choice per fold among the seeds' selected policies, flat and buy-and-hold, on "
        "validation then confirmation (the cell names it): "
        + (
            ", ".join(f"fold {f['fold']} {f['selection']['selected']}" for f in v["folds"] if f.get("selection"))
            or "not recorded"
        ),
        "- seed ensemble (Q-values averaged over a fold's seeds): "
        + ("a row below" if "ensemble" in policies else "none (it needs at least 2 seeds per fold)"),
        "",
        "| fold | test range | market | " + " | ".join(NAMES[p] for p in policies) + " | agent − B&H Sharpe |",
        "|" + "---|" * (len(policies) + 4),
    ]
    for f in v["folds"]:
        cells = [_selected_cell(f) if p == "selected" else _cell(f["policies"].get(p)) for p in policies]
        lines.append(
            f"| {f['fold']} | {_day(f['start_us'])} → {_day(f['end_us'])} | {f['market']} | "
            + " | ".join(cells)
            + f" | {_diff(f['agent_vs']['buy_and_hold'])} |"
        )
    agg = v["aggregate"]
    lines.append(
        "| **all** | concatenated | | "
        + " | ".join(
            _cell(agg["policies"].get(p), missing="not recorded" if p == "selected" else "–") for p in policies
        )
        + f" | {_diff(agg['agent_vs']['buy_and_hold'])} |"
    )
    lines += [
        "",
        f"Agent − flat Sharpe over the concatenated returns: {_diff(agg['agent_vs']['flat'])}; the agent's return "
        f"trails flat in {agg['agent_trails']['flat']} of {agg['n_folds']} folds.",
        "",
    ]
    for source, rows in v["regimes"].items():
        if not rows or all(r["regime"] == "UNKNOWN" for r in rows):
            continue
        shown = [p for p in policies if any(p in r["policies"] for r in rows)]  # regimes have no per-fold choice
        what = (
            "fold's market, ex post (buy & hold > +20 %: bull, < −20 %: bear)"
            if source == "market"
            else "classifier regime per step"
        )
        lines += [
            f"Per regime ({what}): return / Sharpe of the pooled steps",
            "",
            "| regime | steps | " + " | ".join(NAMES[p] for p in shown) + " |",
            "|" + "---|" * (len(shown) + 2),
        ]
        for r in rows:
            cells = [
                f"{r['policies'][p]['total_return']:+.1%} / {r['policies'][p]['sharpe']:+.2f}"
                if p in r["policies"]
                else "–"
                for p in shown
            ]
            lines.append(f"| {r['regime']} | {r['n_steps']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def results_markdown(folders: Sequence[Path], *, command: str) -> str:
    """Return the whole ``RESULTS.md`` of the walk-forward ``folders``, naming the command that wrote it."""
    if not folders:
        raise ResultsError("give at least one walk-forward folder")
    docs = [(Path(f), load_walkforward(Path(f))) for f in folders]
    lines = [
        "# Results",
        "",
        f"Written by `{command}` from the walk-forward folders below; do not edit by hand (re-run the command).",
        "Every figure is PnL after the costs stated; intervals are paired where they compare two policies.",
        "",
    ]
    for folder, doc in docs:
        lines += section(folder, doc)
    return "\n".join(lines).rstrip() + "\n"
