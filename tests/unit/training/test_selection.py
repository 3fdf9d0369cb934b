"""Do-no-harm selection on pre-made return series: PBO, the one-sided confirmation test, the decision rule.

The acceptance pair (issue 14): on a negative-control market (no signal) the many no-skill trials lose to the
baselines after confirmation and the rule selects flat; with a planted signal it selects the agent. Equally
good trials give a PBO near 0.5 (the in-sample winner is a random one of them), so the planted trials differ
in skill, as a sweep's trials do. The trained version of the pair is in
``tests/e2e/test_learning_acceptance.py`` (slow).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from rltrade.training.bootstrap import mean_greater_than_zero
from rltrade.training.selection import Pbo, choose, decide, pbo_cscv

F64 = npt.NDArray[np.float64]
FEE = 2e-4


def _market(rng: np.random.Generator, n: int) -> F64:
    return rng.normal(0.0, 1e-3, n)


def _policy_returns(market: F64, position: F64) -> F64:
    """Per-step returns of holding ``position[t]`` over ``market[t]``, paying ``FEE`` per unit of change."""
    change = np.abs(np.diff(np.concatenate([[0.0], position])))
    return np.asarray(position * market - FEE * change, dtype=np.float64)


def _no_skill(rng: np.random.Generator, market: F64) -> F64:
    """Positions held for ~50 steps, drawn without looking at the market."""
    n = market.size
    pos = np.repeat(rng.integers(-1, 2, n // 50 + 1).astype(np.float64), 50)[:n]
    return _policy_returns(market, pos)


def _skilled(rng: np.random.Generator, market: F64, i: int) -> F64:
    """Sees a noisy version of the next return (a planted signal) and holds its sign; trial ``i``'s hint is
    noisier the larger ``i`` (trials of a sweep differ in how much they learnt)."""
    hint = market + rng.normal(0.0, 1e-3 * (1.0 + i), market.size)
    return _policy_returns(market, np.sign(hint))


def _candidates(trials: dict[str, F64], market: F64) -> dict[str, F64]:
    return {"flat": np.zeros_like(market), "buy_and_hold": market.copy(), **trials}


def _select(seed: int, *, skilled: bool, n_trials: int = 20) -> tuple[str, str, Pbo]:
    rng = np.random.default_rng(seed)
    n_val, n_conf = 3000, 1500
    market = _market(rng, n_val + n_conf)
    trials = {f"trial{i}": _skilled(rng, market, i) if skilled else _no_skill(rng, market) for i in range(n_trials)}
    everything = _candidates(trials, market)
    val = {k: v[:n_val] for k, v in everything.items()}
    conf = {k: v[n_val:] for k, v in everything.items()}
    scores = {k: float(np.prod(1 + v) - 1) for k, v in val.items()}
    pbo = pbo_cscv(val)
    sel = decide(scores, conf, rng=np.random.default_rng(seed), pbo=pbo)
    return sel.selected, sel.candidate, pbo


@pytest.mark.parametrize("seed", range(8))
def test_no_skill_trials_select_flat(seed: int) -> None:
    selected, candidate, _ = _select(seed, skilled=False)
    assert selected == "flat", f"seed {seed}: selected {selected} (validation winner {candidate})"


def test_the_winners_curse_is_caught_by_confirmation_not_by_validation() -> None:
    """Among 20 no-skill trials the validation winner is usually a trial (lucky), and confirmation rejects it."""
    candidates = [_select(seed, skilled=False)[1] for seed in range(8)]
    assert sum(c.startswith("trial") for c in candidates) >= 6


@pytest.mark.parametrize("seed", range(4))
def test_planted_signal_selects_the_agent(seed: int) -> None:
    selected, candidate, pbo = _select(seed, skilled=True, n_trials=5)
    assert selected == candidate and selected.startswith("trial")
    assert pbo.pbo < 0.5


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    a = np.array([1.0, 1.1, 0.9, 1.0, -1.0, -1.1, -0.9, -1.0])
    r = np.stack([a, -a], axis=1)
    p = pbo_cscv(r, n_blocks=2)
    assert (p.n_blocks, p.n_combinations, p.n_candidates) == (2, 2, 2)
    assert p.pbo == 1.0


def test_pbo_is_zero_when_one_candidate_dominates_everywhere() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 1.0, (800, 6))
    noise[:, 2] += 1.0
    p = pbo_cscv(noise)
    assert p.pbo == 0.0 and p.n_blocks == 16 and p.n_combinations == 12_870


def test_pbo_of_exchangeable_noise_is_near_one_half() -> None:
    rng = np.random.default_rng(4)
    values = [pbo_cscv(rng.normal(0.0, 1.0, (400, 10)), n_blocks=10).pbo for _ in range(20)]
    assert 0.3 < float(np.mean(values)) < 0.7


def test_pbo_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="N ≥ 2"):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="at least 8 steps"):
        pbo_cscv(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        pbo_cscv(np.array([[0.0, np.nan]] * 20))


def test_choose_breaks_ties_towards_the_first_candidate() -> None:
    assert choose({"flat": 0.0, "buy_and_hold": -0.1, "agent": 0.0}) == "flat"
    assert choose({"flat": 0.0, "buy_and_hold": -0.1, "agent": 1e-9}) == "agent"
    with pytest.raises(ValueError, match="not finite"):
        choose({"flat": 0.0, "agent": float("nan")})


def test_decide_baseline_best_overfit_refusal_and_override() -> None:
    rng = np.random.default_rng(0)
    n = 500
    conf = {"flat": np.zeros(n), "buy_and_hold": rng.normal(0, 1e-3, n), "agent": np.full(n, 1e-4)}
    base = decide({"flat": 0.0, "buy_and_hold": 0.01, "agent": 0.005}, conf, rng=rng)
    assert (base.selected, base.status) == ("buy_and_hold", "baseline_best")
    assert base.label.startswith("selected: buy_and_hold (buy_and_hold scored best on validation")
    overfit = Pbo(0.6, 16, 12_870, 3, -0.2)
    scores = {"flat": 0.0, "buy_and_hold": -0.01, "agent": 0.02}
    refused = decide(scores, conf, rng=rng, pbo=overfit)
    assert (refused.selected, refused.status) == ("flat", "refused_overfit")
    assert "--allow-overfit" in refused.label
    kept = decide(scores, conf, rng=rng, pbo=overfit, allow_overfit=True)
    assert (kept.selected, kept.status) == ("agent", "confirmed")
    assert kept.confirmation["flat"]["passed"] and kept.confirmation["buy_and_hold"]["passed"]


def test_decide_fails_safe() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    up = rng.normal(5e-4, 1e-3, n)  # a strong bull run: buy-and-hold beats everything
    scores = {"flat": 0.0, "buy_and_hold": 0.0, "agent": 0.1}
    half = decide(scores, {"flat": np.zeros(n), "buy_and_hold": up, "agent": 0.5 * up}, rng=rng)
    assert (half.selected, half.status) == ("buy_and_hold", "failed_confirmation")
    assert half.label.startswith("selected: buy_and_hold (agent failed confirmation: vs buy_and_hold mean")
    loser = decide(scores, {"flat": np.zeros(n), "buy_and_hold": up, "agent": -up}, rng=rng)
    assert loser.selected == "flat"
    assert loser.label.startswith("selected: flat (agent failed confirmation: vs flat mean")
    assert "vs buy_and_hold" in loser.label
    none = decide(scores, None, rng=rng)
    assert (none.selected, none.reason) == ("flat", "agent failed confirmation: no confirmation window")


def test_decide_requires_the_baselines_and_enough_resamples() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="buy_and_hold must be candidates"):
        decide({"flat": 0.0, "agent": 1.0}, None, rng=rng)
    with pytest.raises(ValueError, match="at least 1,000"):
        decide({"flat": 0.0, "buy_and_hold": 0.0, "agent": 1.0}, None, rng=rng, n_resamples=999)


def test_one_sided_mean_test() -> None:
    rng = np.random.default_rng(5)
    assert mean_greater_than_zero(np.full(50, 1e-4), rng=rng).passed
    assert not mean_greater_than_zero(np.zeros(50), rng=rng).passed
    strong = mean_greater_than_zero(rng.normal(1e-3, 1e-3, 1000), rng=rng)
    assert strong.passed and strong.p_value < 0.05 and strong.n_resamples == 1000
    rejected = sum(mean_greater_than_zero(rng.normal(0.0, 1e-3, 500), rng=rng).passed for _ in range(40))
    assert rejected <= 6  # ~5 % false positives at one-sided 95 %
    x = rng.normal(0.0, 1.0, 300)
    a = mean_greater_than_zero(x, rng=np.random.default_rng(9))
    b = mean_greater_than_zero(x, rng=np.random.default_rng(9))
    assert a == b
