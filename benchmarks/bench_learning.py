"""Learning acceptance and convergence (issue 6): does the demo agent learn the planted signal, and how fast?

On the demo preset's synthetic market (BTC leads ETH by 5 s), for each seed:

* **agent**: ``rltrade train`` with the demo preset, backtested greedily on the held-out test range;
* **basic**: the same run on the ``basic`` layout (~100 features: recent ETH and BTC returns);
* **oracle**: the expected-move oracle, the best plan after costs on the planted expected moves
  (``training.oracle``; the perfect-foresight oracle is far out of reach and not a target);
* baselines: flat, buy-and-hold, momentum, on the same period with the same fills and costs.

Acceptance: each seed's agent captures ≥ 50 % of the oracle's after-fee test return, and the worst seed
beats the best baseline (flat, buy-and-hold, momentum, the basic agent of that seed). A negative control
trains on a market without the planted signal and must not beat flat after fees.

Convergence: every ``eval_every`` steps the learner is backtested on the test range (measurement only:
checkpoint choice still uses the validation range); the wall time and env steps at which the agent first
reaches 50 % of the oracle's return are reported for the demo agent, the basic agent and
stable-baselines3's DQN on the same env (single env, its default MLP, same reward), each under the same
wall-clock cap; "not reached" is a result.

    python -m benchmarks.bench_learning            # 3 seeds, negative control, SB3 (about an hour on 2 cores)
    python -m benchmarks.bench_learning --quick    # 1 seed, shorter runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._sb3 import learn_evaluated, sb3_dqn
from rltrade.agent.learner import DQNLearner
from rltrade.config import Config
from rltrade.data.synthetic import SignalTruth
from rltrade.training.backtest import backtest_actions
from rltrade.training.baselines import buy_and_hold_actions, flat_actions, momentum_actions
from rltrade.training.bundle import load_learner
from rltrade.training.evaluate import backtest_learner
from rltrade.training.loop import train
from rltrade.training.oracle import expected_move_oracle_actions
from rltrade.training.pipeline import Prepared
from rltrade.training.presets import deep_merge, load_with_preset


@dataclass
class Curve:
    """Test-range return after costs at each evaluation: (wall s since start, env steps, return)."""

    name: str
    points: list[tuple[float, int, float]] = field(default_factory=list)

    def reached(self, level: float) -> tuple[float, int] | None:
        for wall, steps, ret in self.points:
            if ret >= level:
                return wall, steps
        return None


def config(seed: int, *, layout: str = "demo", strength: float | None = None, quick: bool = False) -> Config:
    over: dict[str, Any] = {"seed": seed, "features": {"layout": {"name": layout}}}
    if strength is not None:
        over = deep_merge(over, {"data": {"synthetic": {"signal": {"strength": strength}}}})
    if quick:
        over = deep_merge(over, {"train": {"total_steps": 6_000, "eval_every": 1_000, "checkpoint_every": 1_000}})
    return load_with_preset(None, "demo", over)


def baselines(prep: Prepared, cfg: Config) -> dict[str, float]:
    per = prep.test_period
    out = {
        "flat": backtest_actions(per, flat_actions(per), cfg.env).metrics["total_return"],
        "buy_and_hold": backtest_actions(per, buy_and_hold_actions(per), cfg.env).metrics["total_return"],
        "momentum": backtest_actions(per, momentum_actions(per), cfg.env).metrics["total_return"],
    }
    truth = prep.frames.extras.get("signal_truth")
    if isinstance(truth, SignalTruth):
        actions = expected_move_oracle_actions(per, truth, cfg.env)
        out["oracle"] = backtest_actions(per, actions, cfg.env).metrics["total_return"]
    return {k: float(v) for k, v in out.items()}


def run_agent(
    cfg: Config, root: Path, name: str, wall_cap_s: float
) -> tuple[dict[str, float], Curve, dict[str, float]]:
    """Train one run; its test metrics (best checkpoint), its convergence curve and the baselines."""
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_wall_s": wall_cap_s})})
    curve = Curve(name)
    t0 = time.perf_counter()
    seen: dict[str, Any] = {"eval_s": 0.0}

    def on_eval(step: int, learner: DQNLearner, prep: Prepared) -> None:
        e0 = time.perf_counter()
        ret = float(backtest_learner(learner, prep, prep.test_period).metrics["total_return"])
        # The benchmark's own test backtests are not training time: the curve's clock leaves them out.
        curve.points.append((e0 - t0 - seen["eval_s"], step * cfg.train.n_envs, ret))
        seen["eval_s"] += time.perf_counter() - e0
        seen["prep"] = prep

    run_dir = root / name
    train(cfg, run_dir, log=lambda _: None, on_eval=on_eval)
    prep: Prepared = seen["prep"]
    learner = load_learner(run_dir, prep.layout, cfg, which="best")
    test = backtest_learner(learner, prep, prep.test_period).metrics
    return (
        {"total_return": float(test["total_return"]), "n_trades": float(test["n_trades"])},
        curve,
        baselines(prep, cfg),
    )


def run_sb3(cfg: Config, agent_run: Path, wall_cap_s: float, eval_every: int) -> Curve:
    """stable-baselines3 DQN (default MLP) on the same env and reward, under the same wall-clock cap."""
    from rltrade.training.pipeline import prepare

    prep = prepare(cfg, cnn_dir=agent_run / "cnn")  # the agent run's CNNs: the same state
    # Its buffer as the agent's: SB3's default (1M full states) would need ~26 GB here.
    model = sb3_dqn(cfg, prep, buffer_size=cfg.agent.buffer_size, optimize_memory_usage=False)
    sb3 = learn_evaluated(
        model,
        cfg,
        prep,
        prep.test_period,
        total_env_steps=10**9,
        every_env_steps=eval_every,
        exclude_eval_time=True,
        wall_cap_s=wall_cap_s,
    )
    return Curve("sb3_dqn", sb3.points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--wall-cap", type=float, default=None, help="seconds per run (default 900, quick 240)")
    ap.add_argument("--no-sb3", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = range(args.seeds if args.seeds is not None else (1 if args.quick else 3))
    cap = args.wall_cap if args.wall_cap is not None else (240.0 if args.quick else 900.0)
    rows: list[dict[str, Any]] = []
    curves: list[Curve] = []
    with tempfile.TemporaryDirectory(prefix="bench_learning_") as tmp:
        root = Path(tmp)
        for s in seeds:
            agent, curve, base = run_agent(config(s, quick=args.quick), root, f"agent_{s}", cap)
            basic, bcurve, _ = run_agent(config(s, layout="basic", quick=args.quick), root, f"basic_{s}", cap)
            rows.append(
                {
                    "seed": s,
                    "agent": agent["total_return"],
                    "trades": agent["n_trades"],
                    "basic": basic["total_return"],
                    **base,
                }
            )
            curves += [curve, bcurve]
        control, _, cbase = run_agent(config(0, strength=0.0, quick=args.quick), root, "control", cap)
        if not args.no_sb3:
            cfg0 = config(0, quick=args.quick)
            curves.append(run_sb3(cfg0, root / "agent_0", cap, cfg0.train.eval_every * cfg0.train.n_envs))

    print("\nheld-out test range, total return after costs (demo preset)")
    print(
        f"{'seed':>4} {'agent':>9} {'trades':>7} {'oracle':>9} {'capture':>8} {'basic':>9} "
        f"{'flat':>7} {'b&h':>9} {'momentum':>9}"
    )
    for r in rows:
        cap_ratio = r["agent"] / r["oracle"] if r.get("oracle") else float("nan")
        print(
            f"{r['seed']:>4} {r['agent']:>+9.4%} {r['trades']:>7.0f} {r['oracle']:>+9.4%} {cap_ratio:>8.2f} "
            f"{r['basic']:>+9.4%} {r['flat']:>+7.2%} {r['buy_and_hold']:>+9.4%} {r['momentum']:>+9.4%}"
        )
    captures = [r["agent"] / r["oracle"] for r in rows if r.get("oracle")]
    worst = min(r["agent"] for r in rows)
    best_base = max(max(r["flat"], r["buy_and_hold"], r["momentum"], r["basic"]) for r in rows)
    print(
        f"capture of the oracle: median {statistics.median(captures):.2f}, min {min(captures):.2f} (target ≥ 0.50 each)"
    )
    print(
        f"worst seed {worst:+.4%} vs best baseline {best_base:+.4%}: "
        f"{'beats' if worst > best_base else 'does NOT beat'} it"
    )
    print(
        f"negative control (no planted signal): agent {control['total_return']:+.4%} vs flat {cbase['flat']:+.2%} "
        f"({'does not beat flat: ok' if control['total_return'] <= 0 else 'BEATS flat: suspicious'})"
    )

    print(f"\nconvergence to 50 % of the oracle's test return (cap {cap:.0f} s per run)")
    level = {f"agent_{r['seed']}": 0.5 * r["oracle"] for r in rows} | {
        f"basic_{r['seed']}": 0.5 * r["oracle"] for r in rows
    }
    level["sb3_dqn"] = 0.5 * rows[0]["oracle"]
    for c in curves:
        hit = c.reached(level[c.name])
        best = max((p[2] for p in c.points), default=float("nan"))
        where = f"{hit[0]:7.0f} s {hit[1]:>9,} env steps" if hit else "not reached"
        print(f"  {c.name:<10} {where:<30} best test return {best:+.4%} after {len(c.points)} evaluations")
    print(json.dumps({"rows": rows, "curves": {c.name: c.points for c in curves}}, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
