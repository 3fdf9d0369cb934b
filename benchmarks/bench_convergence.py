"""Convergence comparison runs for the scorecard (issue 13, item 6): writes ``RUN_DIR/convergence.json``.

For a finished run (``rltrade run`` / ``rltrade train`` then ``rltrade backtest``: its ``eval/metrics.json``
holds the target, half the expected-move oracle's return on the validation slice the loop backtests), train
the two comparison learners on the same market, costs, reward and budget (the run's ``total_steps ×
n_envs`` env steps) and record when each first reaches that target on the same validation slice:

* **basic**: the run's config with the ``basic`` layout (~100 features), trained by ``rltrade``'s own loop
  (its TensorBoard validation curve, read by ``training.scorecard.time_to_target``);
* **sb3_dqn**: stable-baselines3's DQN (its default MLP) on the run's ``TradingEnv`` and state (the run's
  CNNs), a 50k buffer with ``optimize_memory_usage``, backtested greedily on the validation slice every
  ``eval_every × n_envs`` env steps; its wall clock counts those backtests, as the loop's does.

``rltrade scorecard RUN_DIR`` then gives convergence a verdict. ``--steps N`` lowers the comparison budget
(loop steps) for a quick look; the file records the budget, and a smaller one than the run's is not a fair
comparison.

    python -m benchmarks.bench_convergence --run runs/demo
    python -m benchmarks.bench_convergence --run runs/demo --steps 2000   # plumbing check, not a result
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from benchmarks._sb3 import learn_evaluated, sb3_dqn
from rltrade.config import Config
from rltrade.training.bundle import open_bundle, write_json_atomic
from rltrade.training.loop import train
from rltrade.training.pipeline import prepare
from rltrade.training.scorecard import TARGET_SHARE, first_reached, time_to_target


def basic_learner(cfg: Config, out: Path, target: float) -> dict[str, Any]:
    basic = cfg.model_copy(
        update={
            "features": cfg.features.model_copy(
                update={"layout": cfg.features.layout.model_copy(update={"name": "basic"})}
            )
        }
    )
    train(basic, out, log=lambda _: None)
    t = basic.train
    hit = time_to_target(out / "tensorboard", target, n_envs=t.n_envs, total_steps=t.total_steps)
    if hit is None:
        raise RuntimeError(f"{out} has no validation curve: set a validation split")
    return hit


def sb3_learner(cfg: Config, run: Path, target: float) -> dict[str, Any]:
    bundle = open_bundle(run)
    prep = prepare(cfg, stats=bundle.feature_stats, splits=bundle.fold(), cnn_dir=run / "cnn")
    val = prep.validation_slice()
    if val is None:
        raise RuntimeError(f"{run} has no validation range")
    budget = cfg.train.total_steps * cfg.train.n_envs
    every = cfg.train.eval_every * cfg.train.n_envs
    curve = learn_evaluated(sb3_dqn(cfg, prep), cfg, prep, val, total_env_steps=budget, every_env_steps=every)
    return first_reached(curve.points, target, budget)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished run folder with eval/metrics.json")
    ap.add_argument("--steps", type=int, default=None, help="comparison budget in loop steps (default: the run's)")
    ap.add_argument("--no-sb3", action="store_true")
    args = ap.parse_args()
    run: Path = args.run
    cfg = open_bundle(run).config
    torch.set_num_threads(cfg.train.torch_threads)
    targets = json.loads((run / "eval" / "metrics.json").read_text()).get("targets", {})
    oracle = targets.get("validation_expected_move_oracle_return")
    if oracle is None:
        raise SystemExit(f"{run}/eval/metrics.json has no expected-move oracle target (synthetic market needed)")
    target = TARGET_SHARE * float(oracle)
    if args.steps is not None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"total_steps": args.steps})})
    learners: dict[str, Any] = {}
    learners["basic"] = basic_learner(cfg, run.parent / f"{run.name}_convergence_basic", target)
    print(f"basic: {learners['basic']}", flush=True)
    if not args.no_sb3:
        learners["sb3_dqn"] = sb3_learner(cfg, run, target)
        print(f"sb3_dqn: {learners['sb3_dqn']}", flush=True)
    write_json_atomic(run / "convergence.json", {"target": target, "learners": learners})
    print(f"target {target:+.3%}; wrote {run / 'convergence.json'}; score it with `rltrade scorecard {run}`")


if __name__ == "__main__":
    main()
