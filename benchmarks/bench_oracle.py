"""Oracle capture over many synthetic paths (issue 13, item 3): what the planted signal is worth after costs.

For each of ``--paths`` synthetic markets of the demo preset (seeds 0, 1, …; everything else as the demo),
on the test range of the demo splits, with the demo's fills and costs:

* **oracle**: the perfect-foresight DP (``training.oracle.oracle_actions``), the bound of every policy;
* **expected-move oracle**: the DP on the planted expected moves only, backtested on the realised prices;
  a lucky path can beat it, so it is quoted as a mean over the paths;
* **threshold oracle**: the previous oracle, a threshold rule on the announced move (``training.baselines``);
* buy-and-hold, for scale.

Capture is the expected-move oracle's realised log growth as a share of the perfect-foresight oracle's
(``log(1 + r_expected) / log(1 + r_oracle)``) per path; the table prints each path and the mean ± standard
error over paths. No learner is trained: a few seconds a path.

    python -m benchmarks.bench_oracle             # 20 paths
    python -m benchmarks.bench_oracle --quick     # 3 paths
"""

from __future__ import annotations

import argparse
import math
import statistics

from rltrade.data.align import BarArrays
from rltrade.data.market import load_market
from rltrade.data.splits import split_span
from rltrade.data.synthetic import SignalTruth
from rltrade.env.prices import price_period
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions, threshold_oracle_actions
from rltrade.training.oracle import expected_move_oracle_actions, oracle_actions
from rltrade.training.pipeline import decision_span
from rltrade.training.presets import load_with_preset
from rltrade.types import Timeframe

POLICIES = ("oracle", "expected_move_oracle", "threshold_oracle", "buy_and_hold")


def one_path(seed: int) -> dict[str, float]:
    cfg = load_with_preset(None, "demo", {"data": {"synthetic": {"seed": seed}}})
    frames = load_market(cfg.data)
    truth = frames.extras["signal_truth"]
    assert isinstance(truth, SignalTruth)
    test = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us).test
    per = price_period(BarArrays.from_frame(frames.bars["eth"][cfg.env.step], Timeframe(cfg.env.step)), test, cfg.env)
    actions = {
        "oracle": oracle_actions(per, cfg.env),
        "expected_move_oracle": expected_move_oracle_actions(per, truth, cfg.env),
        "threshold_oracle": threshold_oracle_actions(per, truth, cfg.env),
        "buy_and_hold": buy_and_hold_actions(per),
    }
    out = {name: float(backtest_actions(per, a, cfg.env).metrics["total_return"]) for name, a in actions.items()}
    out["capture"] = math.log1p(out["expected_move_oracle"]) / math.log1p(out["oracle"])
    out["steps"] = float(per.n_steps)
    return out


def mean_se(values: list[float]) -> str:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):+.4%} ± {se:.4%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 paths instead of 20")
    parser.add_argument("--paths", type=int, default=None, help="number of synthetic paths (default 20)")
    args = parser.parse_args()
    n = args.paths if args.paths is not None else (3 if args.quick else 20)
    print(f"demo preset, {n} synthetic paths (seeds 0..{n - 1}), test range, total return after costs")
    print(f"{'seed':>4} {'steps':>6} " + " ".join(f"{p:>21}" for p in POLICIES) + f" {'capture':>8}")
    rows = []
    for seed in range(n):
        r = one_path(seed)
        rows.append(r)
        cells = " ".join(f"{r[p]:>+21.4%}" for p in POLICIES)
        print(f"{seed:>4} {r['steps']:>6.0f} {cells} {r['capture']:>8.3f}", flush=True)
    print("mean ± standard error over paths (total return; log growth, which one lucky path cannot dominate):")
    for p in POLICIES:
        logs = [math.log1p(r[p]) for r in rows]
        se = statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else float("nan")
        print(f"  {p:<21} {mean_se([r[p] for r in rows])}; log growth {statistics.fmean(logs):+.4f} ± {se:.4f}")
    caps = [r["capture"] for r in rows]
    se = statistics.stdev(caps) / math.sqrt(len(caps)) if len(caps) > 1 else float("nan")
    print(f"  capture (expected-move / perfect-foresight log growth): {statistics.fmean(caps):.4f} ± {se:.4f}")
    beat = sum(r["expected_move_oracle"] > r["threshold_oracle"] for r in rows)
    print(f"  expected-move oracle above the threshold oracle on {beat} of {n} paths")


if __name__ == "__main__":
    main()
