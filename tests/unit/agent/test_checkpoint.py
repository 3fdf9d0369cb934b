"""Checkpoints: bit-for-bit resume, atomic writes, weights-only loading, clear refusals."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rltrade.agent.checkpoint import CheckpointError, load_checkpoint, load_learner_state, save_checkpoint
from rltrade.agent.learner import LearnerConfig
from rltrade.training.walkforward import weights_fingerprint
from tests.support.agent_tasks import Agent, ContextTask
from tests.support.gpu_checkpoint import as_written_on_cuda

BASE = {
    "hidden": (16, 16),
    "lr": 2e-3,
    "batch_size": 16,
    "buffer_size": 300,
    "learning_starts": 40,
    "epsilon_steps": 100,
    "target_update_interval": 10,
    "beta_steps": 200,
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _agent(config: LearnerConfig, task: ContextTask) -> Agent:
    return Agent(config, task.state_dim, task.account_dim, task.num_envs)


def _save(path: Path, agent: Agent, **kwargs: object) -> None:
    save_checkpoint(
        path,
        learner=agent.learner,
        replay=agent.replay,
        extra={"nstep": agent.nstep},
        counters={"env_steps": agent.env_steps},
        **kwargs,  # type: ignore[arg-type]
    )


def _load(path: Path, agent: Agent, **kwargs: object) -> None:
    counters = load_checkpoint(
        path,
        learner=agent.learner,
        replay=agent.replay,
        extra={"nstep": agent.nstep},
        **kwargs,  # type: ignore[arg-type]
    )
    agent.env_steps = int(counters["env_steps"])


@pytest.mark.parametrize(
    "switches",
    [
        {},  # ε-greedy, PER, 3-step, dueling double DQN
        {"exploration": "noisy", "distributional": True, "n_atoms": 11, "target_update": "polyak"},
    ],
)
def test_resumed_run_continues_bit_for_bit(tmp_path: Path, switches: dict[str, object]) -> None:
    k, m = 90, 50  # the checkpoint falls mid-episode (8-step episodes), after updates began
    config = LearnerConfig.model_validate({**BASE, **switches, "seed": 5})
    task = ContextTask(5, total_steps=k + m)

    straight = _agent(config, task)
    for _ in range(k):
        task.step(straight)
    assert straight.learner.updates > 0 and straight.nstep.pending().any()
    _save(tmp_path / "ckpt.pt", straight)
    for _ in range(m):
        task.step(straight)

    resumed = _agent(config, task)
    _load(tmp_path / "ckpt.pt", resumed)
    assert resumed.env_steps == k
    for _ in range(m):
        task.step(resumed)

    assert resumed.losses == straight.losses[-len(resumed.losses) :]
    assert len(resumed.losses) == m
    for (name, a), b in zip(
        straight.learner.online.state_dict().items(), resumed.learner.online.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for a, b in zip(straight.learner.target.parameters(), resumed.learner.target.parameters(), strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(straight.replay.priorities(), resumed.replay.priorities())
    obs = np.eye(task.obs_dim, dtype=np.float32)
    assert np.array_equal(straight.learner.act(obs, 10), resumed.learner.act(obs, 10))


def test_generators_and_counters_round_trip(tmp_path: Path) -> None:
    config = LearnerConfig.model_validate({**BASE, "seed": 1})
    task = ContextTask(1, total_steps=10)
    agent = _agent(config, task)
    rng, gen = np.random.default_rng(3), torch.Generator().manual_seed(4)
    rng.random(5)
    torch.rand(5, generator=gen)
    save_checkpoint(
        tmp_path / "c.pt",
        learner=agent.learner,
        replay=agent.replay,
        rngs={"env": rng},
        torch_generators={"dropout": gen},
        counters={"episodes": 7, "wall_s": 1.5},
    )
    expected_np, expected_torch = rng.random(4), torch.rand(4, generator=gen)
    rng2, gen2 = np.random.default_rng(0), torch.Generator()
    counters = load_checkpoint(
        tmp_path / "c.pt",
        learner=_agent(config, task).learner,
        replay=_agent(config, task).replay,
        rngs={"env": rng2},
        torch_generators={"dropout": gen2},
    )
    assert counters == {"episodes": 7, "wall_s": 1.5}
    assert np.array_equal(rng2.random(4), expected_np)
    assert torch.equal(torch.rand(4, generator=gen2), expected_torch)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = LearnerConfig.model_validate(BASE)
    agent = _agent(config, ContextTask(0, total_steps=10))
    target = tmp_path / "run" / "agent.pt"
    _save(target, agent)
    first = target.read_bytes()
    _save(target, agent)  # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["agent.pt"]

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(target, agent)
    assert target.read_bytes() == first  # the old checkpoint survives a failed write
    assert sorted(p.name for p in target.parent.iterdir()) == ["agent.pt"]


class _NotATensor:
    pass


def test_loading_refuses_arbitrary_pickles_and_broken_files(tmp_path: Path) -> None:
    config = LearnerConfig.model_validate(BASE)
    agent = _agent(config, ContextTask(0, total_steps=10))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "rltrade.agent.checkpoint", "payload": _NotATensor()}, evil)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        _load(evil, agent)
    good = tmp_path / "good.pt"
    _save(good, agent)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        _load(truncated, agent)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        _load(tmp_path / "missing.pt", agent)
    other = tmp_path / "other.pt"
    with other.open("wb") as f:
        pickle.dump({"x": 1}, f)
    with pytest.raises(CheckpointError):
        _load(other, agent)


def test_loading_into_a_different_run_is_refused(tmp_path: Path) -> None:
    config = LearnerConfig.model_validate(BASE)
    task = ContextTask(0, total_steps=10)
    path = tmp_path / "c.pt"
    _save(path, _agent(config, task))
    changed = _agent(config.model_copy(update={"lr": 5e-4}), task)
    with pytest.raises(CheckpointError, match=r"lr: saved 0\.002 vs now 0\.0005"):
        _load(path, changed)
    agent = _agent(config, task)
    with pytest.raises(CheckpointError, match=r"rngs saved as \[\] but \['env'\]"):
        _load(path, agent, rngs={"env": np.random.default_rng(0)})
    with pytest.raises(CheckpointError, match="extra saved as"):
        load_checkpoint(path, learner=agent.learner, replay=agent.replay)


def test_a_checkpoint_written_on_a_gpu_loads_on_a_cpu_for_evaluation_and_refuses_to_resume(tmp_path: Path) -> None:
    config = LearnerConfig.model_validate({**BASE, "seed": 3})
    task = ContextTask(3, total_steps=80)
    agent = _agent(config, task)
    for _ in range(80):
        task.step(agent)
    assert agent.learner.updates > 0
    cpu_path, gpu_path = tmp_path / "cpu.pt", tmp_path / "gpu.pt"
    _save(cpu_path, agent)
    as_written_on_cuda(cpu_path, gpu_path)
    if not torch.cuda.is_available():  # the file really holds CUDA storages: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu_path, weights_only=True)

    evaluator = _agent(config, task).learner
    load_learner_state(gpu_path, evaluator)
    assert evaluator.device == torch.device("cpu")
    for p, q in zip(evaluator.online.parameters(), agent.learner.online.parameters(), strict=True):
        assert p.device.type == "cpu" and torch.equal(p, q)
    assert evaluator.updates == agent.learner.updates
    obs = np.random.default_rng(0).standard_normal((32, task.state_dim + task.account_dim)).astype(np.float32)
    assert np.array_equal(evaluator.act(obs, 0, greedy=True), agent.learner.act(obs, 0, greedy=True))
    assert weights_fingerprint(gpu_path) == weights_fingerprint(cpu_path)

    # Resuming must continue the CUDA random streams, which a CPU generator cannot hold: a clear refusal.
    with pytest.raises(CheckpointError, match=r"written on cuda: its random streams .* cannot continue on cpu"):
        _load(gpu_path, _agent(config, task))
