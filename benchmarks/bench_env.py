"""Env steps per second: rltrade's ``VectorTradingEnv`` (E = 16, 64) and scalar ``TradingEnv`` vs SB3's
``DummyVecEnv`` over the same ``TradingEnv``.

Baseline: stable-baselines3's ``DummyVecEnv`` holding E copies of ``TradingEnv`` (the usual way to batch a
Gymnasium env in one process: one state gather and one accounting step per copy). rltrade's vector env
does one batched gather and one numpy accounting step for all E. Same market (synthetic, demo layout),
same seeded random actions, same process; each timing is the median of interleaved repeats.

Run: ``.venv/bin/python -m benchmarks.bench_env [--quick]`` (400 vector steps per repeat; 100 with --quick).
"""

from __future__ import annotations

import os

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks._util import quick_parser, report_ratio, time_interleaved
from rltrade.config import DataConfig, EnvConfig, FeaturesConfig, LayoutConfig, SyntheticConfig
from rltrade.data.market import load_market
from rltrade.data.splits import TimeRange
from rltrade.env.prices import build_period
from rltrade.env.trading_env import TradingEnv
from rltrade.env.vector_env import VectorTradingEnv
from rltrade.features.layout import build_layout
from rltrade.features.market_features import build_market_features
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.types import US_PER_SECOND


def main() -> None:
    args = quick_parser(__doc__ or "").parse_args()
    steps = 100 if args.quick else 400
    repeats = max(3, args.repeats)
    frames = load_market(DataConfig(synthetic=SyntheticConfig(seed=3, history_days=12, tick_days=0.1)))
    cfg = FeaturesConfig(layout=LayoutConfig(name="demo"))
    layout = build_layout(cfg.layout)
    features = build_market_features(frames, layout, cfg)
    builder = BatchStateBuilder(layout, features)
    span = frames.tick_span_us()
    assert span is not None
    env_cfg = EnvConfig(episode_steps=600)
    period = build_period(features, TimeRange(span[0] + 120 * US_PER_SECOND, span[1]), env_cfg)
    print(
        f"env steps, demo layout ({layout.size:,} + account features), {period.n_steps:,}-step period, "
        f"{steps} steps per repeat; {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    def run_vector(n_envs: int) -> None:
        env = VectorTradingEnv(builder, period, n_envs, env_cfg)
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, 3, (steps, n_envs))
        for a in actions:
            env.step(a)

    def run_dummy(n_envs: int) -> None:
        venv = DummyVecEnv([lambda: TradingEnv(builder, period, env_cfg) for _ in range(n_envs)])
        venv.seed(0)
        venv.reset()
        actions = np.random.default_rng(0).integers(0, 3, (steps, n_envs))
        for a in actions:
            venv.step(a)

    def run_scalar() -> None:
        env = TradingEnv(builder, period, env_cfg)
        env.reset(seed=0)
        for a in np.random.default_rng(0).integers(0, 3, steps).tolist():
            if any(env.step(a)[2:4]):
                env.reset()

    for n_envs in (16, 64):
        print(f"E = {n_envs}: {steps * n_envs:,} env steps per repeat")
        (ours, base), _ = time_interleaved(
            {
                f"VectorTradingEnv E={n_envs}": lambda n=n_envs: run_vector(n),  # type: ignore[misc]
                f"SB3 DummyVecEnv E={n_envs}": lambda n=n_envs: run_dummy(n),  # type: ignore[misc]
            },
            repeats=repeats,
        )
        report_ratio(ours, base, items=steps * n_envs, unit="env steps")
    print("scalar TradingEnv (one episode at a time):")
    (scalar, dummy1), _ = time_interleaved(
        {"TradingEnv": run_scalar, "SB3 DummyVecEnv E=1": lambda: run_dummy(1)}, repeats=repeats
    )
    report_ratio(scalar, dummy1, items=steps, unit="env steps")


if __name__ == "__main__":
    main()
