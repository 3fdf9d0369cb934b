"""Reward ablation: PnL-only vs the multi-factor reward, paired by seed, on synthetic and on real data.

    python -m benchmarks.bench_reward_ablation                        # 3 seeds, both markets, presets' budgets
    python -m benchmarks.bench_reward_ablation --quick                # 1 seed, 1,500 steps, synthetic, no CNNs
    python -m benchmarks.bench_reward_ablation --seeds 3 --steps 6000 --markets synthetic real

For each market (``synthetic``: the ``demo`` preset's market with the planted BTC→ETH lead; ``real``: the
``real`` preset on ``../shared/data/real``, skipped with the reason when absent) and each seed, the same
config is trained twice: with a PnL-only reward (the preset's PnL scale, every factor off) and with the
multi-factor reward of the ``full`` preset (:data:`rltrade.env.reward.MULTI_FACTOR_REWARD`: direction,
regime, CNN agreement and pivot accuracy added with small weights, volatility as a multiplier on PnL).
Both are scored the same way, by PnL after costs, never by the shaped reward. At the presets' budgets the
synthetic market takes ~35 min and the real one ~13 min on the 2-core machine.

The default is decided on the **validation** range only: the best validation return of each run (the
checkpoint a run keeps), paired by seed. Multi-factor wins when the mean paired difference exceeds one
standard error of it; anything else, a tie included, keeps PnL-only. The test returns of the kept
checkpoints are printed beside it and take no part in the decision. With one seed there is no standard
error: the table is shown and the decision is "not decided (one seed)".
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks._util import quick_parser
from benchmarks.bench_rich_state import baseline_returns
from rltrade.agent.learner import DQNLearner
from rltrade.config import Config, RewardConfig
from rltrade.env.prices import build_period
from rltrade.env.reward import MULTI_FACTOR_REWARD
from rltrade.training.bundle import load_learner
from rltrade.training.evaluate import backtest_learner
from rltrade.training.loop import train
from rltrade.training.pipeline import Prepared, prepare
from rltrade.training.presets import load_with_preset, preset

PRESET = {"synthetic": "demo", "real": "real"}
PNL_ONLY: dict[str, Any] = {
    name: field.default
    for name, field in RewardConfig.model_fields.items()
    if name in MULTI_FACTOR_REWARD and name != "pnl_weight"
}
"""The reward overrides of the PnL-only arm: every factor of :data:`MULTI_FACTOR_REWARD` at its default (off)."""
REWARDS = ("pnl_only", "multi_factor")


def config(market: str, seed: int, reward: str, steps: int | None, cnn: bool) -> Config:
    """The market's preset for one seed, with the PnL-only or the multi-factor reward."""
    over: dict[str, Any] = {"seed": seed}
    # Keep the preset's PnL scale (its pnl_weight); PnL-only turns every factor off whatever the preset sets.
    factors = {k: v for k, v in MULTI_FACTOR_REWARD.items() if k != "pnl_weight"}
    over["reward"] = factors if reward == "multi_factor" else PNL_ONLY
    if steps is not None:
        every = max(steps // 3, 1)
        over["train"] = {"total_steps": steps, "eval_every": every, "checkpoint_every": every}
    if not cnn:
        over["cnn"] = {"enabled": False}
    return load_with_preset(None, PRESET[market], over)


def reuse(prepared: Prepared, cfg: Config) -> Prepared:
    """``prepared`` for ``cfg``, a config that differs in its seed, agent or reward (CNN stage off) only.

    The market, splits, statistics and features do not depend on them (the seed only seeds the CNNs, which
    are off); the per-period env arrays depend on the reward (its volatility reference) and are rebuilt.
    """
    if prepared.cnn is not None:
        raise ValueError("a preparation with CNNs depends on the seed: prepare each seed")
    same = prepared.cfg.model_copy(update={"seed": cfg.seed, "agent": cfg.agent, "reward": cfg.reward})
    if same != cfg:
        raise ValueError("a reused preparation needs the same config except its seed, agent and reward")
    features, splits = prepared.builder.features, prepared.splits

    def period(r: Any) -> Any:
        return build_period(features, r, cfg.env, cfg.reward, funding=prepared.funding)

    val = None if splits.validation is None else period(splits.validation)
    return replace(
        prepared,
        cfg=cfg,
        train_period=period(splits.train),
        validation_period=val,
        test_period=period(splits.test),
    )


def run_one(cfg: Config, run_dir: Path, prepared: Prepared | None = None) -> dict[str, float]:
    """Train, then the kept (best-validation) checkpoint's validation and test returns after costs, beside flat's
    and buy-and-hold's on the same validation slice and test range (``<baseline>_validation``, ``_test``)."""
    seen: dict[str, Any] = {}

    def on_eval(step: int, learner: DQNLearner, prep: Prepared) -> None:
        seen["prep"] = prep

    t0 = time.perf_counter()
    result = train(cfg, run_dir, log=lambda _: None, on_eval=on_eval, prepared=prepared)
    prep: Prepared = seen["prep"]
    learner = load_learner(run_dir, prep.layout, cfg, which="best")
    test = backtest_learner(learner, prep, prep.test_period).metrics
    best = result.best_validation or {}
    out = {
        "validation": float(best.get("total_return", math.nan)),
        "test": float(test["total_return"]),
        "wall_s": time.perf_counter() - t0,
    }
    val = prep.validation_slice()
    on_val = {} if val is None else baseline_returns(cfg, prep, val)
    for name, ret in baseline_returns(cfg, prep).items():
        out[f"{name}_test"] = ret
        out[f"{name}_validation"] = on_val.get(name, math.nan)
    return out


def decide(pnl_only: list[float], multi: list[float]) -> tuple[str, float, float]:
    """The decision on paired validation returns: (verdict, mean difference, its standard error)."""
    diffs = [m - p for p, m in zip(pnl_only, multi, strict=True)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return "not decided (one seed)", mean, math.nan
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return ("multi-factor" if mean > se else "PnL-only (tie or worse keeps it)"), mean, se


def main() -> None:
    parser = quick_parser(__doc__ or "")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per market (default 3, --quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (default: the preset's)")
    parser.add_argument("--markets", nargs="+", choices=sorted(PRESET), default=None)
    parser.add_argument(
        "--cnn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train the CNN stage (default: not in --quick)",
    )
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    steps = args.steps or (1_500 if args.quick else None)
    markets = args.markets or (["synthetic"] if args.quick else ["synthetic", "real"])
    cnn = (not args.quick) if args.cnn is None else args.cnn
    print(f"reward ablation: {seeds} seed(s), steps {steps or 'preset'}, CNN stage {'on' if cnn else 'off'}")
    with tempfile.TemporaryDirectory() as tmp:
        for market in markets:
            if market == "real":
                step = preset("real").data_step
                if step is None or not step.source.is_dir():
                    print(f"real: skipped, the real data is not at {None if step is None else step.source}")
                    continue
                # The preset's explicit data step (what `rltrade train --preset real` runs first); idempotent.
                step.run(config(market, 0, "pnl_only", steps, cnn).data, step.source)
            rows: dict[str, list[dict[str, float]]] = {r: [] for r in REWARDS}
            # Without CNNs one preparation serves every seed and reward (reuse); with them, each run prepares.
            shared = None if cnn else prepare(config(market, 0, "pnl_only", steps, cnn))
            for seed in range(seeds):
                for reward in REWARDS:
                    cfg = config(market, seed, reward, steps, cnn)
                    prepared = None if shared is None else reuse(shared, cfg)
                    res = run_one(cfg, Path(tmp) / f"{market}-{reward}-{seed}", prepared)
                    rows[reward].append(res)
                    print(
                        f"  {market:<9} seed {seed}  {reward:<12}  validation {res['validation']:+8.2%}  "
                        f"test {res['test']:+8.2%}  ({res['wall_s']:.0f} s)",
                        flush=True,
                    )
            val = {r: [x["validation"] for x in rows[r]] for r in REWARDS}
            tst = {r: [x["test"] for x in rows[r]] for r in REWARDS}
            verdict, mean, se = decide(val["pnl_only"], val["multi_factor"])
            print(f"{market}: mean validation return PnL-only {statistics.fmean(val['pnl_only']):+.2%}, ", end="")
            print(f"multi-factor {statistics.fmean(val['multi_factor']):+.2%}; paired difference {mean:+.2%} ", end="")
            print(f"± {se:.2%} (1 SE) → default: {verdict}")
            print(
                f"{market}: (not used to decide) mean test return PnL-only {statistics.fmean(tst['pnl_only']):+.2%}, "
                f"multi-factor {statistics.fmean(tst['multi_factor']):+.2%}"
            )
            first = rows["pnl_only"][0]
            for name in ("flat", "buy_and_hold"):
                print(
                    f"{market}: {name} validation {first[name + '_validation']:+.2%}, test {first[name + '_test']:+.2%}"
                )


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
