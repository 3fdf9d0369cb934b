"""``agent.overlap_update``: the s' half of an update on a worker thread gives the same updates bit for bit."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch

from rltrade.agent.batches import ArrayStateSource, ReplaySample
from rltrade.agent.encoder import BlockSpec, StructuredEncoder, block_dropout
from rltrade.agent.learner import DQNLearner, LearnerConfig
from rltrade.agent.overlap import OverlapChooser
from rltrade.training.presets import load_with_preset

BLOCKS = (
    BlockSpec("ticks", (6, 2), 0, 12, "ticks"),
    BlockSpec("bars_a", (6, 3), 12, 30, "bars"),
    BlockSpec("flags", (2,), 30, 32, "flat"),
    BlockSpec("bars_b", (6, 3), 32, 50, "bars"),
)
F_STATE, K, B, T = 52, 3, 32, 200
SMALL: dict[str, Any] = {"hidden": (16, 8), "batch_size": B, "buffer_size": 256, "lr": 3e-3, "seed": 7}
STRUCTURED: dict[str, Any] = {
    "network": "structured",
    "encoder_channels": (4,),
    "encoder_patches": (3,),
    "encoder_hidden": (16,),
    "block_norm": True,
    "block_dropout": 0.3,
    "encoder_recent_rows": 2,
}


def _samples(n: int) -> list[ReplaySample]:
    rng = np.random.default_rng(3)
    out = []
    for _ in range(n):
        t_idx = rng.integers(0, T - 3, B)
        out.append(
            ReplaySample(
                t_idx_B=t_idx,
                account_BK=rng.standard_normal((B, K), dtype=np.float32),
                action_B=rng.integers(0, 3, B),
                reward_B=rng.standard_normal(B).astype(np.float32),
                discount_B=np.where(rng.random(B) < 0.1, 0.0, 0.97).astype(np.float32),
                next_t_idx_B=t_idx + 3,
                next_account_BK=rng.standard_normal((B, K), dtype=np.float32),
                weight_B=rng.uniform(0.3, 1.0, B).astype(np.float32),
                tree_idx_B=np.arange(B),
            )
        )
    return out


def _learner(fields: dict[str, Any], overlap: bool | str) -> DQNLearner:
    config = LearnerConfig.model_validate({**SMALL, **fields, "overlap_update": overlap})
    blocks = BLOCKS if fields.get("network") == "structured" else None
    return DQNLearner(config, F_STATE, K, blocks=blocks)


@pytest.mark.parametrize(
    "fields",
    [
        STRUCTURED,
        {**STRUCTURED, "double": False},
        {**STRUCTURED, "exploration": "noisy", "distributional": True, "n_atoms": 11},
        {"target_update": "polyak", "tau": 0.1},
    ],
    ids=["structured-norm-dropout-recent", "vanilla-dqn", "noisy-c51", "flat-polyak"],
)
def test_overlapped_updates_equal_the_one_thread_order_bit_for_bit(fields: dict[str, Any]) -> None:
    states = np.random.default_rng(0).standard_normal((T, F_STATE), dtype=np.float32) * 2.0 + 0.5
    source = ArrayStateSource(states)
    one, two, auto = (_learner(fields, overlap=mode) for mode in (False, True, "auto"))
    assert (one.overlap.mode, two.overlap.mode, auto.overlap.mode) == ("off", "on", "auto")
    auto.overlap = OverlapChooser("auto", period=5, probe=2)  # both orders and a choice within the 12 updates
    if fields.get("block_norm"):
        for learner in (one, two, auto):
            learner.fit_input_norm(states[:100])
    for sample in _samples(12):
        a, b, c = (learner.update(sample, source) for learner in (one, two, auto))
        assert (a.loss, a.q_mean, a.grad_norm) == (b.loss, b.q_mean, b.grad_norm) == (c.loss, c.q_mean, c.grad_norm)
        np.testing.assert_array_equal(a.td_abs_B, b.td_abs_B)
        np.testing.assert_array_equal(a.td_abs_B, c.td_abs_B)
    for other in (two, auto):
        for net in ("online", "target"):
            mine, theirs = getattr(one, net).state_dict(), getattr(other, net).state_dict()
            assert all(torch.equal(p, q) for p, q in zip(mine.values(), theirs.values(), strict=True))
    assert one.updates == two.updates == auto.updates == 12


class _FailingNext:
    """A state source that fails on the sample's next states only (they are the indices ≥ ``T - 3``)."""

    def __init__(self, states: np.ndarray) -> None:
        self.inner = ArrayStateSource(states)

    def gather(self, t_idx_B: np.ndarray) -> np.ndarray:
        if np.asarray(t_idx_B).max() >= T - 3:
            raise IndexError("next states out of range")
        return self.inner.gather(t_idx_B)


def test_an_error_on_the_worker_thread_reaches_the_caller_and_the_learner_goes_on() -> None:
    states = np.random.default_rng(0).standard_normal((T, F_STATE), dtype=np.float32)
    learner = _learner(STRUCTURED, overlap=True)
    sample = _samples(1)[0]
    bad = sample._replace(next_t_idx_B=np.full(B, T - 1))
    with pytest.raises(IndexError, match="next states out of range"):
        learner.update(bad, _FailingNext(states))
    assert learner.updates == 0
    learner.update(sample, ArrayStateSource(states))
    assert learner.updates == 1


def test_block_dropout_is_on_only_in_the_thread_that_turned_it_on() -> None:
    enc = StructuredEncoder(BLOCKS, F_STATE, K, channels=(4,), patches=(3,), block_dropout=0.9)
    state = torch.randn(64, F_STATE, generator=torch.Generator().manual_seed(0))
    account = torch.randn(64, K, generator=torch.Generator().manual_seed(1))
    clean = enc(state, account)
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        seen["generator"] = enc.dropout_generator
        seen["out"] = enc(state, account)

    with block_dropout(enc, torch.Generator().manual_seed(2)):
        assert enc.dropout_generator is not None
        assert not torch.equal(enc(state, account), clean)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert seen["generator"] is None
    assert torch.equal(seen["out"], clean)
    assert enc.dropout_generator is None


def test_the_overlap_is_off_by_default_auto_in_full_reads_booleans_and_is_cpu_only() -> None:
    assert LearnerConfig().overlap_update == "off"
    assert load_with_preset(None, "full", {}).agent.overlap_update == "auto"
    assert LearnerConfig.model_validate({"overlap_update": True}).overlap_update == "on"
    assert LearnerConfig.model_validate({"overlap_update": False}).overlap_update == "off"
    with pytest.raises(ValueError, match="overlap_update"):
        LearnerConfig.model_validate({"overlap_update": "sometimes"})
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        config = LearnerConfig.model_validate({**SMALL, "overlap_update": "on"})
        assert DQNLearner(config, F_STATE, K, device="cuda").overlap.mode == "off"


def _drive(chooser: OverlapChooser, seconds: dict[bool, float], updates: int) -> list[bool]:
    orders = []
    for _ in range(updates):
        overlapped = chooser.next()
        chooser.record(overlapped, seconds[overlapped])
        orders.append(overlapped)
    return orders


PROBE_ORDERS = [True, False, False, True]  # two pairs: overlapped first, then one thread first


def test_auto_probes_both_orders_each_period_and_keeps_the_faster() -> None:
    chooser = OverlapChooser("auto", period=10, probe=2)
    orders = _drive(chooser, {True: 0.03, False: 0.04}, 10)
    assert orders == PROBE_ORDERS + [True] * 6
    orders = _drive(chooser, {True: 0.09, False: 0.05}, 10)  # the machine got busy: the next probe sees it
    assert orders == PROBE_ORDERS + [False] * 6
    assert not chooser.choice
    orders = _drive(chooser, {True: 0.039, False: 0.04}, 10)  # within the margin: the simpler order
    assert orders == PROBE_ORDERS + [False] * 6


@pytest.mark.parametrize("drift", [-0.003, 0.003])
def test_auto_compares_neighbouring_steps_so_a_changing_load_does_not_decide(drift: float) -> None:
    """The overlap saves 10 % of every step while the load falls (or rises) step by step during the probe.

    Comparing the medians of 4 overlapped steps followed by 4 one-thread steps, a falling load makes the
    one-thread steps look faster (0.0440 s against 0.0504 s); each pair of neighbours still shows 10 %.
    """
    chooser = OverlapChooser("auto", period=20, probe=4)
    step = [0]

    def seconds(overlapped: bool) -> float:
        base = 0.05 + drift * (step[0] - 3.5)
        step[0] += 1
        return base * (0.9 if overlapped else 1.0)

    orders = []
    for _ in range(20):
        overlapped = chooser.next()
        chooser.record(overlapped, seconds(overlapped))
        orders.append(overlapped)
    assert orders[:8] == PROBE_ORDERS * 2
    assert chooser.choice and orders[8:] == [True] * 12


def test_the_learner_times_each_step_from_one_update_to_the_next() -> None:
    states = np.random.default_rng(0).standard_normal((T, F_STATE), dtype=np.float32)
    learner = _learner(STRUCTURED, overlap="auto")
    seen: list[tuple[bool, float]] = []
    record = learner.overlap.record

    def spy(overlapped: bool, seconds: float) -> None:
        seen.append((overlapped, seconds))
        record(overlapped, seconds)

    learner.overlap.record = spy  # type: ignore[method-assign]
    for sample in _samples(3):
        learner.update(sample, ArrayStateSource(states))
    assert [o for o, _ in seen] == [True, False]  # the first probe pair, one step of each order; the third is open
    assert all(seconds > 0 for _, seconds in seen)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_fixed_modes_never_probe(mode: str) -> None:
    chooser = OverlapChooser(mode, period=4, probe=1)  # type: ignore[arg-type]
    assert _drive(chooser, {True: 1.0, False: 0.0}, 12) == [mode == "on"] * 12


def test_chooser_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="overlap mode"):
        OverlapChooser("maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period"):
        OverlapChooser("auto", period=4, probe=2)


@pytest.fixture
def one_torch_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as training sets it (train.torch_threads)
    yield
    torch.set_num_threads(previous)


def test_the_worker_uses_the_callers_torch_thread_count(one_torch_thread: None) -> None:
    # A new thread's BLAS would use every core: a wide product then sums in another order than on one thread.
    width = 1_000
    states = np.random.default_rng(0).standard_normal((T, width), dtype=np.float32)
    source = ArrayStateSource(states)
    config = {**SMALL, "hidden": (256, 64)}
    one, two = (
        DQNLearner(LearnerConfig.model_validate({**config, "overlap_update": mode}), width, K) for mode in ("off", "on")
    )
    for sample in _samples(4):
        a, b = one.update(sample, source), two.update(sample, source)
        assert a.loss == b.loss
        np.testing.assert_array_equal(a.td_abs_B, b.td_abs_B)


def test_backward_threads_run_only_the_backward_and_the_optimiser_step_on_that_many_threads(
    one_torch_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[int]] = {"forward": [], "backward": [], "step": []}
    original_forward, original_backward = StructuredEncoder.forward, torch.Tensor.backward

    def forward(self: StructuredEncoder, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen["forward"].append(torch.get_num_threads())
        return original_forward(self, *args, **kwargs)

    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        seen["backward"].append(torch.get_num_threads())
        original_backward(self, *args, **kwargs)

    monkeypatch.setattr(StructuredEncoder, "forward", forward)
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    states = np.random.default_rng(0).standard_normal((T, F_STATE), dtype=np.float32)
    learner = _learner({**STRUCTURED, "backward_threads": 2}, overlap=False)
    step = learner.optimizer.step
    monkeypatch.setattr(learner.optimizer, "step", lambda: seen["step"].append(torch.get_num_threads()) or step())
    learner.fit_input_norm(states[:100])
    learner.update(_samples(1)[0], ArrayStateSource(states))
    assert seen == {"forward": [1, 1, 1], "backward": [2], "step": [2]}
    assert torch.get_num_threads() == 1, "the caller's count is restored"


def test_with_backward_threads_the_overlap_still_gives_the_same_updates_and_the_same_seed_repeats(
    one_torch_thread: None,
) -> None:
    states = np.random.default_rng(0).standard_normal((T, F_STATE), dtype=np.float32) * 2.0 + 0.5
    source = ArrayStateSource(states)
    fields = {**STRUCTURED, "backward_threads": 2}
    one, two, again = _learner(fields, overlap=False), _learner(fields, overlap=True), _learner(fields, overlap=False)
    for learner in (one, two, again):
        learner.fit_input_norm(states[:100])
    for sample in _samples(8):
        a, b, c = (learner.update(sample, source) for learner in (one, two, again))
        assert (a.loss, a.grad_norm) == (b.loss, b.grad_norm) == (c.loss, c.grad_norm)
        np.testing.assert_array_equal(a.td_abs_B, b.td_abs_B)
        np.testing.assert_array_equal(a.td_abs_B, c.td_abs_B)


def test_the_full_preset_uses_both_cores_for_the_backward_and_shared_jobs_use_one_thread() -> None:
    from rltrade.config import ONE_THREAD, Config
    from rltrade.training.presets import deep_merge

    full = load_with_preset(None, "full")
    assert full.agent.backward_threads == 2 and full.train.torch_threads == 1
    assert load_with_preset(None, "demo").agent.backward_threads is None
    job = Config.model_validate(deep_merge(full.model_dump(), ONE_THREAD))
    assert job.agent.backward_threads is None and job.train.torch_threads == 1
