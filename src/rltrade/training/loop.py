"""The training loop, top to bottom: data → features → env → agent → train → evaluate → checkpoint.

Glossary of one iteration (``step``):

* **act**: the learner picks actions for the ``n_envs`` observations (ε-greedy on its online net);
* **env step**: the vector env fills the orders after the decision time, pays costs, returns rewards,
  and restarts finished episodes at random steps of the training range;
* **store**: the n-step accumulator turns the steps into n-step transitions made of clock indices
  and account vectors (bytes, not states) and the prioritized replay stores them at max priority;
* **learn**: once ``learning_starts`` transitions are stored, sample a batch (importance weights with β
  annealed to 1), gather its states through the batch builder, one double-DQN update, new priorities;
* **evaluate**: every ``eval_every`` steps a greedy backtest on the validation range (PnL after
  costs, never the shaped reward); the best one is saved as ``best.pt``;
* **checkpoint**: every ``checkpoint_every`` steps ``last.pt`` holds the learner, the replay, the
  n-step accumulator, the episodes in flight and every generator, so ``--resume`` continues exactly.

Reported performance is always the backtest's PnL after costs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from rltrade.agent.checkpoint import load_checkpoint, load_learner_state, save_checkpoint
from rltrade.agent.encoder import BlockSpec
from rltrade.agent.learner import DQNLearner
from rltrade.agent.nstep import NStepAccumulator
from rltrade.agent.replay import PrioritizedReplay
from rltrade.agent.schedules import beta_schedule
from rltrade.config import Config
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange, split_span
from rltrade.env.prices import PeriodData, build_period
from rltrade.env.reward import FACTOR_NAMES
from rltrade.env.vector_env import VectorTradingEnv
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.clock import ClockStateSource
from rltrade.features.layout import StateLayout, build_layout
from rltrade.features.market_features import FeatureStats, build_market_features, fit_feature_stats
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.training.backtest import BacktestResult, backtest_policy
from rltrade.training.bundle import BundleError, RunBundle, create_bundle, open_bundle, write_json_atomic
from rltrade.training.cnn_stage import CnnStageResult, run_cnn_stage
from rltrade.training.envstate import VectorEnvState
from rltrade.types import Timeframe

Progress = Callable[[int, int, dict[str, float]], None]
"""``progress(step, total_steps, live metrics)``."""


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything a run builds before the agent: data, splits, features, periods."""

    frames: MarketFrames
    layout: StateLayout
    splits: Fold
    stats: FeatureStats
    builder: BatchStateBuilder
    train_period: PeriodData
    validation_period: PeriodData | None
    test_period: PeriodData
    cnn: CnnStageResult | None = None
    """The walk-forward CNNs behind the state's CNN blocks (None: no CNN stage, the blocks stay off)."""


def decision_span(frames: MarketFrames, cfg: Config) -> TimeRange:
    """The time span the decision clock can run on: the tick period on a 1 s clock, else the 1m bars from
    the first one's close (the first decision needs a closed bar to mark the account at)."""
    step = cfg.env.step.us
    tick = frames.tick_span_us("eth") if step < 60_000_000 else None
    if tick is not None:
        lo, hi = tick
    else:
        first_open, hi = frames.span_us("eth")
        lo = first_open + Timeframe.M1.us
    return TimeRange(-(-lo // step) * step, hi // step * step)


def prepare(
    cfg: Config,
    *,
    frames: MarketFrames | None = None,
    stats: FeatureStats | None = None,
    splits: Fold | None = None,
    cnn_dir: Path | None = None,
) -> Prepared:
    """Data → splits → fitted statistics (training range only) → CNNs → features → per-period env arrays.

    ``splits`` gives the ranges explicitly (a walk-forward fold); by default they are the config's
    fractions of the decision span. The CNNs (walk-forward, nothing learnt from the test range:
    :mod:`rltrade.training.cnn_stage`) are loaded from ``cnn_dir`` when it holds a run's saved set, else
    fitted now.
    """
    frames = frames if frames is not None else load_market(cfg.data)
    if splits is None:
        splits = split_span(decision_span(frames, cfg), cfg.splits, step_us=cfg.env.step.us)
    stats = stats if stats is not None else fit_feature_stats(frames, splits.train)
    layout = build_layout(cfg.features.layout)
    cnn = run_cnn_stage(frames, layout, cfg, splits, models_dir=cnn_dir)
    features = build_market_features(frames, layout, cfg.features, stats, cnn=None if cnn is None else cnn.blocks)
    builder = BatchStateBuilder(layout, features)

    def period(r: TimeRange) -> PeriodData:
        return build_period(features, r, cfg.env, cfg.reward)

    val = period(splits.validation) if splits.validation is not None else None
    return Prepared(frames, layout, splits, stats, builder, period(splits.train), val, period(splits.test), cnn)


def block_specs(layout: StateLayout) -> tuple[BlockSpec, ...]:
    """The layout as the structured encoder reads it (flags pass through as a flat block)."""
    return tuple(
        BlockSpec(b.name, b.shape, b.start, b.stop, "flat" if b.kind == "flags" else b.kind) for b in layout.blocks
    )


def greedy_policy(learner: DQNLearner) -> Callable[[npt.NDArray[np.float32]], npt.NDArray[np.int64]]:
    def policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        return learner.act(obs, 0, greedy=True)

    return policy


def evaluate(learner: DQNLearner, prep: Prepared, period: PeriodData, cfg: Config) -> BacktestResult:
    """Greedy backtest of the learner on ``period`` (PnL after costs)."""
    return backtest_policy(prep.builder, period, greedy_policy(learner), cfg.env)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    updates: int
    best_validation: dict[str, Any] | None
    wall_s: float


def _cap(prep: Prepared, period: PeriodData, cfg: Config) -> PeriodData:
    """The first ``eval_max_steps`` steps of ``period`` (validation backtests stay cheap)."""
    if period.n_steps <= cfg.train.eval_max_steps:
        return period
    start = int(period.clock.time_of(0))
    end = start + cfg.train.eval_max_steps * cfg.env.step.us
    return build_period(prep.builder.features, TimeRange(start, end), cfg.env, cfg.reward)


def train(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    stop_after_steps: int | None = None,
    log: Callable[[str], None] = print,
    on_eval: Callable[[int, DQNLearner, Prepared], None] | None = None,
    splits: Fold | None = None,
) -> TrainResult:
    """Train end to end into ``run_dir`` (or continue the run there with ``resume``).

    ``splits`` overrides the config's train / validation / test fractions (a walk-forward fold); a
    resumed run always continues on the ranges recorded in its bundle.
    """
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.train.torch_threads)  # fixed: results must not depend on the core count
    if resume:
        bundle = open_bundle(run_dir)
        cfg = bundle.config
        prep = prepare(cfg, stats=bundle.feature_stats, splits=bundle_splits(bundle), cnn_dir=run_dir / "cnn")
    else:
        prep = prepare(cfg, splits=splits)
        fitted = [prep.splits.train] + ([prep.splits.validation] if prep.splits.validation is not None else [])
        fitted += prep.cnn.fitted_ranges() if prep.cnn is not None else []
        ranges = {"train": prep.splits.train, "test": prep.splits.test}
        if prep.splits.validation is not None:
            ranges["validation"] = prep.splits.validation
        bundle = create_bundle(run_dir, cfg, prep.layout, prep.stats, prep.frames, splits=ranges, fitted=fitted)
    if prep.cnn is not None and not prep.cnn.loaded:
        # Saved only once the bundle exists: a refused run folder never gets its CNN models overwritten.
        prep.cnn.save(bundle.root / "cnn")
        bundle = bundle.record("cnn", prep.cnn.summary())
        for tf, why in prep.cnn.skipped.items():
            log(f"{tf} CNN skipped (its state rows stay masked): {why}")
    a, t = cfg.agent.model_copy(update={"seed": cfg.seed}), cfg.train

    venv = VectorTradingEnv(prep.builder, prep.train_period, t.n_envs, cfg.env, cfg.reward)
    learner = DQNLearner(a, prep.layout.size, ACCOUNT_DIM, blocks=block_specs(prep.layout))
    seeds = np.random.SeedSequence(cfg.seed).spawn(2)
    replay = PrioritizedReplay(
        a.buffer_size,
        ACCOUNT_DIM,
        alpha=a.alpha,
        eps=a.priority_eps,
        rng=np.random.default_rng(seeds[0]),
        prioritized=a.prioritized,
    )
    nstep = NStepAccumulator(a.n_step, a.gamma, t.n_envs)
    source = ClockStateSource(prep.builder, prep.train_period.clock)
    env_state = VectorEnvState(venv)
    obs, _ = venv.reset(seed=cfg.seed)
    step, best = 0, None
    ckpt = bundle.checkpoints
    if resume and (ckpt / "last.pt").exists():
        counters = load_checkpoint(
            ckpt / "last.pt", learner=learner, replay=replay, extra={"nstep": nstep, "env": env_state}
        )
        step = int(counters["step"])
        best = (
            json.loads((run_dir / "best_validation.json").read_text())
            if (run_dir / "best_validation.json").exists()
            else None
        )
        obs = venv.core.observe()
        log(f"resumed {run_dir} at step {step:,} ({learner.updates:,} updates)")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step if resume else None)
    live: dict[str, float] = {}
    ep_return = np.zeros(t.n_envs)
    last_step = t.total_steps if stop_after_steps is None else min(t.total_steps, stop_after_steps)

    def checkpoint() -> None:
        save_checkpoint(
            ckpt / "last.pt",
            learner=learner,
            replay=replay,
            extra={"nstep": nstep, "env": env_state},
            counters={"step": step},
        )

    while step < last_step:
        actions = learner.act(obs, step)
        obs, reward, term, trunc, info = venv.step(actions)
        transitions = nstep.step(
            info["prev_t_idx"],
            info["prev_account"],
            actions,
            reward.astype(np.float32),
            term,
            trunc,
            info["next_t_idx"],
            info["next_account"],
        )
        if len(transitions.action_B):
            replay.add(transitions)
        ep_return += reward
        done = term | trunc
        if done.any():
            live["episode_reward"] = float(ep_return[done].mean())
            writer.add_scalar("train/episode_reward", live["episode_reward"], step)
            ep_return[done] = 0.0
        step += 1
        if len(replay) >= max(a.learning_starts, a.batch_size) and step % a.train_every == 0:
            for _ in range(t.updates_per_step):
                beta = beta_schedule(learner.updates, duration=a.beta_steps, start=a.beta_start)
                sample = replay.sample(a.batch_size, beta)
                res = learner.update(sample, source)
                replay.update_priorities(sample.tree_idx_B, res.td_abs_B)
            live.update(loss=res.loss, q=res.q_mean, eps=learner.epsilon(step))
            if step % 50 == 0:
                for name, value in res.metrics.items():
                    writer.add_scalar(f"train/{name}", value, step)
                writer.add_scalar("train/epsilon", learner.epsilon(step), step)
                for name in FACTOR_NAMES:
                    key = f"reward_{name}"
                    if key in info:
                        writer.add_scalar(f"reward/{name}", float(np.mean(info[key])), step)
        if step % t.eval_every == 0 and on_eval is not None:
            on_eval(step, learner, prep)  # benchmarks measure convergence here; never steers training
        if step % t.eval_every == 0 and prep.validation_period is not None:
            result = evaluate(learner, prep, _cap(prep, prep.validation_period, cfg), cfg)
            m = result.metrics
            for name in ("total_return", "sharpe", "max_drawdown", "exposure", "n_trades"):
                if isinstance(m.get(name), int | float):
                    writer.add_scalar(f"validation/{name}", float(m[name]), step)
            live["val_return"] = float(m["total_return"])
            if best is None or float(m["total_return"]) > float(best["total_return"]):
                best = {**m, "step": step}
                write_json_atomic(run_dir / "best_validation.json", best)
                save_checkpoint(
                    ckpt / "best.pt",
                    learner=learner,
                    replay=replay,
                    extra={"nstep": nstep, "env": env_state},
                    counters={"step": step},
                )
        if step % t.checkpoint_every == 0:
            checkpoint()
        if progress is not None:
            progress(step, t.total_steps, live)
        if t.max_wall_s is not None and time.perf_counter() - t_start > t.max_wall_s:
            log(f"wall-time limit {t.max_wall_s:.0f} s reached at step {step:,}")
            break
    checkpoint()
    writer.close()
    bundle.record("training", {"steps": step, "updates": learner.updates})
    return TrainResult(run_dir, step, learner.updates, best, time.perf_counter() - t_start)


def bundle_splits(bundle: RunBundle) -> Fold:
    """The train / validation / test ranges a run folder was trained with."""
    recorded = bundle.manifest["splits"]
    validation = bundle.split("validation") if "validation" in recorded else None
    return Fold(0, bundle.split("train"), validation, bundle.split("test"))


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    """``checkpoints/<which>.pt`` of ``run_dir`` (``best`` falls back to ``last``); refuses a run without one."""
    for name in (which, "last"):
        path = run_dir / "checkpoints" / f"{name}.pt"
        if path.exists():
            return path
    raise BundleError(f"{run_dir} holds no agent checkpoint (checkpoints/{which}.pt or last.pt); train it first")


def load_learner(run_dir: Path, layout: StateLayout, cfg: Config, *, which: str = "best") -> DQNLearner:
    """The learner saved in ``run_dir`` (:func:`checkpoint_path`)."""
    path = checkpoint_path(run_dir, which)
    learner = DQNLearner(
        cfg.agent.model_copy(update={"seed": cfg.seed}), layout.size, ACCOUNT_DIM, blocks=block_specs(layout)
    )
    load_learner_state(path, learner)
    return learner
