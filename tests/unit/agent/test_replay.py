"""PrioritizedReplay: layout, priorities, sampling law, weights, ring, checkpoints, determinism."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from rltrade.agent import replay as replay_module
from rltrade.agent.batches import ArrayStateSource, ReplaySample, StateSource, Transitions
from rltrade.agent.replay import (
    PrioritizedReplay,
    ReplayMemoryWarning,
    ReplayStateError,
    generator_state,
    record_dtype,
    restore_generator,
)

K = 3
ALPHA, EPS = 0.6, 1e-6


def transitions(t_idx: range | list[int] | np.ndarray) -> Transitions:
    """Transitions whose fields are all derived from ``t_idx`` (so a sample can be checked)."""
    t = np.asarray(t_idx, dtype=np.int64)
    account = np.stack([t, -t, np.full_like(t, 7)], axis=1).astype(np.float32)
    return Transitions(
        t_idx_B=t,
        account_BK=account,
        action_B=t % 3,
        reward_B=(0.5 * t).astype(np.float32),
        discount_B=np.where(t % 4 == 0, 0.0, 0.99**3).astype(np.float32),
        next_t_idx_B=t + 3,
        next_account_BK=account + 1.0,
    )


def replay(capacity: int = 16, seed: int = 0, *, alpha: float = ALPHA, prioritized: bool = True) -> PrioritizedReplay:
    return PrioritizedReplay(
        capacity, K, alpha=alpha, eps=EPS, rng=np.random.default_rng(seed), prioritized=prioritized
    )


def priority(td: float, alpha: float = ALPHA) -> float:
    return float(np.float64(np.float32(td + EPS)) ** alpha)


def test_record_is_packed_and_small() -> None:
    assert record_dtype(K).itemsize == 4 + 4 + 1 + 4 + 4 + 2 * 4 * K
    big = PrioritizedReplay(1_000_000, 8, rng=np.random.default_rng(0))
    # Records (81 B) + two float64 trees over 2^20 leaves + float32 |δ|+ε per slot.
    assert big.nbytes() == 1_000_000 * (81 + 4) + 2 * 2 * 2**20 * 8
    assert big.bytes_per_transition() < 128
    uniform = PrioritizedReplay(1_000_000, 8, rng=np.random.default_rng(0), prioritized=False)
    assert uniform.nbytes() == 81_000_000


def test_sample_returns_the_stored_fields_with_learner_dtypes() -> None:
    buf = replay()
    batch = transitions(np.arange(10, 20))
    buf.add(batch)
    s = buf.sample(64, beta=0.4)
    assert isinstance(s, ReplaySample)
    rows = s.t_idx_B - 10
    for name in ("account_BK", "action_B", "reward_B", "discount_B", "next_t_idx_B", "next_account_BK"):
        np.testing.assert_array_equal(getattr(s, name), getattr(batch, name)[rows])
    np.testing.assert_array_equal(s.tree_idx_B, rows)
    dtypes = {name: getattr(s, name).dtype for name in ReplaySample._fields}
    assert dtypes == {
        "t_idx_B": np.int64,
        "account_BK": np.float32,
        "action_B": np.int64,
        "reward_B": np.float32,
        "discount_B": np.float32,
        "next_t_idx_B": np.int64,
        "next_account_BK": np.float32,
        "weight_B": np.float32,
        "tree_idx_B": np.int64,
    }
    assert s.account_BK.shape == (64, K) and s.account_BK.flags.c_contiguous


def test_new_transitions_enter_at_max_priority() -> None:
    buf = replay()
    buf.add(transitions(range(4)))
    np.testing.assert_array_equal(buf.priorities(), np.ones(4))  # nothing seen yet: priority 1
    buf.update_priorities(np.array([0, 1, 2, 3]), np.array([0.5, 3.0, 0.1, 0.0]))
    buf.update_priorities(np.array([1]), np.array([0.2]))  # the max is the max ever seen
    buf.add(transitions([4, 5]))
    expected = [priority(0.5), priority(0.2), priority(0.1), priority(0.0), priority(3.0), priority(3.0)]
    np.testing.assert_allclose(buf.priorities(), expected, rtol=1e-12)


def test_duplicate_slots_in_update_last_one_wins() -> None:
    buf = replay()
    buf.add(transitions(range(4)))
    buf.update_priorities(np.array([1, 2, 1, 1]), np.array([5.0, 1.0, 9.0, 0.25]))
    np.testing.assert_allclose(buf.priorities(), [1.0, priority(0.25), priority(1.0), 1.0], rtol=1e-12)


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


def test_sampling_frequencies_are_proportional_to_priority() -> None:
    buf = replay(capacity=8, seed=11, alpha=0.7)
    buf.add(transitions(range(8)))
    td = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.05, 3.0, 0.7])
    buf.update_priorities(np.arange(8), td)
    counts = np.zeros(8)
    for _ in range(2000):
        np.add.at(counts, buf.sample(32, beta=0.5).tree_idx_B, 1)
    p = (td + EPS) ** 0.7
    # 7 degrees of freedom: P(χ² > 24.32) = 0.001 for i.i.d. draws; stratified draws vary less.
    assert chi_square(counts, p / p.sum()) < 24.32
    assert chi_square(counts, np.full(8, 1 / 8)) > 1000  # the test can tell a wrong law apart


def test_stratified_sampling_hits_every_segment_once() -> None:
    buf = replay(capacity=16)
    buf.add(transitions(range(16)))  # equal priorities: segment i is exactly slot i
    for _ in range(20):
        np.testing.assert_array_equal(buf.sample(16, beta=1.0).tree_idx_B, np.arange(16))


def test_importance_weights_match_the_definition() -> None:
    buf = replay(capacity=10, seed=3)
    buf.add(transitions(range(6)))
    td = np.array([0.3, 2.0, 0.01, 1.0, 0.5, 0.7])
    buf.update_priorities(np.arange(6), td)
    beta = 0.45
    s = buf.sample(50, beta)
    p = np.float32(td + EPS).astype(np.float64) ** ALPHA
    prob = p / p.sum()
    w = (len(buf) * prob) ** -beta
    np.testing.assert_allclose(s.weight_B, w[s.tree_idx_B] / w.max(), rtol=1e-6)
    assert s.weight_B.max() <= 1.0


def test_ring_overwrites_the_oldest_and_resets_their_priority() -> None:
    buf = replay(capacity=5)
    np.testing.assert_array_equal(buf.add(transitions(range(4))), [0, 1, 2, 3])
    buf.update_priorities(np.array([0, 1]), np.array([0.0, 9.0]))
    np.testing.assert_array_equal(buf.add(transitions([4, 5, 6])), [4, 0, 1])
    assert len(buf) == 5
    seen = set(buf.sample(500, beta=0.4).t_idx_B.tolist())
    assert seen == {2, 3, 4, 5, 6}
    # Slot 0 held t=0 at priority ε^α; its new occupant t=5 enters at the max priority.
    np.testing.assert_allclose(buf.priorities()[[0, 1]], [priority(9.0), priority(9.0)], rtol=1e-12)


def test_batch_longer_than_capacity_keeps_its_tail_like_sequential_adds() -> None:
    one_by_one, at_once = replay(capacity=3), replay(capacity=3)
    for t in range(7):
        one_by_one.add(transitions([t]))
    np.testing.assert_array_equal(at_once.add(transitions(range(7))), [1, 2, 0])
    for a, b in zip(one_by_one.sample(30, 0.4), at_once.sample(30, 0.4), strict=True):
        np.testing.assert_array_equal(a, b)
    at_once.add(transitions([7]))  # pointer continues where sequential adds would be
    one_by_one.add(transitions([7]))
    np.testing.assert_array_equal(at_once.sample(9, 0.4).t_idx_B, one_by_one.sample(9, 0.4).t_idx_B)


def test_set_alpha_equals_a_buffer_built_with_that_alpha() -> None:
    td = np.array([0.3, 2.0, 0.01, 1.0])
    annealed, fresh = replay(alpha=0.6), replay(alpha=0.2)
    for buf in (annealed, fresh):
        buf.add(transitions(range(4)))
        buf.update_priorities(np.arange(4), td)
    annealed.set_alpha(0.2)
    np.testing.assert_array_equal(annealed.priorities(), fresh.priorities())
    annealed.add(transitions([4]))
    fresh.add(transitions([4]))
    np.testing.assert_array_equal(annealed.priorities(), fresh.priorities())


def test_alpha_zero_samples_uniformly_with_unit_weights() -> None:
    buf = replay(alpha=0.0)
    buf.add(transitions(range(8)))
    buf.update_priorities(np.arange(8), np.arange(8.0))
    np.testing.assert_array_equal(buf.priorities(), np.ones(8))
    np.testing.assert_array_equal(buf.sample(20, beta=1.0).weight_B, np.ones(20))


def test_uniform_mode() -> None:
    buf = replay(capacity=8, seed=5, prioritized=False)
    buf.add(transitions(range(8)))
    buf.update_priorities(np.arange(8), np.arange(8.0))  # ignored, but checked
    counts = np.zeros(8)
    for _ in range(500):
        s = buf.sample(32, beta=0.4)
        np.testing.assert_array_equal(s.weight_B, np.ones(32))
        np.add.at(counts, s.tree_idx_B, 1)
    assert chi_square(counts, np.full(8, 1 / 8)) < 24.32
    with pytest.raises(ValueError, match="finite"):
        buf.update_priorities(np.array([0]), np.array([np.nan]))


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    a, b, other = replay(seed=42), replay(seed=42), replay(seed=43)
    for buf in (a, b, other):
        buf.add(transitions(range(12)))
    assert not np.array_equal(other.sample(8, 0.5).tree_idx_B, replay_and_sample(42))
    for step in range(5):
        sa, sb = a.sample(8, 0.5), b.sample(8, 0.5)
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_array_equal(x, y)
        td = np.abs(np.sin(sa.t_idx_B + step))
        a.update_priorities(sa.tree_idx_B, td)
        b.update_priorities(sb.tree_idx_B, td)


def replay_and_sample(seed: int) -> np.ndarray:
    buf = replay(seed=seed)
    buf.add(transitions(range(12)))
    return buf.sample(8, 0.5).tree_idx_B


@pytest.mark.parametrize("prioritized", [True, False])
def test_state_dict_round_trip_through_weights_only_torch_load(tmp_path: Path, prioritized: bool) -> None:
    src = replay(capacity=20, seed=7, prioritized=prioritized)
    src.add(transitions(range(25)))  # wrapped once
    s = src.sample(16, 0.5)
    src.update_priorities(s.tree_idx_B, np.linspace(0.0, 3.0, 16))
    src.set_alpha(0.5)
    path = tmp_path / "replay.pt"
    torch.save(src.state_dict(), path)

    dst = replay(capacity=20, seed=999, prioritized=prioritized)
    dst.load_state_dict(torch.load(path, weights_only=True))
    assert len(dst) == len(src) and dst.alpha == src.alpha
    np.testing.assert_array_equal(dst.priorities(), src.priorities())
    for step in range(4):  # sampling, updating and adding continue identically
        sa, sb = src.sample(16, 0.6), dst.sample(16, 0.6)
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_array_equal(x, y)
        td = np.abs(np.cos(sa.t_idx_B * (step + 1)))
        src.update_priorities(sa.tree_idx_B, td)
        dst.update_priorities(sb.tree_idx_B, td)
        src.add(transitions([100 + step]))
        dst.add(transitions([100 + step]))


def test_load_refuses_a_state_from_another_layout() -> None:
    state = replay(capacity=20).state_dict()
    with pytest.raises(ReplayStateError, match="capacity"):
        replay(capacity=21).load_state_dict(state)
    with pytest.raises(ReplayStateError, match="prioritized"):
        replay(capacity=20, prioritized=False).load_state_dict(state)


def test_generator_state_round_trip_for_array_based_bit_generators() -> None:
    for bit_generator in (np.random.PCG64(1), np.random.MT19937(1), np.random.Philox(1)):
        rng = np.random.Generator(bit_generator)
        rng.random(3)
        saved = generator_state(rng)
        expected = rng.random(5)
        restore_generator(rng, saved)
        np.testing.assert_array_equal(rng.random(5), expected)
    with pytest.raises(ReplayStateError, match="PCG64"):
        restore_generator(np.random.Generator(np.random.MT19937(0)), generator_state(np.random.default_rng(0)))


def test_warns_when_capacity_exceeds_available_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = namedtuple("memory", "available")
    monkeypatch.setattr(replay_module.psutil, "virtual_memory", lambda: memory(available=10_000))
    with pytest.warns(ReplayMemoryWarning, match="capacity 1,000"):
        replay(capacity=1000)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("account_BK", np.zeros((2, K + 1), dtype=np.float32), "account"),
        ("reward_B", np.array([0.0, np.nan], dtype=np.float32), "non-finite"),
        ("t_idx_B", np.array([0, 2**31]), "2\\^31"),
        ("next_t_idx_B", np.array([-1, 0]), "2\\^31"),
        ("action_B", np.array([0, 256]), "uint8"),
        ("discount_B", np.array([0.5, 1.5], dtype=np.float32), "discount"),
    ],
)
def test_add_rejects_bad_transitions(field: str, value: np.ndarray, match: str) -> None:
    bad = transitions([0, 1])._replace(**{field: value})
    with pytest.raises(ValueError, match=match):
        replay().add(bad)


def test_sample_and_update_reject_bad_calls() -> None:
    buf = replay()
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, 0.4)
    buf.add(transitions(range(4)))
    with pytest.raises(ValueError, match="beta"):
        buf.sample(4, 1.5)
    with pytest.raises(IndexError, match="filled"):
        buf.update_priorities(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        buf.update_priorities(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="alpha"):
        replay(alpha=1.5)


def test_states_are_gathered_through_a_state_source() -> None:
    states_TF = np.arange(40 * 5, dtype=np.float32).reshape(40, 5)
    source = ArrayStateSource(states_TF)
    assert isinstance(source, StateSource)
    buf = replay()
    buf.add(transitions(range(30)))
    s = buf.sample(8, 0.4)
    np.testing.assert_array_equal(source.gather(s.t_idx_B), states_TF[s.t_idx_B])
    np.testing.assert_array_equal(source.gather(s.next_t_idx_B), states_TF[s.next_t_idx_B])
    with pytest.raises(IndexError, match=r"\[0, 40\)"):
        source.gather(np.array([40]))
    with pytest.raises(TypeError, match="float32"):
        ArrayStateSource(states_TF.astype(np.float64))
