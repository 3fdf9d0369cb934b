"""The training loop, top to bottom: act → env step → store → learn → validate → checkpoint.

Glossary of one iteration (``step``):

* **act**: the learner picks actions for the ``n_envs`` observations (ε-greedy on its online net);
* **env step**: the vector env fills the orders after the decision time, pays costs, returns rewards,
  and restarts finished episodes at random steps of the training range;
* **store**: the n-step accumulator turns the step's :class:`~rltrade.features.account.StepRecord` into
  n-step transitions made of clock indices and account vectors (bytes, not states) and the prioritized
  replay stores them at max priority;
* **learn**: once ``learning_starts`` transitions are stored, sample a batch (importance weights with β
  annealed to 1), gather its states through the batch builder, one double-DQN update, new priorities;
* **validate**: every ``eval_every`` steps a greedy backtest on the selection window of the validation
  range (PnL after costs, never the shaped reward); the best one is saved as ``best.pt``;
* **checkpoint**: every ``checkpoint_every`` steps ``last.pt`` holds the learner, the replay, the
  n-step accumulator, the episodes in flight and every generator, so ``--resume`` continues exactly.

At the end, :func:`rltrade.training.confirmation.select_run` decides what the run trades (``selection.json``):
the best checkpoint only if it beat flat and buy-and-hold on validation and is confirmed on the validation
range's held-back confirmation window, else a baseline.

Data, splits and features come from :mod:`rltrade.training.pipeline`, the run folder from
:mod:`rltrade.training.bundle`. Reported performance is always the backtest's PnL after costs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch

from rltrade.agent.checkpoint import Stateful, load_checkpoint, save_checkpoint
from rltrade.agent.learner import DQNLearner, UpdateResult
from rltrade.agent.nstep import NStepAccumulator
from rltrade.agent.replay import PrioritizedReplay
from rltrade.agent.schedules import beta_schedule
from rltrade.config import Config
from rltrade.data.splits import Fold
from rltrade.env.prices import PeriodData
from rltrade.env.reward import FACTOR_NAMES
from rltrade.env.vector_env import STEP_RECORD, VectorTradingEnv
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.clock import ClockStateSource
from rltrade.training.bundle import BestValidation, RunBundle, greedy_policy, load_learner, new_learner, start_run
from rltrade.training.confirmation import load_checkpoint_returns, save_checkpoint_returns, select_run
from rltrade.training.envstate import VectorEnvState
from rltrade.training.evaluate import backtest_learner
from rltrade.training.metrics import BacktestMetrics, simple_returns
from rltrade.training.pipeline import Prepared
from rltrade.training.tb_events import truncate_events

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

SCALARS_EVERY: Final = 50
"""Steps between the update scalars written to TensorBoard (loss, Q, ε, each reward factor)."""
ValidationScalar = Literal["total_return", "sharpe", "max_drawdown", "exposure", "n_trades"]
VALIDATION_SCALARS: Final[tuple[ValidationScalar, ...]] = get_args(ValidationScalar)
"""Validation backtest metrics written to TensorBoard."""

Progress = Callable[[int, int, dict[str, float]], None]
"""``progress(step, total_steps, live metrics)``."""
OnEval = Callable[[int, DQNLearner, Prepared], None]
"""``on_eval(step, learner, prepared)`` at every validation step (benchmarks measure convergence there)."""
logger = logging.getLogger(__name__)


NORM_ROWS: Final = 4_096
"""Training-clock states that ``agent.block_norm``'s statistics are fitted on."""


def norm_rows(n_train: int, rows: int = NORM_ROWS) -> npt.NDArray[np.int64]:
    """Evenly spaced indices into a training clock of ``n_train`` steps (all of them when fewer than ``rows``).

    Only training steps: the input statistics never see the validation or test range.
    """
    if n_train < 2:
        raise ValueError(f"block_norm needs at least 2 training steps to fit on, got {n_train}")
    return np.unique(np.linspace(0, n_train - 1, min(n_train, rows)).round().astype(np.int64))


def fit_input_norm(learner: DQNLearner, source: ClockStateSource, n_train: int) -> None:
    """Fit ``agent.block_norm``'s statistics on the training clock's :func:`norm_rows` (no-op when it is off)."""
    if learner.config.block_norm:
        learner.fit_input_norm(source.gather(norm_rows(n_train)))


@dataclass
class TrainResult:
    """What a training run ends with: its folder, steps and updates done, the best validation, the wall time."""

    run_dir: Path
    steps: int
    updates: int
    best_validation: BestValidation | None
    wall_s: float


def train(
    cfg: Config,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    stop_after_steps: int | None = None,
    log: Callable[[str], None] = logger.info,
    on_eval: OnEval | None = None,
    splits: Fold | None = None,
    prepared: Prepared | None = None,
) -> TrainResult:
    """Train end to end into ``run_dir`` (or continue the run there with ``resume``, on its own config).

    ``splits`` overrides the config's train / validation / test fractions (a walk-forward fold); a
    resumed run always continues on the ranges recorded in its bundle. ``prepared`` reuses the
    preparation of a config that differs only in its ``agent`` section (:func:`start_run`).
    """
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.train.torch_threads)  # fixed: results must not depend on the core count
    prep, bundle = start_run(cfg, run_dir, resume=resume, splits=splits, log=log, prepared=prepared)
    t_train = time.perf_counter()  # train.max_wall_s counts from here: the preparation above is not training
    cfg, a, t = prep.cfg, prep.cfg.learner_config, prep.cfg.train
    train_env = cfg.env.model_copy(update={"taker_fee": cfg.env.taker_fee * t.fee_multiplier})
    venv = VectorTradingEnv(prep.builder, prep.train_period, t.n_envs, train_env, cfg.reward)
    learner = new_learner(cfg, prep.layout)
    replay_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    replay = PrioritizedReplay(
        a.buffer_size, ACCOUNT_DIM, alpha=a.alpha, eps=a.priority_eps, rng=replay_rng, prioritized=a.prioritized
    )
    nstep = NStepAccumulator(a.n_step, a.gamma, t.n_envs)
    in_flight: dict[str, Stateful] = {"nstep": nstep, "env": VectorEnvState(venv)}
    source = ClockStateSource(prep.builder, prep.train_period.clock)
    fit_input_norm(learner, source, prep.train_period.clock.n_steps)  # a resume then restores the saved ones
    validation = prep.validation_slice()
    obs, _ = venv.reset(seed=cfg.seed)
    step, best = 0, None
    val_returns = load_checkpoint_returns(run_dir) if resume else {}
    if resume:
        step, best = _restore(bundle, learner, replay, in_flight, log=log, checkpoint_every=t.checkpoint_every)
        obs = venv.core.observe() if step else obs
        # The steps past the checkpoint are written again: cut them so the event files hold each step once.
        truncate_events(run_dir / "tensorboard", step)

    def save(name: str) -> None:
        path = bundle.checkpoints / f"{name}.pt"
        save_checkpoint(path, learner=learner, replay=replay, extra=in_flight, counters={"step": step})

    from torch.utils.tensorboard import SummaryWriter  # slow to import: only when training

    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step if resume else None)
    live: dict[str, float] = {}
    ep_return = np.zeros(t.n_envs)
    last_step = t.total_steps if stop_after_steps is None else min(t.total_steps, stop_after_steps)
    while step < last_step:
        actions = learner.act(obs, step)
        obs, reward, term, trunc, info = venv.step(actions)
        transitions = nstep.add(info[STEP_RECORD])
        if len(transitions.action_B):
            replay.add(transitions)
        ep_return += reward
        if (done := term | trunc).any():
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
            if step % SCALARS_EVERY == 0:
                _update_scalars(writer, step, res, learner.epsilon(step), info)
        if step % t.eval_every == 0 and on_eval is not None:
            on_eval(step, learner, prep)  # never steers training
        if step % t.eval_every == 0 and validation is not None:
            m, val_returns[f"step_{step}"] = _validate(learner, prep, validation, writer, step)
            save_checkpoint_returns(run_dir, val_returns)
            live["val_return"] = m["total_return"]
            if best is None or m["total_return"] > best["total_return"]:
                best = bundle.record_best(BestValidation(**m, step=step))
                save("best")
        if step % t.checkpoint_every == 0:
            save("last")
        if progress is not None:
            progress(step, t.total_steps, live)
        if t.max_wall_s is not None and time.perf_counter() - t_train > t.max_wall_s:
            log(f"wall-time limit {t.max_wall_s:.0f} s of training reached at step {step:,}")
            break
    save("last")
    writer.close()
    bundle.record("training", {"steps": step, "updates": learner.updates})
    _select(run_dir, prep, val_returns, best, log)
    return TrainResult(run_dir, step, learner.updates, best, time.perf_counter() - t_start)


def _select(
    run_dir: Path,
    prep: Prepared,
    val_returns: dict[str, npt.NDArray[np.float64]],
    best: BestValidation | None,
    log: Callable[[str], None],
) -> None:
    """Make the run's do-no-harm selection (:func:`rltrade.training.confirmation.select_run`) and log it."""
    chosen = greedy_policy(load_learner(run_dir, prep.layout, prep.cfg, which="best"))
    selection = select_run(run_dir, prep, chosen, val_returns, best=None if best is None else f"step_{best['step']}")
    if selection is not None:
        log(selection.label)


def _validate(
    learner: DQNLearner, prep: Prepared, period: PeriodData, writer: SummaryWriter, step: int
) -> tuple[BacktestMetrics, npt.NDArray[np.float64]]:
    """Backtest greedily on the validation slice and write its headline metrics to TensorBoard.

    Returns the metrics and the per-step returns.
    """
    result = backtest_learner(learner, prep, period)
    m = result.metrics
    for name in VALIDATION_SCALARS:
        writer.add_scalar(f"validation/{name}", float(m[name]), step)
    return m, simple_returns(result.equity_T)


def _restore(
    bundle: RunBundle,
    learner: DQNLearner,
    replay: PrioritizedReplay,
    in_flight: dict[str, Stateful],
    *,
    log: Callable[[str], None],
    checkpoint_every: int,
) -> tuple[int, BestValidation | None]:
    """Load the run's ``last.pt`` into the learner, replay and in-flight state; ``(step, best validation)``.

    A run that stopped before its first checkpoint has none: it says so and starts from step 0.
    """
    last = bundle.checkpoints / "last.pt"
    if not last.exists():
        log(
            f"no checkpoint in {bundle.checkpoints} yet (the run stopped before its first one, due every "
            f"{checkpoint_every:,} steps): training {bundle.root} starts from step 0 on its saved data, "
            "statistics and CNNs"
        )
        return 0, None
    counters = load_checkpoint(last, learner=learner, replay=replay, extra=in_flight)
    step = int(counters["step"])
    log(f"resumed {bundle.root} at step {step:,} ({learner.updates:,} updates)")
    return step, bundle.best_validation()


def _update_scalars(writer: SummaryWriter, step: int, res: UpdateResult, epsilon: float, info: dict[str, Any]) -> None:
    """Write to TensorBoard the last update's metrics, ε and the mean of each reward factor over the envs' last step."""
    for name, value in res.metrics.items():
        writer.add_scalar(f"train/{name}", value, step)
    writer.add_scalar("train/epsilon", epsilon, step)
    for name in FACTOR_NAMES:
        if f"reward_{name}" in info:
            writer.add_scalar(f"reward/{name}", float(np.mean(info[f"reward_{name}"])), step)
