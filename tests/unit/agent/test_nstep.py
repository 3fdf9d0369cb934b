"""NStepAccumulator against a naive per-episode computation of n-step transitions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rltrade.agent.batches import Transitions
from rltrade.agent.nstep import NStepAccumulator

Row = tuple[int, int, int, float, float, int]  # env, t_idx, action, return, discount, next_t_idx


def account_of(t: int) -> list[float]:
    """A recognisable account vector for time index ``t``."""
    return [float(t), -0.5 * t]


def naive_transitions(
    env: int, times: list[int], rewards: list[float], actions: list[int], end: str, n: int, gamma: float
) -> list[Row]:
    """By definition: episode states ``times[0..L]`` (``times[L]`` the final observation), ``L`` steps.

    ``end`` is "terminated", "truncated" or "running" (only full n-step windows are complete then).
    """
    length = len(rewards)
    out: list[Row] = []
    for t in range(length):
        m = min(n, length - t)
        if m < n and end == "running":
            continue
        ret = sum(gamma**k * rewards[t + k] for k in range(m))
        discount = 0.0 if (end == "terminated" and t + m == length) else gamma**m
        out.append((env, times[t], actions[t], ret, discount, times[t + m]))
    return out


def as_rows(env_of_t: dict[int, int], batch: Transitions) -> list[Row]:
    rows: list[Row] = []
    for i in range(batch.t_idx_B.shape[0]):
        t = int(batch.t_idx_B[i])
        assert batch.account_BK[i].tolist() == account_of(t)
        assert batch.next_account_BK[i].tolist() == account_of(int(batch.next_t_idx_B[i]))
        rows.append(
            (
                env_of_t[t],
                t,
                int(batch.action_B[i]),
                float(batch.reward_B[i]),
                float(batch.discount_B[i]),
                int(batch.next_t_idx_B[i]),
            )
        )
    return rows


Step = tuple[int, int, float, bool, bool, int]  # t_idx, action, reward, terminated, truncated, next


def run_scripted(
    episodes_per_env: list[list[tuple[int, str]]], n: int, gamma: float, seed: int
) -> tuple[list[Row], list[Row]]:
    """Step every env through its episodes (length, end kind) in lockstep; return (got, expected).

    Time indices advance by random strides, and some episode ends are followed by a masked
    reset-only step (gymnasium's next-step autoreset), so nothing may assume ``next = t + 1``.
    """
    rng = np.random.default_rng(seed)
    num_envs = len(episodes_per_env)
    acc = NStepAccumulator(n, gamma, num_envs)
    scripts: list[list[Step | None]] = []  # None: a masked step
    expected: list[Row] = []
    env_of_t: dict[int, int] = {}
    for e, episodes in enumerate(episodes_per_env):
        steps: list[Step | None] = []
        t = 1000 * e  # env e owns time indices [1000·e, 1000·(e+1)): at most 4 · 10 · 3 + 30 of them
        for length, end in episodes:
            times = (t + np.cumsum(np.r_[0, rng.integers(1, 4, size=length)])).tolist()
            rewards = rng.normal(size=length).round(3).tolist()
            actions = rng.integers(0, 3, size=length).tolist()
            expected += naive_transitions(e, times, rewards, actions, end, n, gamma)
            for i in range(length):
                last = i == length - 1
                term, trunc = last and end == "terminated", last and end == "truncated"
                steps.append((times[i], actions[i], rewards[i], term, trunc, times[i + 1]))
                env_of_t[times[i]] = e
            if end != "running" and rng.random() < 0.5:
                steps.append(None)
            t = times[-1] + 1  # the final observation is not a start state of the next episode
        scripts.append(steps)
    got: list[Row] = []
    for k in range(max(len(s) for s in scripts)):
        rows = [s[k] if k < len(s) else None for s in scripts]
        mask = np.array([r is not None for r in rows])
        # Masked envs get values that would break every check if they were used.
        row = [r if r is not None else (-7, 99, float("nan"), True, True, -7) for r in rows]
        t_idx = np.array([r[0] for r in row])
        next_t_idx = np.array([r[5] for r in row])
        out = acc.step(
            t_idx,
            np.array([account_of(t) for t in t_idx], dtype=np.float32),
            np.array([r[1] for r in row]),
            np.array([r[2] for r in row], dtype=np.float32),
            np.array([r[3] for r in row]),
            np.array([r[4] for r in row]),
            next_t_idx,
            np.array([account_of(t) for t in next_t_idx], dtype=np.float32),
            mask_E=mask,
        )
        got += as_rows(env_of_t, out)
    return got, expected


def assert_same(got: list[Row], expected: list[Row]) -> None:
    assert len(got) == len(expected)
    got_sorted, exp_sorted = sorted(got), sorted(expected)
    for g, x in zip(got_sorted, exp_sorted, strict=True):
        assert g[:3] == x[:3] and g[5] == x[5]
        assert g[3] == pytest.approx(x[3], rel=1e-6, abs=1e-6)
        assert g[4] == pytest.approx(x[4], rel=1e-6)


episode = st.tuples(st.integers(1, 9), st.sampled_from(["terminated", "truncated"]))
env_script = st.tuples(st.lists(episode, max_size=4), st.integers(0, 9))


@settings(max_examples=80, deadline=None)
@given(
    scripts=st.lists(env_script, min_size=1, max_size=3),
    n=st.integers(1, 5),
    gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_matches_naive_computation(
    scripts: list[tuple[list[tuple[int, str]], int]], n: int, gamma: float, seed: int
) -> None:
    # Each env runs its finished episodes, then an unfinished one of the drawn length.
    episodes = [done + ([(running, "running")] if running else []) for done, running in scripts]
    got, expected = run_scripted(episodes, n, gamma, seed)
    assert_same(got, expected)


def step_one(acc: NStepAccumulator, t: int, r: float, *, term: bool = False, trunc: bool = False) -> Transitions:
    return acc.step(
        np.array([t]),
        np.array([account_of(t)], dtype=np.float32),
        np.array([1]),
        np.array([r], dtype=np.float32),
        np.array([term]),
        np.array([trunc]),
        np.array([t + 1]),
        np.array([account_of(t + 1)], dtype=np.float32),
    )


@pytest.mark.parametrize(
    ("end", "discounts"), [("terminated", [0.125, 0.0, 0.0, 0.0]), ("truncated", [0.125, 0.125, 0.25, 0.5])]
)
def test_hand_computed_episode(end: str, discounts: list[float]) -> None:
    """n = 3, γ = 0.5, rewards 1, 2, 3, 4 over states 0..3, final observation 4."""
    acc = NStepAccumulator(3, 0.5, 1)
    outs = [
        step_one(acc, t, float(t + 1), term=end == "terminated" and t == 3, trunc=end == "truncated" and t == 3)
        for t in range(4)
    ]
    assert [o.t_idx_B.shape[0] for o in outs] == [0, 0, 1, 3]
    batch = Transitions(*(np.concatenate(cols) for cols in zip(*outs, strict=True)))
    np.testing.assert_array_equal(batch.t_idx_B, [0, 1, 2, 3])
    np.testing.assert_allclose(batch.reward_B, [1 + 1 + 0.75, 2 + 1.5 + 1, 3 + 2, 4])
    np.testing.assert_array_equal(batch.discount_B, discounts)
    np.testing.assert_array_equal(batch.next_t_idx_B, [3, 4, 4, 4])
    assert batch.reward_B.dtype == np.float32 and batch.t_idx_B.dtype == np.int64
    assert acc.pending().tolist() == [0]


def test_episode_shorter_than_n_flushes_everything() -> None:
    acc = NStepAccumulator(5, 0.9, 1)
    assert step_one(acc, 10, 1.0).t_idx_B.shape[0] == 0
    out = step_one(acc, 11, 2.0, term=True)
    np.testing.assert_array_equal(out.t_idx_B, [10, 11])
    np.testing.assert_allclose(out.reward_B, [1 + 0.9 * 2, 2])
    np.testing.assert_array_equal(out.discount_B, [0.0, 0.0])


def test_termination_wins_over_truncation() -> None:
    acc = NStepAccumulator(2, 0.9, 1)
    out = step_one(acc, 0, 1.0, term=True, trunc=True)
    np.testing.assert_array_equal(out.discount_B, [0.0])


def test_broken_continuity_is_reported() -> None:
    acc = NStepAccumulator(3, 0.9, 1)
    step_one(acc, 0, 1.0)
    with pytest.raises(ValueError, match="does not continue"):
        step_one(acc, 5, 1.0)


def test_new_episode_may_start_anywhere_after_an_end() -> None:
    acc = NStepAccumulator(3, 0.9, 1)
    step_one(acc, 0, 1.0, trunc=True)
    assert step_one(acc, 100, 1.0).t_idx_B.shape[0] == 0  # no continuity check across episodes


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("reward_E", np.array([np.nan], dtype=np.float32), ValueError),
        ("terminated_E", np.array([0]), TypeError),
        ("t_idx_E", np.array([0.0]), TypeError),
        ("account_EK", np.zeros((1, 3), dtype=np.float32), ValueError),
    ],
)
def test_rejects_bad_input(field: str, value: np.ndarray, error: type[Exception]) -> None:
    acc = NStepAccumulator(3, 0.9, 1)
    step_one(acc, 0, 1.0)  # fixes K = 2
    args = {
        "t_idx_E": np.array([1]),
        "account_EK": np.array([account_of(1)], dtype=np.float32),
        "action_E": np.array([0]),
        "reward_E": np.array([0.0], dtype=np.float32),
        "terminated_E": np.array([False]),
        "truncated_E": np.array([False]),
        "next_t_idx_E": np.array([2]),
        "next_account_EK": np.array([account_of(2)], dtype=np.float32),
    }
    args[field] = value
    with pytest.raises(error):
        acc.step(**args)


def test_state_dict_round_trip_continues_identically(tmp_path: Path) -> None:
    a = NStepAccumulator(3, 0.9, 1)
    for t in range(2):
        step_one(a, t, float(t))
    path = tmp_path / "nstep.pt"
    torch.save(a.state_dict(), path)
    b = NStepAccumulator(3, 0.9, 1)
    b.load_state_dict(torch.load(path, weights_only=True))
    for t in range(2, 6):
        out_a, out_b = step_one(a, t, float(t), term=t == 5), step_one(b, t, float(t), term=t == 5)
        for x, y in zip(out_a, out_b, strict=True):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="saved with"):
        NStepAccumulator(2, 0.9, 1).load_state_dict(a.state_dict())


def test_state_dict_is_weights_only_loadable_before_first_step() -> None:
    buf = io.BytesIO()
    torch.save(NStepAccumulator(2, 0.5, 3).state_dict(), buf)
    buf.seek(0)
    fresh = NStepAccumulator(2, 0.5, 3)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.pending().tolist() == [0, 0, 0]
