"""DQNLearner: targets and loss against hand-written oracles, clipping, target sync, acting, C51, determinism."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from rltrade.agent.batches import ArrayStateSource, ReplaySample
from rltrade.agent.encoder import BlockSpec
from rltrade.agent.learner import DQNLearner, LearnerConfig, clip_grad_norm, project_distribution

F_STATE, K, B = 6, 2, 16
SMALL = {"hidden": (16, 8), "batch_size": 16, "buffer_size": 64, "lr": 1e-3}


def _config(**fields: Any) -> LearnerConfig:
    return LearnerConfig.model_validate({**SMALL, **fields})


@pytest.fixture
def source() -> ArrayStateSource:
    return ArrayStateSource(np.random.default_rng(0).standard_normal((40, F_STATE), dtype=np.float32))


@pytest.fixture
def deterministic() -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def _sample(seed: int = 1, *, terminal_every: int = 4, weights: bool = True) -> ReplaySample:
    rng = np.random.default_rng(seed)
    t_idx = rng.integers(0, 39, B)
    discount = np.where(np.arange(B) % terminal_every == 0, 0.0, 0.99**3).astype(np.float32)
    return ReplaySample(
        t_idx_B=t_idx,
        account_BK=rng.standard_normal((B, K), dtype=np.float32),
        action_B=rng.integers(0, 3, B),
        reward_B=rng.standard_normal(B).astype(np.float32) * 2,
        discount_B=discount,
        next_t_idx_B=t_idx + 1,
        next_account_BK=rng.standard_normal((B, K), dtype=np.float32),
        weight_B=(rng.uniform(0.2, 1.0, B) if weights else np.ones(B)).astype(np.float32),
        tree_idx_B=np.arange(B),
    )


def _obs(source: ArrayStateSource, t_idx: np.ndarray, account: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(source.gather(t_idx)), torch.from_numpy(account)


def _perturb_target(learner: DQNLearner) -> None:
    # Online and target start equal; make them differ so double and vanilla targets differ.
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for p in learner.target.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)


# ---------------------------------------------------------------------------------------- config
def test_config_defaults_follow_the_original_design() -> None:
    c = LearnerConfig()
    assert (c.lr, c.gamma, c.batch_size, c.buffer_size, c.hidden[0], c.n_actions) == (
        1e-4,
        0.99,
        128,
        50_000,
        1024,
        3,
    )
    assert c.dueling and c.double and c.prioritized


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"encoder_channels": (4, 4), "encoder_patches": (2,)}, "one entry per stage"),
        ({"batch_size": 100, "buffer_size": 50}, "exceeds buffer_size"),
        ({"distributional": True, "v_min": 1.0, "v_max": 0.0}, "v_min < v_max"),
        ({"lr": 0.0}, "greater than 0"),
        ({"learning_rate": 1e-3}, "Extra inputs"),
    ],
)
def test_config_rejects_inconsistent_fields(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LearnerConfig.model_validate(fields)


def test_config_is_frozen_and_documented() -> None:
    with pytest.raises(ValidationError):
        LearnerConfig().lr = 1.0
    undocumented = [name for name, f in LearnerConfig.model_fields.items() if not f.description]
    assert undocumented == []


# ---------------------------------------------------------------------------------------- update
@pytest.mark.parametrize("double", [True, False])
def test_update_loss_and_td_match_the_n_step_double_dqn_oracle(source: ArrayStateSource, double: bool) -> None:
    learner = DQNLearner(_config(double=double, huber_delta=0.5), F_STATE, K)
    _perturb_target(learner)
    online, target = copy.deepcopy(learner.online), copy.deepcopy(learner.target)
    s = _sample()
    with torch.no_grad():
        obs = _obs(source, s.t_idx_B, s.account_BK)
        next_obs = _obs(source, s.next_t_idx_B, s.next_account_BK)
        next_q_target = target(*next_obs)
        chooser = online(*next_obs) if double else next_q_target
        rows = np.arange(B)
        y = torch.from_numpy(s.reward_B) + torch.from_numpy(s.discount_B) * next_q_target[rows, chooser.argmax(1)]
        q_sa = online(*obs)[rows, torch.from_numpy(s.action_B)]
        per_sample = F.huber_loss(q_sa, y, reduction="none", delta=0.5)
        expected_loss = (torch.from_numpy(s.weight_B) * per_sample).mean()
    result = learner.update(s, source)
    assert result.loss == pytest.approx(float(expected_loss), rel=1e-6)
    np.testing.assert_allclose(result.td_abs_B, (y - q_sa).abs().numpy(), rtol=1e-6)
    assert result.td_abs_B.dtype == np.float32 and result.td_abs_B.shape == (B,)
    assert result.q_mean == pytest.approx(float(q_sa.mean()), rel=1e-6)
    assert set(result.metrics) == {"loss", "q_mean", "td_abs_mean", "grad_norm"}


def test_double_and_vanilla_targets_differ_when_the_nets_disagree(source: ArrayStateSource) -> None:
    losses = []
    for double in (True, False):
        learner = DQNLearner(_config(double=double), F_STATE, K)
        _perturb_target(learner)
        losses.append(learner.update(_sample(), source).loss)
    assert losses[0] != losses[1]


def test_terminal_transitions_do_not_bootstrap(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(), F_STATE, K)
    s = _sample(terminal_every=1)  # every discount is 0: the target is the n-step return itself
    with torch.no_grad():
        q_sa = learner.online(*_obs(source, s.t_idx_B, s.account_BK))[np.arange(B), s.action_B]
    result = learner.update(s, source)
    np.testing.assert_allclose(result.td_abs_B, np.abs(s.reward_B - q_sa.numpy()), rtol=1e-6)


def test_zero_importance_weight_removes_a_sample_from_the_gradient(source: ArrayStateSource) -> None:
    s = _sample(weights=False)
    weight = np.ones(B, dtype=np.float32)
    weight[B // 2 :] = 0.0
    half = s._replace(weight_B=weight)
    # Oracle: the same update on only the first half, with weights scaled for the mean over B.
    first = ReplaySample(*(np.asarray(v)[: B // 2] for v in s))
    first = first._replace(weight_B=np.full(B // 2, 0.5, dtype=np.float32))
    a = DQNLearner(_config(), F_STATE, K)
    b = DQNLearner(_config(), F_STATE, K)
    a.update(half, source)
    b.update(first, source)
    for pa, pb in zip(a.online.parameters(), b.online.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_clip_grad_norm_matches_torch_bit_for_bit() -> None:
    for scale in (1e-3, 1e3):  # below and above the limit
        grads = [torch.randn(50, 7, generator=torch.Generator().manual_seed(i)) * scale for i in range(3)]
        mine = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        ref = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, q, g in zip(mine, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        norm = clip_grad_norm(mine, 1.0)
        ref_norm = torch.nn.utils.clip_grad_norm_(ref, 1.0)
        assert torch.equal(norm, ref_norm)
        for p, q in zip(mine, ref, strict=True):
            assert torch.equal(p.grad, q.grad)
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in mine]))
        assert float(total) <= 1.0 + 1e-5


def test_update_reports_gradient_norm_before_clipping(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(max_grad_norm=1e-4), F_STATE, K)
    result = learner.update(_sample(), source)
    assert result.grad_norm > 1e-3  # clipped to 1e-4 before the step, reported as it was


def test_hard_target_update_copies_every_interval(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(target_update="hard", target_update_interval=3), F_STATE, K)
    start = copy.deepcopy(learner.target.state_dict())
    for i in range(1, 4):
        learner.update(_sample(i), source)
        same_as_start = all(torch.equal(v, start[k]) for k, v in learner.target.state_dict().items())
        assert same_as_start == (i < 3)
    for p, q in zip(learner.target.parameters(), learner.online.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not any(p.requires_grad for p in learner.target.parameters())


def test_polyak_target_update_blends_by_tau(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(target_update="polyak", tau=0.25), F_STATE, K)
    before = [p.detach().clone() for p in learner.target.parameters()]
    learner.update(_sample(), source)
    for old, new, online in zip(before, learner.target.parameters(), learner.online.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)


def test_update_rejects_a_mismatched_observation_width(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(), F_STATE, K + 1)
    with pytest.raises(ValueError, match=r"6 features and the replay 2 account values, .* account_dim=3"):
        learner.update(_sample(), source)


def test_fused_adam_is_used_on_cpu() -> None:
    learner = DQNLearner(_config(), F_STATE, K)
    assert learner.optimizer.defaults["fused"] is True


@pytest.mark.parametrize("network", ["flat", "structured"])
def test_updates_are_deterministic(source: ArrayStateSource, deterministic: None, network: str) -> None:
    config = _config(
        network=network,
        encoder_channels=(4,),
        encoder_patches=(3,),
        exploration="noisy",
        distributional=True,
        n_atoms=11,
        seed=3,
    )
    blocks = [BlockSpec("bars", (3, 2), 0, 6, "bars")]
    runs = []
    for _ in range(2):
        learner = DQNLearner(config, F_STATE, K, blocks=blocks)
        losses = [learner.update(_sample(i), source).loss for i in range(4)]
        runs.append((losses, [p.detach().clone() for p in learner.online.parameters()]))
    assert runs[0][0] == runs[1][0]
    for p, q in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(p, q)
    other = DQNLearner(config.model_copy(update={"seed": 4}), F_STATE, K, blocks=blocks)
    assert not torch.equal(other.online.head.advantage.weight_mu, learner.online.head.advantage.weight_mu)


def test_structured_learner_updates_its_encoder(source: ArrayStateSource) -> None:
    blocks = [BlockSpec("bars", (3, 2), 0, 6, "bars")]
    config = _config(network="structured", encoder_channels=(4,), encoder_patches=(3,), encoder_hidden=(8, 8))
    learner = DQNLearner(config, F_STATE, K, blocks=blocks)
    stack = learner.online.body.encoder.stacks["bars_3x2"]
    before = stack.stages[0].weight.detach().clone()
    learner.update(_sample(), source)
    assert not torch.equal(before, stack.stages[0].weight)
    with pytest.raises(ValueError, match="needs the state layout"):
        DQNLearner(config, F_STATE, K)


# ---------------------------------------------------------------------------------------- C51
def _project_oracle(probs: np.ndarray, reward: np.ndarray, discount: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Bellemare et al. 2017, Algorithm 1: one atom at a time, mass split between floor and ceiling."""
    v_min, v_max, n = support[0], support[-1], support.size
    dz = (v_max - v_min) / (n - 1)
    out = np.zeros_like(probs, dtype=np.float64)
    for i in range(probs.shape[0]):
        for j in range(n):
            tz = min(max(reward[i] + discount[i] * support[j], v_min), v_max)
            b = (tz - v_min) / dz
            lo, hi = int(np.floor(b)), int(np.ceil(b))
            if lo == hi:
                out[i, lo] += probs[i, j]
            else:
                out[i, lo] += probs[i, j] * (hi - b)
                out[i, hi] += probs[i, j] * (b - lo)
    return out


def test_c51_projection_matches_the_papers_algorithm() -> None:
    rng = np.random.default_rng(0)
    support = np.linspace(-3.0, 5.0, 9)
    probs = rng.dirichlet(np.ones(9), size=12)
    reward = np.concatenate([rng.normal(0, 3, 10), [1.0, 100.0]])  # an exact atom hit and a clamp
    discount = np.concatenate([np.full(8, 0.97), np.zeros(2), [0.0, 0.5]])
    got = project_distribution(
        torch.tensor(probs, dtype=torch.float64),
        torch.tensor(reward),
        torch.tensor(discount),
        torch.tensor(support),
    )
    np.testing.assert_allclose(got.numpy(), _project_oracle(probs, reward, discount, support), atol=1e-12)
    np.testing.assert_allclose(got.sum(1).numpy(), 1.0)


def test_c51_update_uses_the_cross_entropy_as_priority(source: ArrayStateSource) -> None:
    learner = DQNLearner(_config(distributional=True, n_atoms=11), F_STATE, K)
    result = learner.update(_sample(), source)
    assert np.all(result.td_abs_B > 0)
    assert result.loss == pytest.approx(float(np.mean(_sample().weight_B * result.td_abs_B)), rel=1e-5)


# ---------------------------------------------------------------------------------------- acting
def test_epsilon_greedy_follows_the_schedule() -> None:
    config = _config(epsilon_start=1.0, epsilon_end=0.0, epsilon_steps=100)
    learner = DQNLearner(config, F_STATE, K)
    obs = np.zeros((3000, F_STATE + K), dtype=np.float32)
    obs[:, 0] = 1.0
    greedy = learner.act(obs[:1], 0, greedy=True)[0]
    explore = learner.act(obs, 0)  # ε = 1: uniform
    counts = np.bincount(explore, minlength=3)
    assert counts.min() > 900
    assert np.all(learner.act(obs, 100) == greedy)  # ε = 0
    half = learner.act(obs, 50)  # ε = 0.5: greedy with probability 0.5 + 0.5/3
    assert np.mean(half == greedy) == pytest.approx(2 / 3, abs=0.04)
    assert learner.epsilon(50) == pytest.approx(0.5)


def test_acting_draws_from_the_given_generator_only() -> None:
    learner = DQNLearner(_config(), F_STATE, K)
    obs = np.random.default_rng(0).standard_normal((50, F_STATE + K)).astype(np.float32)
    state = learner.act_generator.get_state()
    a = learner.act(obs, 0, generator=torch.Generator().manual_seed(5))
    b = learner.act(obs, 0, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(a, b)
    assert torch.equal(learner.act_generator.get_state(), state)
    with pytest.raises(ValueError, match=r"shape \[B, 8\]"):
        learner.act(obs[:, :-1], 0)


def test_noisy_acting_is_greedy_on_resampled_noise_and_deterministic_when_evaluating() -> None:
    learner = DQNLearner(_config(exploration="noisy", noisy_sigma0=5.0), F_STATE, K)
    obs = np.random.default_rng(0).standard_normal((200, F_STATE + K)).astype(np.float32)
    assert learner.epsilon(0) == 0.0
    evaluations = [learner.act(obs, 0, greedy=True) for _ in range(3)]
    assert all(np.array_equal(evaluations[0], e) for e in evaluations)
    explored = [learner.act(obs, 0) for _ in range(3)]
    assert not all(np.array_equal(explored[0], e) for e in explored)
    assert learner.online.training


def test_a_saved_learner_loads_whatever_seed_the_new_one_was_built_with() -> None:
    saved = DQNLearner(_config(seed=5), F_STATE, K)
    loaded = DQNLearner(_config(seed=0), F_STATE, K)
    loaded.load_state_dict(saved.state_dict())
    assert all(torch.equal(v, saved.online.state_dict()[k]) for k, v in loaded.online.state_dict().items())
    assert torch.equal(loaded.act_generator.get_state(), saved.act_generator.get_state())
    with pytest.raises(ValueError, match=r"different config.*lr"):
        DQNLearner(_config(seed=5, lr=0.5), F_STATE, K).load_state_dict(saved.state_dict())
