"""Training speed of the full 15,588-feature system: samples per second of the training loop, before vs after.

    python -m benchmarks.bench_full_speed            # full layout, design batch 128, 16 envs
    python -m benchmarks.bench_full_speed --quick    # fewer steps per repeat, shorter history
    python -m benchmarks.bench_full_speed --breakdown  # also: one thread, and each option off

What is timed is the training loop's body exactly as ``rltrade train`` runs it (``training.loop``): act on
the ``n_envs`` observations, step the vector env (one batched state gather), n-step transitions into the
prioritized replay, then one update per step: sample 128, gather the 256 states of s and s' from the
batch builder, double-DQN loss, Adam step, new priorities. Samples/s = batch × updates/s.

Contenders, on the same prepared market (the ``full`` preset's layout and synthetic market; the CNN
stage is switched off here because it runs once before training and its rows cost the same to gather):

* **before**: the ``full`` preset before issue 13: the original design's flat network (obs → 1024 →
  512 → heads, 16.5 M parameters; now the ``full-flat`` preset) and the numpy state gather
  (``tests/support/numpy_gather.py``: the same states bit for bit, ~0.05 of a memory copy);
* **after**: the new ``full`` preset: the structured encoder (per-block patch convolutions over the
  windows) and the compiled gather kernels, with the update's s' half on a worker thread when that is
  faster (``agent.overlap_update: auto``: the same updates bit for bit, on a second core; its first
  probes run untimed), and the backward pass and optimiser step on two threads
  (``agent.backward_threads: 2``). Before ran on one thread (its ``overlap_update`` is off here); torch's own
  thread count is 1 in both (``train.torch_threads``).

``--breakdown`` adds the ``full`` agent on one thread, with its backward pass on one thread (the preset
runs it on two, ``agent.backward_threads``), with the recent rows instead of their changes
(``encoder_recent_diff`` off), and without each of its three encoder options (``block_norm``,
``block_dropout``, ``encoder_recent_rows``), then without all three: what each costs.

Timings alternate between contenders within each repeat (the machine is shared) and report medians.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks._util import quick_parser, time_interleaved
from rltrade.agent.learner import DQNLearner
from rltrade.agent.networks import parameter_count
from rltrade.agent.nstep import NStepAccumulator
from rltrade.agent.replay import PrioritizedReplay
from rltrade.agent.schedules import beta_schedule
from rltrade.config import Config
from rltrade.env.vector_env import STEP_RECORD, VectorTradingEnv
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.clock import ClockStateSource
from rltrade.features.state_batch import BatchStateBuilder
from rltrade.training.bundle import new_learner
from rltrade.training.pipeline import Prepared, prepare
from rltrade.training.presets import deep_merge, load_with_preset
from tests.support.numpy_gather import NumpyBatchStateBuilder

BATCH = 128
BEFORE = "before (flat, numpy gather)"
AFTER = "after (structured, kernels)"


@dataclass
class Runner:
    """One contender's loop state: learner, replay, n-step accumulator, env and its observations."""

    name: str
    cfg: Config
    learner: DQNLearner
    replay: PrioritizedReplay
    nstep: NStepAccumulator
    venv: VectorTradingEnv
    source: ClockStateSource
    obs: np.ndarray
    step: int = 0

    def run(self, steps: int, *, learn: bool = True) -> None:
        """``steps`` iterations of the training loop's body (see the module docstring)."""
        a = self.cfg.learner_config
        for _ in range(steps):
            actions = self.learner.act(self.obs, self.step)
            self.obs, _, _, _, info = self.venv.step(actions)
            tr = self.nstep.add(info[STEP_RECORD])
            if len(tr.action_B):
                self.replay.add(tr)
            self.step += 1
            if learn:
                beta = beta_schedule(self.learner.updates, duration=a.beta_steps, start=a.beta_start)
                sample = self.replay.sample(a.batch_size, beta)
                res = self.learner.update(sample, self.source)
                self.replay.update_priorities(sample.tree_idx_B, res.td_abs_B)


def make_runner(name: str, cfg: Config, prep: Prepared, builder: BatchStateBuilder) -> Runner:
    a, t = cfg.learner_config, cfg.train
    venv = VectorTradingEnv(builder, prep.train_period, t.n_envs, cfg.env, cfg.reward)
    learner = new_learner(cfg, prep.layout)
    replay = PrioritizedReplay(a.buffer_size, ACCOUNT_DIM, alpha=a.alpha, rng=np.random.default_rng(0))
    obs, _ = venv.reset(seed=cfg.seed)
    source = ClockStateSource(builder, prep.train_period.clock)
    runner = Runner(name, cfg, learner, replay, NStepAccumulator(a.n_step, a.gamma, t.n_envs), venv, source, obs)
    # Fill the replay past one batch without learning (the loop's learning_starts), untimed; then the
    # ``auto`` overlap's first probes (both orders timed), so the timed steps see its choice.
    runner.run(max(2, -(-2 * BATCH // t.n_envs)), learn=False)
    if learner.overlap.mode == "auto":
        runner.run(2 * learner.overlap.probe)
    return runner


BREAKDOWN: dict[str, dict[str, Any]] = {
    "after on one thread": {"overlap_update": "off", "backward_threads": None},
    "after, backward on one thread": {"backward_threads": None},
    "after with rows, not changes": {"encoder_recent_diff": False},
    "after without block_norm": {"block_norm": False, "encoder_recent_diff": False},
    "after without block_dropout": {"block_dropout": 0.0},
    "after without recent rows": {"encoder_recent_rows": 0, "encoder_recent_diff": False},
    "after without all three": {
        "block_norm": False,
        "block_dropout": 0.0,
        "encoder_recent_rows": 0,
        "encoder_recent_diff": False,
    },
}
"""``--breakdown``: the ``full`` preset's agent without the update's worker thread, with the recent rows
themselves instead of their changes, and with its three encoder options off, one at a time and all together
(the changes are scaled with block normalisation's statistics and are a form of the recent rows, so they go
with either)."""


def configs(quick: bool, recent_rows: int | None = None, *, breakdown: bool = False) -> dict[str, Config]:
    """``full-flat`` (before) and ``full`` (after) on the same market; ``recent_rows`` overrides the latter's
    ``agent.encoder_recent_rows`` (None: the preset's); ``breakdown`` adds the :data:`BREAKDOWN` contenders."""
    data: dict[str, Any] = {"synthetic": {"history_days": 330 if quick else 400, "tick_days": 0.5 if quick else 1.0}}
    common: dict[str, Any] = {"data": data, "cnn": {"enabled": False}, "agent": {"batch_size": BATCH}}
    before = load_with_preset(None, "full-flat", deep_merge(common, {"agent": {"overlap_update": "off"}}))
    after_agent: dict[str, Any] = {} if recent_rows is None else {"encoder_recent_rows": recent_rows}
    if recent_rows == 0:
        after_agent["encoder_recent_diff"] = False  # the changes are a form of the recent rows
    after = load_with_preset(None, "full", deep_merge(common, {"agent": after_agent}))
    out = {BEFORE: before, AFTER: after}
    if breakdown:
        for name, agent in BREAKDOWN.items():
            out[name] = load_with_preset(None, "full", deep_merge(common, {"agent": {**after_agent, **agent}}))
    return out


def main() -> None:
    parser = quick_parser(__doc__ or "")
    parser.add_argument(
        "--recent-rows", type=int, default=None, help="the full agent's encoder_recent_rows (default: the preset's)"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the full agent without each of block_norm, block_dropout, the recent rows, and all three",
    )
    args = parser.parse_args()
    cfgs = configs(args.quick, args.recent_rows, breakdown=args.breakdown)
    print(f"full preset agent: encoder_recent_rows {cfgs[AFTER].agent.encoder_recent_rows}")
    first = next(iter(cfgs.values()))
    torch.set_num_threads(first.train.torch_threads)
    t0 = time.perf_counter()
    prep = prepare(first)
    print(f"prepared the full layout ({prep.layout.size:,} features) in {time.perf_counter() - t0:.0f} s")
    numpy_builder = NumpyBatchStateBuilder(prep.layout, prep.builder.features)
    runners = {
        name: make_runner(name, cfg, prep, numpy_builder if name == BEFORE else prep.builder)
        for name, cfg in cfgs.items()
    }
    steps = 3 if args.quick else 10
    timings, _ = time_interleaved(
        {name: (lambda r=r: r.run(steps)) for name, r in runners.items()}, repeats=args.repeats, warmup=1
    )
    n_envs = first.train.n_envs
    print(f"training loop, full layout, batch {BATCH}, {n_envs} envs, 1 update per step, {steps} steps per repeat")
    rates: dict[str, float] = {}
    cpu_rates: dict[str, float] = {}
    for tm in timings:
        r = runners[tm.name]
        updates_s = steps / tm.median_s
        rates[tm.name] = updates_s * BATCH
        cpu_rates[tm.name] = steps / tm.median_cpu_s * BATCH
        print(
            f"  {tm.name:<30} {parameter_count(r.learner.online) / 1e6:6.2f} M params  "
            f"{updates_s:7.2f} updates/s  {rates[tm.name]:9,.0f} samples/s  "
            f"({tm.median_s / steps * 1e3:7.1f} ms per step, {tm.median_cpu_s / steps * 1e3:7.1f} ms CPU; "
            f"median of {len(tm.seconds)}; overlap {_overlap(r.learner)})"
        )
    before, after = rates[BEFORE], rates[AFTER]
    cpu_before, cpu_after = cpu_rates[BEFORE], cpu_rates[AFTER]
    print(f"  samples/s after / before: {after / before:.2f}x wall clock (target 10x)")
    print(
        f"  samples per CPU-second after / before: {cpu_after / cpu_before:.2f}x "
        "(this process's CPU time: what wall clock gives on an otherwise idle machine)"
    )
    for name in BREAKDOWN if args.breakdown else ():
        tm = next(t for t in timings if t.name == name)
        extra_ms = (next(t for t in timings if t.name == AFTER).median_s - tm.median_s) / steps * 1e3
        print(
            f"  {name}: {rates[name] / before:.2f}x wall, {cpu_rates[name] / cpu_before:.2f}x per CPU-second; "
            f"the preset's step takes {extra_ms:+.1f} ms of wall clock more than this"
        )
    _profile(runners[AFTER], steps)


def _overlap(learner: DQNLearner) -> str:
    """The learner's overlap mode, and in ``auto`` the order it chose."""
    chooser = learner.overlap
    return chooser.mode if chooser.mode != "auto" else f"auto: {'on' if chooser.choice else 'off'}"


def _profile(r: Runner, steps: int) -> None:
    """Where one step of the fast contender goes: gather, env step, update without the gather."""
    a = r.cfg.learner_config
    t_idx = r.replay.sample(a.batch_size, 1.0)
    idx = np.concatenate([t_idx.t_idx_B, t_idx.next_t_idx_B])
    k = max(steps, 3)
    g = time.process_time()
    for _ in range(k):
        r.source.gather(idx)
    gather_ms = (time.process_time() - g) / k * 1e3
    g = time.process_time()
    r.run(k, learn=False)
    env_ms = (time.process_time() - g) / k * 1e3
    g = time.process_time()
    r.run(k)
    all_ms = (time.process_time() - g) / k * 1e3
    print(
        f"  profile of 'after', CPU ms per step: {all_ms:.1f} = gather of 2x{a.batch_size} states {gather_ms:.1f}"
        f" + act and env step ({r.cfg.train.n_envs} states) {env_ms:.1f}"
        f" + network update and replay {all_ms - gather_ms - env_ms:.1f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
