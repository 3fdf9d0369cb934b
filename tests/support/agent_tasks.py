"""Small seeded tasks and a self-contained training loop for the agent's learning and resume tests.

The loop is the one the training layer will run, in miniature: env → ``NStepAccumulator`` →
``PrioritizedReplay`` → ``DQNLearner``, with states stored once in an array and referred to by time
index everywhere else (``ArrayStateSource``).

- ``ContextTask``: ``num_envs`` parallel episodes of ``episode_len`` steps; each step shows a one-hot
  context among the actions and pays 1 when the action equals it. The optimal greedy policy is known
  (argmax of the observation), so learning is checked exactly.
- ``GymTask``: one gymnasium env (e.g. CartPole-v1) whose observations are appended to a growing
  array; the final observation of an episode and the reset observation get rows of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from rltrade.agent.batches import ArrayStateSource
from rltrade.agent.encoder import BlockSpec
from rltrade.agent.learner import DQNLearner, LearnerConfig
from rltrade.agent.nstep import NStepAccumulator
from rltrade.agent.replay import PrioritizedReplay
from rltrade.agent.schedules import beta_schedule


class Agent:
    """Learner, replay and n-step accumulator built from one config, updated by ``observe``."""

    def __init__(
        self,
        config: LearnerConfig,
        state_dim: int,
        account_dim: int,
        num_envs: int,
        blocks: Sequence[BlockSpec] | None = None,
    ) -> None:
        self.config = config
        self.learner = DQNLearner(config, state_dim, account_dim, blocks=blocks)
        self.replay = PrioritizedReplay(
            config.buffer_size,
            account_dim,
            alpha=config.alpha,
            eps=config.priority_eps,
            rng=np.random.default_rng((config.seed or 0) + 1),  # an unset seed is 0, as in the learner
            prioritized=config.prioritized,
        )
        self.nstep = NStepAccumulator(config.n_step, config.gamma, num_envs)
        self.env_steps = 0
        self.losses: list[float] = []

    def observe(
        self,
        source: ArrayStateSource,
        t_idx: np.ndarray,
        account: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_t_idx: np.ndarray,
        next_account: np.ndarray,
    ) -> None:
        """Store one vectorised step and run the gradient update the schedule asks for."""
        c = self.config
        self.replay.add(
            self.nstep.step(t_idx, account, action, reward, terminated, truncated, next_t_idx, next_account)
        )
        if len(self.replay) >= max(c.learning_starts, c.batch_size) and self.env_steps % c.train_every == 0:
            beta = beta_schedule(self.learner.updates, duration=c.beta_steps, start=c.beta_start)
            sample = self.replay.sample(c.batch_size, beta)
            result = self.learner.update(sample, source)
            self.replay.update_priorities(sample.tree_idx_B, result.td_abs_B)
            self.losses.append(result.loss)
        self.env_steps += 1


class ContextTask:
    """Contextual task: observation = one-hot of the rewarded action, plus account = [elapsed fraction]."""

    def __init__(
        self, seed: int, *, total_steps: int, num_envs: int = 4, episode_len: int = 8, n_actions: int = 3
    ) -> None:
        rng = np.random.default_rng(seed)
        rows = (total_steps + 1) * num_envs
        self.contexts_T = rng.integers(0, n_actions, rows)
        states_TF = np.zeros((rows, n_actions), dtype=np.float32)
        states_TF[np.arange(rows), self.contexts_T] = 1.0
        self.source = ArrayStateSource(states_TF)
        self.num_envs, self.episode_len, self.n_actions = num_envs, episode_len, n_actions
        self.state_dim, self.account_dim = n_actions, 1
        self.obs_dim = n_actions + 1

    def step(self, agent: Agent) -> None:
        """One vectorised step at ``agent.env_steps`` (the task's clock is the agent's step counter)."""
        k, e = agent.env_steps, self.num_envs
        t_idx = k * e + np.arange(e)
        within = k % self.episode_len
        account = np.full((e, 1), within / self.episode_len, dtype=np.float32)
        obs = np.concatenate([self.source.gather(t_idx), account], axis=1)
        action = agent.learner.act(obs, k)
        reward = (action == self.contexts_T[t_idx]).astype(np.float32)
        terminated = np.full(e, within == self.episode_len - 1)
        next_account = np.full((e, 1), (within + 1) / self.episode_len, dtype=np.float32)
        agent.observe(
            self.source, t_idx, account, action, reward, terminated, np.zeros(e, bool), t_idx + e, next_account
        )

    def greedy_accuracy(self, learner: DQNLearner) -> float:
        """Share of (context, elapsed) observations on which the greedy action is the rewarded one."""
        contexts = np.repeat(np.arange(self.n_actions), self.episode_len)
        elapsed = np.tile(np.arange(self.episode_len) / self.episode_len, self.n_actions)
        obs = np.zeros((contexts.size, self.obs_dim), dtype=np.float32)
        obs[np.arange(contexts.size), contexts] = 1.0
        obs[:, -1] = elapsed
        return float(np.mean(learner.act(obs, 0, greedy=True) == contexts))


class GymTask:
    """A single gymnasium env whose observations live in a growing array indexed by time."""

    def __init__(self, env_id: str, seed: int, *, total_steps: int) -> None:
        self.env = gym.make(env_id)
        self.eval_env = gym.make(env_id)
        self.seed = seed
        obs_dim = int(np.prod(self.env.observation_space.shape or (1,)))
        # Each step writes at most two rows: the next observation and, at an episode end, the reset one.
        self.states_TF = np.zeros((2 * total_steps + 2, obs_dim), dtype=np.float32)
        self.source = ArrayStateSource(self.states_TF)
        self.state_dim = obs_dim
        obs, _ = self.env.reset(seed=seed)
        self.rows = 0
        self.t = self._append(obs)

    def _append(self, obs: np.ndarray) -> int:
        self.states_TF[self.rows] = obs
        self.rows += 1
        return self.rows - 1

    def step(self, agent: Agent) -> None:
        no_account = np.zeros((1, 0), dtype=np.float32)
        t_idx = np.array([self.t])
        action = agent.learner.act(self.states_TF[t_idx], agent.env_steps)
        obs, reward, terminated, truncated, _ = self.env.step(int(action[0]))
        next_t = self._append(obs)
        agent.observe(
            self.source,
            t_idx,
            no_account,
            action,
            np.array([reward], dtype=np.float32),
            np.array([terminated]),
            np.array([truncated]),
            np.array([next_t]),
            no_account,
        )
        if terminated or truncated:
            obs, _ = self.env.reset()
            next_t = self._append(obs)
        self.t = next_t

    def greedy_return(self, learner: DQNLearner, episodes: int) -> float:
        """Mean undiscounted return of the greedy policy over ``episodes`` evaluation episodes."""
        total = 0.0
        for i in range(episodes):
            obs, _ = self.eval_env.reset(seed=10_000 + self.seed * 100 + i)
            done = False
            while not done:
                action = learner.act(np.asarray(obs, dtype=np.float32)[None, :], 0, greedy=True)
                obs, reward, terminated, truncated, _ = self.eval_env.step(int(action[0]))
                total += float(reward)
                done = terminated or truncated
        return total / episodes
