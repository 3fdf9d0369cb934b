"""Greedy backtests of the agent: steps per second of ``backtest_learner`` against a per-step loop.

Every validation backtest in training, the test backtest, the do-no-harm confirmation and each walk-forward
fold run the agent greedily over a period, one decision at a time (the account block depends on the
previous decisions). Contenders, on the same prepared market and the same untrained network, interleaved:

* **per step** (the baseline, and what the code did before): the plain loop, ``learner.act(obs, greedy=True)``
  on each step's observation with the network in training mode, so every call switches it to eval mode
  and back (a walk over every submodule, twice) and runs the whole network on one state;
* **per step, eval mode**: the same loop with the network left in eval mode (``learner.evaluating()``);
* **encoded chunks** (``backtest_learner`` now): eval mode once, and the structured encoder run once per
  gathered chunk of 1,024 states (``GreedyPolicy.encode``); each step appends its account and runs the
  head. The benchmark checks that the three give the same steps.

The ``demo`` preset's agent and layout (CNN stage off) on the demo's synthetic market, a 1 h period; with
``--preset full`` the 15,588-feature layout and the ``full`` agent.

Run: ``.venv/bin/python -m benchmarks.bench_backtest [--quick] [--preset full]``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from benchmarks._util import quick_parser, report_ratio, time_interleaved
from rltrade.data.splits import TimeRange
from rltrade.training.backtest import BacktestResult, backtest_policy
from rltrade.training.bundle import new_learner
from rltrade.training.evaluate import backtest_learner
from rltrade.training.pipeline import prepare
from rltrade.training.presets import load_with_preset
from rltrade.types import US_PER_SECOND


def main() -> None:
    parser = quick_parser(__doc__ or "")
    parser.add_argument("--preset", default="demo", choices=("demo", "full"), help="the agent and layout")
    args = parser.parse_args()
    minutes = 10 if args.quick else 60
    days = {"demo": 30, "full": 330} if args.quick else {"demo": 60, "full": 400}
    data: dict[str, Any] = {"synthetic": {"history_days": days[args.preset], "tick_days": 0.25}}
    cfg = load_with_preset(None, args.preset, {"data": data, "cnn": {"enabled": False}})
    torch.set_num_threads(cfg.train.torch_threads)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    start = prep.test_period.clock.time_of(np.array([0]))[0]
    period = prep.period(TimeRange(int(start), int(start) + minutes * 60 * US_PER_SECOND))
    # An untrained net mostly picks one action everywhere, which would compare little: take the first agent
    # seed whose greedy actions vary over the period's first 300 steps (the same seed every run).
    head = prep.period(TimeRange(int(start), int(start) + 300 * cfg.env.step.us))
    for seed in range(32):
        cfg = cfg.model_copy(update={"agent": cfg.agent.model_copy(update={"seed": seed})})
        learner = new_learner(cfg, prep.layout)
        if backtest_learner(learner, prep, head).trades.height > 2:
            break
    print(
        f"{args.preset} preset: {prep.layout.size:,} features, agent seed {seed}, "
        f"{period.n_steps:,} steps per backtest (prepared in {time.perf_counter() - t0:.0f} s); "
        f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    def per_step(obs: npt.NDArray[np.float32]) -> npt.ArrayLike:
        return learner.act(obs, 0, greedy=True)

    def run_per_step() -> BacktestResult:
        assert learner.online.training  # each act switches to eval mode and back, as before
        return backtest_policy(prep.builder, period, per_step, cfg.env)

    def run_per_step_eval() -> BacktestResult:
        with learner.evaluating():
            return backtest_policy(prep.builder, period, per_step, cfg.env)

    def run_encoded() -> BacktestResult:
        return backtest_learner(learner, prep, period)

    timings, results = time_interleaved(
        {"encoded chunks": run_encoded, "per step, eval mode": run_per_step_eval, "per step": run_per_step},
        repeats=max(3, args.repeats),
    )
    steps = [r.steps for r in results.values() if isinstance(r, BacktestResult)]
    same = all(s.equals(steps[0]) for s in steps)
    trades = results["per step"].trades.height if isinstance(results["per step"], BacktestResult) else 0
    print(f"the three backtests took the same {trades:,} trades step for step: {same}")
    encoded, eval_mode, baseline = timings
    report_ratio(eval_mode, baseline, items=period.n_steps, unit="steps")
    report_ratio(encoded, baseline, items=period.n_steps, unit="steps")
    for t in timings:
        print(f"  {t.name}: {t.median_s / period.n_steps * 1e3:.3f} ms per step")


if __name__ == "__main__":
    main()
