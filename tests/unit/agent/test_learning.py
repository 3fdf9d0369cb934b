"""The agent learns small tasks with a known answer, to a threshold, within a fixed step budget and seed.

Fast: the contextual task of ``toy_tasks.ContextTask`` (the rewarded action is shown in the observation)
for every combination of prioritized replay, n-step returns and dueling heads, plus C51, noisy nets
and the structured encoder. Slow (``-m slow``): gymnasium's CartPole-v1 with the same switches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from rltrade.agent.encoder import BlockSpec
from rltrade.agent.learner import LearnerConfig
from tests.support.agent_tasks import Agent, ContextTask, GymTask


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny networks: one thread avoids thread-pool hand-offs that dominate (and, on a busy machine,
    # stall) such small matrix products. Results do not depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TOY: dict[str, Any] = {
    "hidden": (32, 32),
    "encoder_hidden": (32, 32),
    "lr": 2e-3,
    "batch_size": 32,
    "buffer_size": 4000,
    "learning_starts": 100,
    "epsilon_steps": 300,
    "epsilon_end": 0.05,
    "target_update_interval": 25,
    "beta_steps": 600,
    "gamma": 0.9,
}


def _action_gaps(task: ContextTask, agent: Agent) -> np.ndarray:
    """Q(s, rewarded action) − max over the other actions, for every (context, elapsed) observation.

    With the optimal Q this is exactly 1 everywhere: the action changes only the immediate reward.
    """
    n = task.n_actions * task.episode_len
    contexts = np.repeat(np.arange(task.n_actions), task.episode_len)
    obs = np.zeros((n, task.obs_dim), dtype=np.float32)
    obs[np.arange(n), contexts] = 1.0
    obs[:, -1] = np.tile(np.arange(task.episode_len) / task.episode_len, task.n_actions)
    net = agent.learner.online.eval()
    with torch.no_grad():
        q_BA = net.q_values(torch.from_numpy(obs[:, :-1]), torch.from_numpy(obs[:, -1:])).numpy()
    net.train()
    best = q_BA[np.arange(n), contexts]
    q_BA[np.arange(n), contexts] = -np.inf
    return best - q_BA.max(axis=1)


def _train_context(
    config: LearnerConfig, steps: int, *, episode_len: int = 8, blocks: list[BlockSpec] | None = None
) -> tuple[ContextTask, Agent]:
    task = ContextTask(config.seed, total_steps=steps, episode_len=episode_len)
    agent = Agent(config, task.state_dim, task.account_dim, task.num_envs, blocks)
    for _ in range(steps):
        task.step(agent)
    return task, agent


@pytest.mark.parametrize(
    ("prioritized", "n_step", "dueling"), list(itertools.product([True, False], [1, 3], [True, False]))
)
def test_learns_contextual_task(prioritized: bool, n_step: int, dueling: bool) -> None:
    config = LearnerConfig.model_validate(
        {**TOY, "seed": 0, "prioritized": prioritized, "n_step": n_step, "dueling": dueling}
    )
    task, agent = _train_context(config, 600)
    assert task.greedy_accuracy(agent.learner) == 1.0
    gaps = _action_gaps(task, agent)
    assert 0.6 < float(np.median(gaps)) < 1.4, gaps


def test_c51_learns_contextual_task() -> None:
    config = LearnerConfig.model_validate(
        {**TOY, "seed": 0, "distributional": True, "n_atoms": 21, "v_min": 0.0, "v_max": 10.0}
    )
    task, agent = _train_context(config, 600)
    assert task.greedy_accuracy(agent.learner) == 1.0
    assert 0.6 < float(np.median(_action_gaps(task, agent))) < 1.4


def test_noisy_nets_learn_contextual_bandit() -> None:
    # One-step episodes: Q gaps of ~1 that parameter noise can cross. On 8-step episodes the untried
    # action's Q lags by ~3 and noise alone rarely tries it within this budget (ε-greedy does).
    config = LearnerConfig.model_validate({**TOY, "seed": 0, "exploration": "noisy"})
    task, agent = _train_context(config, 400, episode_len=1)
    assert task.greedy_accuracy(agent.learner) == 1.0


def test_structured_encoder_learns_contextual_task() -> None:
    # The context enters as a "bars" window of 3 rows × 1 channel, so it goes through a PatchStack.
    config = LearnerConfig.model_validate(
        {**TOY, "seed": 0, "network": "structured", "encoder_channels": (8,), "encoder_patches": (3,)}
    )
    blocks = [BlockSpec("context", (3, 1), 0, 3, "bars")]
    task, agent = _train_context(config, 600, blocks=blocks)
    assert task.greedy_accuracy(agent.learner) == 1.0


CARTPOLE: dict[str, Any] = {
    "n_actions": 2,
    "hidden": (128, 128),
    "lr": 5e-4,
    "batch_size": 64,
    "buffer_size": 20_000,
    "learning_starts": 500,
    "epsilon_steps": 4000,
    "epsilon_end": 0.05,
    "target_update_interval": 500,
    "beta_steps": 10_000,
    "train_every": 1,
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prioritized", "n_step", "dueling"),
    [(True, 3, True), (False, 3, True), (True, 1, True), (True, 3, False), (False, 1, False)],
)
def test_learns_cartpole(prioritized: bool, n_step: int, dueling: bool) -> None:
    steps = 10_000
    config = LearnerConfig.model_validate(
        {**CARTPOLE, "seed": 0, "prioritized": prioritized, "n_step": n_step, "dueling": dueling}
    )
    task = GymTask("CartPole-v1", config.seed, total_steps=steps)
    agent = Agent(config, task.state_dim, 0, 1)
    best = 0.0
    for step in range(1, steps + 1):
        task.step(agent)
        if step % 1000 == 0:
            best = max(best, task.greedy_return(agent.learner, episodes=5))
    # CartPole-v0's "solved" level (195 over 100 episodes), for the best greedy policy seen; plain DQN on
    # CartPole is known to forget after it peaks, so the budget asks for reaching the level, not keeping it.
    assert best >= 195.0
