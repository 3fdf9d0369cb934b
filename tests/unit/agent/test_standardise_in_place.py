"""The learner standardises its gathered batches in place, s' once for both networks: the same updates bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rltrade.agent.batches import ArrayStateSource
from rltrade.agent.block_norm import InputStandardiser
from rltrade.agent.learner import DQNLearner
from tests.unit.agent.test_overlap_update import STRUCTURED, T, _learner, _samples

STATES = np.random.default_rng(0).standard_normal((T, 52), dtype=np.float32) * 3.0 + 0.5


class _NetworksOwnStandardisers(DQNLearner):
    """The learner as it was: every network standardises its own copy of each batch."""

    @staticmethod
    def _standardise_(states_BF: torch.Tensor, *nets: Any) -> bool:
        return False


class _CountingSource(ArrayStateSource):
    """Counts the calls to ``standardise_`` while recording which batches were gathered."""

    def __init__(self, states: np.ndarray) -> None:
        super().__init__(states)
        self.batches: list[np.ndarray] = []

    def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
        out = super().gather(t_idx_B)
        self.batches.append(out)
        return out


def _pair(fields: dict[str, Any], overlap: bool) -> tuple[DQNLearner, DQNLearner]:
    new = _learner(fields, overlap)
    old = _learner(fields, overlap)
    old.__class__ = _NetworksOwnStandardisers
    for learner in (new, old):
        learner.fit_input_norm(STATES[:100])
    return new, old


@pytest.mark.parametrize("overlap", [False, True], ids=["one-thread", "overlapped"])
@pytest.mark.parametrize(
    "fields",
    [STRUCTURED, {**STRUCTURED, "double": False}, {**STRUCTURED, "distributional": True, "n_atoms": 11}],
    ids=["double", "vanilla", "c51"],
)
def test_in_place_standardisation_gives_the_same_updates_bit_for_bit(fields: dict[str, Any], overlap: bool) -> None:
    new, old = _pair(fields, overlap)
    source = ArrayStateSource(STATES)
    for sample in _samples(8):
        a, b = new.update(sample, source), old.update(sample, source)
        assert (a.loss, a.q_mean, a.grad_norm) == (b.loss, b.q_mean, b.grad_norm)
        np.testing.assert_array_equal(a.td_abs_B, b.td_abs_B)
    for net in ("online", "target"):
        mine, theirs = getattr(new, net).state_dict(), getattr(old, net).state_dict()
        assert all(torch.equal(p, q) for p, q in zip(mine.values(), theirs.values(), strict=True))
    np.testing.assert_array_equal(STATES, ArrayStateSource(STATES).gather(np.arange(T)))  # the source is untouched


def test_each_gathered_batch_is_standardised_once_and_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    learner = _learner(STRUCTURED, overlap=False)
    learner.fit_input_norm(STATES[:100])
    calls: list[int] = []
    original = InputStandardiser.standardise_

    def counting(self: InputStandardiser, x_BF: torch.Tensor) -> torch.Tensor:
        calls.append(x_BF.data_ptr())
        return original(self, x_BF)

    monkeypatch.setattr(InputStandardiser, "standardise_", counting)
    forward_calls: list[int] = []
    monkeypatch.setattr(InputStandardiser, "forward", lambda self, x: forward_calls.append(1) or x)
    source = _CountingSource(STATES)
    sample = _samples(1)[0]
    learner.update(sample, source)
    assert len(calls) == 2, "s once for the online network, s' once for both networks"
    assert not forward_calls, "no network standardised a copy of its own"
    (batch,) = source.batches  # s and s' in one gather (one thread): standardised where they lie
    norm = learner.online.input_standardiser()
    assert norm is not None
    expected = original(norm, torch.from_numpy(STATES[np.concatenate([sample.t_idx_B, sample.next_t_idx_B])]))
    np.testing.assert_array_equal(batch, expected.numpy())
    assert not np.array_equal(batch, STATES[np.concatenate([sample.t_idx_B, sample.next_t_idx_B])])


def test_networks_with_other_statistics_each_standardise_their_own_copy() -> None:
    new, old = _pair(STRUCTURED, overlap=False)
    for learner in (new, old):  # a target standardiser that differs (never so in training): no shared pass
        norm = learner.target.input_standardiser()
        assert norm is not None
        norm.fit(np.full(52, 0.25, np.float32), np.full(52, 2.0, np.float32))
    target, online = new.target.input_standardiser(), new.online.input_standardiser()
    assert target is not None and online is not None and not target.same_statistics(online)
    source = ArrayStateSource(STATES)
    for sample in _samples(4):
        a, b = new.update(sample, source), old.update(sample, source)
        assert (a.loss, a.grad_norm) == (b.loss, b.grad_norm)
        np.testing.assert_array_equal(a.td_abs_B, b.td_abs_B)


def test_standardise_in_place_equals_the_forward_pass_and_a_read_only_batch_is_copied() -> None:
    norm = InputStandardiser(52, clip=4.0)
    norm.fit(STATES.mean(axis=0), STATES.std(axis=0) / 3.0)  # some values clip
    x = torch.from_numpy(STATES.copy())
    expected = norm(x)
    assert bool((expected.abs() == 4.0).any())
    out = norm.standardise_(x)
    assert out.data_ptr() == x.data_ptr() and torch.equal(out, expected)
    learner = _learner(STRUCTURED, overlap=False)
    read_only = STATES.copy()
    read_only.flags.writeable = False

    class _ReadOnly:
        def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
            return read_only[: len(t_idx_B)]

    learner.fit_input_norm(STATES[:100])
    learner.update(_samples(1)[0], _ReadOnly())
    np.testing.assert_array_equal(read_only, STATES)
