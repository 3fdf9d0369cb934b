"""Block bootstrap: autocovariance and Politis–White block length against loop oracles, index blocks, intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rltrade.training.bootstrap import (
    autocovariance,
    optimal_block_length,
    resampled_sharpes,
    sharpe_ci,
    sharpe_diff_ci,
    stationary_bootstrap_indices,
)
from rltrade.training.metrics import sharpe


def ar1(rng: np.random.Generator, n: int, phi: float, *, mean: float = 0.0, scale: float = 1.0) -> np.ndarray:
    e = rng.normal(0.0, scale, n)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x + mean


def acv_oracle(x: np.ndarray, max_lag: int) -> np.ndarray:
    eps = x - x.mean()
    return np.array([eps[k:] @ eps[: x.size - k] / x.size for k in range(max_lag + 1)])


def politis_white_oracle(x: np.ndarray) -> float:
    """The rule of the module docstring written out with loops, lag by lag (Politis & White 2004, PPW 2009)."""
    n = x.size
    k_n = max(5, int(math.log10(n)))
    m_max = math.ceil(math.sqrt(n)) + k_n
    acv = acv_oracle(x, min(m_max + k_n, n - 1))
    rho = acv / acv[0]
    cv = 2.0 * math.sqrt(math.log10(n) / n)
    m_hat = None
    for m in range(m_max + 1):
        if m + k_n < rho.size and all(abs(rho[m + k]) < cv for k in range(1, k_n + 1)):
            m_hat = m
            break
    big_m = min(2 * max(m_hat, 1), m_max) if m_hat is not None else m_max
    big_m = min(big_m, rho.size - 1)
    big_g, g = 0.0, acv[0]
    for k in range(1, big_m + 1):
        s = k / big_m
        lam = 1.0 if s <= 0.5 else 2.0 * (1.0 - s)
        big_g += 2.0 * lam * k * acv[k]
        g += 2.0 * lam * acv[k]
    b = (big_g**2 / g**2) ** (1 / 3) * n ** (1 / 3)
    return min(max(b, 1.0), math.ceil(min(3 * math.sqrt(n), n / 3)))


def test_autocovariance_matches_the_direct_sums() -> None:
    x = np.random.default_rng(0).normal(size=257)
    np.testing.assert_allclose(autocovariance(x, 40), acv_oracle(x, 40), atol=1e-12)


@pytest.mark.parametrize(("phi", "n"), [(0.0, 2000), (0.5, 2000), (0.9, 3000), (-0.4, 500), (0.95, 60)])
def test_block_length_follows_politis_white(phi: float, n: int) -> None:
    x = ar1(np.random.default_rng(1), n, phi)
    assert optimal_block_length(x) == pytest.approx(politis_white_oracle(x))


def test_block_length_grows_with_dependence_and_stays_in_bounds() -> None:
    rng = np.random.default_rng(2)
    iid, mild, strong = (optimal_block_length(ar1(rng, 5000, phi)) for phi in (0.0, 0.5, 0.9))
    assert 1.0 <= iid < 3.0 < mild < strong <= math.ceil(3 * math.sqrt(5000))
    assert optimal_block_length(np.zeros(1000)) == 1.0  # a flat policy: nothing to resample
    assert optimal_block_length(np.ones(3)) == 1.0


def test_indices_are_wrapped_geometric_blocks() -> None:
    n, b = 500, 5.0
    idx = stationary_bootstrap_indices(n, b, 400, np.random.default_rng(3))
    assert idx.shape == (400, n) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < n
    continues = (idx[:, 1:] - idx[:, :-1]) % n == 1
    # A block continues with probability 1 − 1/b (a fresh start can also land on the next step: 1/n).
    assert continues.mean() == pytest.approx(1 - 1 / b + 1 / (b * n), abs=0.01)
    wrapped = (idx[:, :-1] == n - 1) & (idx[:, 1:] == 0)
    assert wrapped.any()
    iid = stationary_bootstrap_indices(n, 1.0, 400, np.random.default_rng(3))
    assert ((iid[:, 1:] - iid[:, :-1]) % n == 1).mean() < 0.01
    np.testing.assert_array_equal(idx, stationary_bootstrap_indices(n, b, 400, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="block length"):
        stationary_bootstrap_indices(n, 0.5, 1, np.random.default_rng(0))


def test_resampled_sharpes_use_the_same_indices_for_every_series() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(1e-3, 1e-2, 300)
    both = resampled_sharpes([x, 2.0 * x, x + 1e-2], 1.0, block_length=3.0, n_resamples=50, rng=rng)
    np.testing.assert_allclose(both[0], both[1])  # Sharpe is scale-free: same indices → same values
    assert not np.allclose(both[0], both[2])
    # The first resample by hand from the same generator state.
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    idx = stationary_bootstrap_indices(x.size, 3.0, 50, rng_a)
    first = resampled_sharpes([x], 1.0, block_length=3.0, n_resamples=50, rng=rng_b)[0]
    assert first[0] == pytest.approx(sharpe(x[idx[0]], 1.0))


def test_sharpe_interval_around_the_backtest_metric() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(2e-4, 1e-3, 2000)
    per_year = 525_960.0
    ci = sharpe_ci(r, per_year, rng=np.random.default_rng(0), n_resamples=500, level=0.9)
    assert ci.estimate == sharpe(r, per_year)
    assert ci.low < ci.estimate < ci.high and ci.level == 0.9 and ci.n_resamples == 500
    # The iid standard error of a per-step Sharpe s is sqrt((1 + s²/2) / n); annualised, a 90 % interval
    # spans about 2 · 1.645 of it.
    s = r.mean() / r.std(ddof=1)
    width = 2 * 1.645 * math.sqrt((1 + s**2 / 2) / r.size) * math.sqrt(per_year)
    assert ci.high - ci.low == pytest.approx(width, rel=0.15)
    again = sharpe_ci(r, per_year, rng=np.random.default_rng(0), n_resamples=500, level=0.9)
    assert again == ci


def test_blocks_widen_the_interval_of_dependent_returns() -> None:
    # Positively autocorrelated returns: resampling single steps understates the spread of the mean.
    r = ar1(np.random.default_rng(6), 3000, 0.7, mean=0.05)
    auto = sharpe_ci(r, 1.0, rng=np.random.default_rng(0), n_resamples=400)
    single = sharpe_ci(r, 1.0, rng=np.random.default_rng(0), n_resamples=400, block_length=1.0)
    assert auto.block_length > 5.0
    assert auto.high - auto.low > 1.5 * (single.high - single.low)


def test_paired_difference_detects_a_better_policy_and_is_zero_against_itself() -> None:
    rng = np.random.default_rng(7)
    market = rng.normal(0.0, 1e-3, 3000)
    base, better = market, market + 3e-4
    diff = sharpe_diff_ci(better, base, 1.0, rng=np.random.default_rng(0), n_resamples=500)
    assert diff.estimate == pytest.approx(sharpe(better, 1.0) - sharpe(base, 1.0))
    assert 0.0 < diff.low < diff.estimate < diff.high
    same = sharpe_diff_ci(base, base, 1.0, rng=np.random.default_rng(0), n_resamples=100)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


def test_bad_series_are_refused_and_tiny_ones_are_degenerate() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="non-finite value at step 2"):
        sharpe_ci([0.1, 0.2, np.nan, 0.1], 1.0, rng=rng)
    with pytest.raises(ValueError, match="same steps"):
        sharpe_diff_ci([0.1, 0.2], [0.1, 0.2, 0.3], 1.0, rng=rng)
    with pytest.raises(ValueError, match="one-dimensional"):
        sharpe_ci(np.zeros((2, 3)), 1.0, rng=rng)
    with pytest.raises(ValueError, match="confidence level"):
        sharpe_ci([0.1, -0.2, 0.3], 1.0, rng=rng, level=1.0)
    one = sharpe_ci([0.01], 1.0, rng=rng)
    assert (one.low, one.high, one.n_resamples) == (0.0, 0.0, 0)
