"""Mid-price paths of the synthetic market: regimes, volatility, correlated shocks, planted lead-lag.

Everything is vectorised numpy on a 1-minute grid (and a 1-second grid for the tick period). The model,
minute ``t`` (log prices, ETH = the follower, BTC = the leader)::

    regime_t   Markov chain over ``Regime``: durations geometric with mean ``mean_regime_hours``,
               the next regime uniform among the other three (so each regime holds 1/4 of the time);
               or, with ``regime_hours = (lo, hi)``, a bounded schedule (:func:`draw_bounded_regimes`)
    sigma_t    = sigma_base · vol_mult[regime_t] · season(t) · exp(h_t)        ETH minute vol
               h = two stationary AR(1) log-vol factors (fast and slow): volatility clustering
               season = intraday cosine peaking mid-afternoon UTC, quieter weekends
    e_t        = sigma_t · u_t, u unit-variance Student-t; corr(u_eth, u_btc) = correlation
    r_t        = drift[regime_t] + rev_t + e_t
               rev_t = −F(1−φ) Σ_{k≥1} φ^{k−1} e_{t−k} in RANGE minutes, else 0: each shock is
               gradually undone while the market ranges (mean reversion, low efficiency ratio)

BTC uses the same regime and vol factors scaled by ``leader_vol_ratio``; ``sigma_base`` makes ETH's
long-run annualised vol equal ``annual_vol``. In the tick period each minute is split into 60 seconds
with shocks ``sigma_t/√60 · u_s`` (the minute's drift and reversal spread evenly), and ETH's second shock
can carry BTC's shock from ``lag_s`` seconds earlier: ``u_eth[s] = a·u_btc[s−lag] + √(1−a²)·(…own…)``,
``a = √strength``. The minute shocks of tick minutes are the sums of their seconds, so minute and second
paths agree exactly at minute ends.

Randomness: each component draws from its own ``PCG64`` stream (``SeedSequence(seed, spawn_key=…)``),
and history draws depend only on ``history_days``: changing ``tick_days`` leaves older minutes unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rltrade.types import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, Regime

MINUTES_PER_YEAR = 525_960
"""365.25 days: crypto trades around the clock."""

# Independent random streams (spawn keys) of the market's components.
STREAM_STATE = 0
STREAM_MINUTE_SHOCKS = 1
STREAM_BRIDGE = 2
STREAM_SECOND_SHOCKS = 3
STREAM_ACTIVITY = 4  # + symbol index
STREAM_TRADES = 6  # + symbol index


@dataclass(frozen=True)
class MarketShape:
    """Fixed shape parameters of the synthetic market (the user-facing knobs live in ``SyntheticConfig``).

    Per-regime tuples are indexed by ``Regime`` value: (TREND_UP, TREND_DOWN, RANGE, VOLATILE).
    """

    leader_vol_ratio: float = 0.8
    """BTC's volatility (and drift) relative to ETH's."""
    drift_sigmas: tuple[float, float, float, float] = (0.03, -0.03, 0.0, 0.0)
    """Drift per minute in units of the baseline minute vol (≈ ±6 % over a 36 h trend, ≈ 1.4 noise sd)."""
    vol_mult: tuple[float, float, float, float] = (1.0, 1.15, 0.7, 1.9)
    """Volatility multiplier per regime."""
    range_revert_fraction: float = 0.8
    """F: fraction of each shock eventually undone while the market ranges."""
    range_revert_tau_min: float = 60.0
    """Time constant (minutes) over which a ranging market undoes a shock."""
    logvol_fast_sd: float = 0.25
    logvol_fast_tau_min: float = 30.0
    logvol_slow_sd: float = 0.3
    logvol_slow_tau_min: float = 1440.0
    season_amplitude: float = 0.3
    """Relative amplitude of the intraday volatility cycle."""
    season_peak_hour: float = 14.5
    """UTC hour of peak volatility and activity (US open)."""
    weekend_mult: float = 0.8
    """Volatility multiplier on Saturdays and Sundays."""
    shock_df: float = 5.0
    """Degrees of freedom of the Student-t shocks (heavy-tailed returns)."""
    activity_vol_elasticity: float = 1.0
    """Trade rate ∝ (sigma_t / sigma_base)^elasticity, normalised to mean 1."""
    hawkes_branching: float = 0.5
    """Mean number of orders each order triggers (Hawkes branching ratio, < 1)."""
    hawkes_delay_s: float = 0.2
    """Mean delay of a triggered order after its parent (exponential kernel)."""
    fill_p: float = 0.7
    """Fills per taker order are geometric with this success probability (mean 1/p)."""
    side_follow: float = 0.7
    """Probability a triggered order copies its parent's side (order splitting)."""
    flow_bias: float = 0.25
    """P(buy) = 0.5 + flow_bias · tanh(u), u = the second's (or minute's) standardised shock."""
    notional_median_usd: float = 30.0
    notional_log_sd: float = 2.3
    """Fill notional is lognormal: median and log-sd (real Binance fills: ≈ $20–40, ≈ 2.5)."""
    price_decimals: int = 2
    """Quotes are rounded outward to this many decimals (a 0.01 tick)."""
    qty_decimals: tuple[int, int] = (4, 5)
    """Lot size decimals for (ETH, BTC)."""

    def __post_init__(self) -> None:
        """Check each parameter's range; the error names the bound that failed."""
        checks = {
            "hawkes_branching must be in [0, 1) (a Hawkes process explodes at 1)": 0.0 <= self.hawkes_branching < 1.0,
            "fill_p must be in (0, 1]": 0.0 < self.fill_p <= 1.0,
            "shock_df must be > 2 (finite variance)": self.shock_df > 2.0,
            "side_follow must be in [0, 1]": 0.0 <= self.side_follow <= 1.0,
            "flow_bias must be in [0, 0.5]": 0.0 <= self.flow_bias <= 0.5,
            "range_revert_fraction must be in [0, 1]": 0.0 <= self.range_revert_fraction <= 1.0,
            "leader_vol_ratio, vol_mult, taus, hawkes_delay_s and notional_median_usd must be > 0": min(
                self.leader_vol_ratio,
                *self.vol_mult,
                self.range_revert_tau_min,
                self.logvol_fast_tau_min,
                self.logvol_slow_tau_min,
                self.hawkes_delay_s,
                self.notional_median_usd,
            )
            > 0.0,
        }
        broken = [msg for msg, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"MarketShape: {'; '.join(broken)} (got {self})")


DEFAULT_SHAPE = MarketShape()


@dataclass(frozen=True)
class MinuteState:
    """Per-minute latent state shared by both symbols (arrays of length T = history minutes)."""

    open_us_T: np.ndarray
    regime_T: np.ndarray
    """Regime value per minute (int8)."""
    sigma_T: np.ndarray
    """ETH's minute log-return volatility (BTC: × leader_vol_ratio)."""
    drift_T: np.ndarray
    """ETH's regime drift per minute (BTC: × leader_vol_ratio)."""
    activity_T: np.ndarray
    """Trade-rate multiplier, long-run mean 1."""
    revert_T: np.ndarray
    """1.0 in RANGE minutes (mean reversion on), else 0.0."""
    sigma_base: float


@dataclass(frozen=True)
class SecondShocks:
    """Standardised second shocks of the tick period (length S) and the planted signal's parameters."""

    eth_S: np.ndarray
    btc_S: np.ndarray
    lead_S: np.ndarray
    """``a·u_btc[s−lag]``: the part of ``eth_S`` known from BTC's past (0 where no signal)."""
    loading: float
    """a = √strength."""
    contemporaneous_corr: float


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """Create an independent PCG64 generator for one component (stream) of the market."""
    if seed < 0:
        raise ValueError(f"synthetic.seed must be >= 0 (got {seed}); pick any non-negative integer")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def ar1_filter(x_N: np.ndarray, phi: float, y0: float = 0.0, block: int = 256) -> np.ndarray:
    """``y[t] = φ·y[t−1] + x[t]`` with ``y[−1] = y0``, exactly (no truncation); ``y[t]`` sees ``x[:t+1]``.

    Vectorised by blocks: inside a block the recursion is a lower-triangular Toeplitz matrix product;
    only the block-end states are carried in a loop (n / block steps). Every output is computed from
    its own block row and earlier carries, so changing later inputs leaves earlier outputs bit-identical
    (an FFT convolution would not: its rounding spreads backwards).
    """
    n = len(x_N)
    n_blocks = -(-n // block)
    padded = np.zeros(n_blocks * block)
    padded[:n] = x_N
    x_BK = padded.reshape(n_blocks, block)
    j_K = np.arange(block)
    toeplitz_KK = np.tril(phi ** np.maximum(j_K[:, None] - j_K[None, :], 0))
    within_BK = x_BK @ toeplitz_KK.T  # Σ_{i≤j} φ^{j−i} x[block start + i]
    carry_B = np.empty(n_blocks)  # y just before each block
    c, phi_block = y0, phi**block
    for b, last in enumerate(within_BK[:, -1].tolist()):
        carry_B[b] = c
        c = last + phi_block * c
    path: np.ndarray = (within_BK + np.outer(carry_B, phi ** (j_K + 1))).ravel()[:n]
    return path


def season(open_us_T: np.ndarray, shape: MarketShape) -> np.ndarray:
    """Intraday × weekday volatility multiplier at the middle of each minute."""
    hour_T = (open_us_T % US_PER_DAY + US_PER_MINUTE // 2) / US_PER_HOUR
    cycle_T = 1.0 + shape.season_amplitude * np.cos(2 * np.pi * (hour_T - shape.season_peak_hour) / 24.0)
    weekday_T = (open_us_T // US_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return cycle_T * np.where(weekday_T >= 5, shape.weekend_mult, 1.0)


def season_mean(power: float, shape: MarketShape) -> float:
    """Long-run mean of season(t)^power (exact over one week of minutes)."""
    week_T = np.arange(7 * 1440, dtype=np.int64) * US_PER_MINUTE + 4 * US_PER_DAY  # starts on a Monday
    return float(np.mean(season(week_T, shape) ** power))


def draw_regimes(rng: np.random.Generator, n_min: int, mean_regime_hours: float) -> np.ndarray:
    """Regime per minute (int8): geometric durations, each switch to one of the other three uniformly."""
    p = min(1.0, 1.0 / (mean_regime_hours * 60.0))
    durations: list[np.ndarray] = []
    total = 0
    while total < n_min:
        d = rng.geometric(p, size=int(n_min * p * 1.5) + 16)
        durations.append(d)
        total += int(d.sum())
    dur_G = np.concatenate(durations)
    n_seg = int(np.searchsorted(np.cumsum(dur_G), n_min)) + 1
    dur_G = dur_G[:n_seg]
    first = rng.integers(0, 4)
    steps_G = rng.integers(1, 4, size=n_seg)
    steps_G[0] = 0
    labels_G = (first + np.cumsum(steps_G)) % 4
    return np.repeat(labels_G, dur_G)[:n_min].astype(np.int8)


def draw_bounded_regimes(rng: np.random.Generator, n_min: int, lo_hours: float, hi_hours: float) -> np.ndarray:
    """Regime per minute (int8) on a bounded schedule: every regime lasts ``lo_hours`` to ``hi_hours``.

    Durations are uniform over the whole minutes in ``[lo, hi]`` hours; the first regime is uniform, the
    second uniform among the other three, each later one uniform among the two unlike the two before it
    (by symmetry each regime still holds 1/4 of the time). The guarantee, for any seed: a window of ``W``
    hours with ``4·hi ≤ W ≤ 10·lo`` holds at least three regimes for at least 10 % of it each. Proof: the
    segment holding the window's start ends by ``start + hi``; the segments wholly inside the window follow
    it, and the one after the last of them ends after ``start + W`` having begun at most ``hi`` earlier, so
    k whole segments span more than ``W − 2·hi ≥ 2·hi``: ``k·hi > 2·hi``, k ≥ 3. Three consecutive segments
    hold three different regimes, each for at least ``lo ≥ W / 10``.
    """
    lo, hi = regime_minutes((lo_hours, hi_hours))
    n_seg = n_min // lo + 1
    dur_G = rng.integers(lo, hi + 1, size=n_seg)
    pick_G = rng.integers(0, 4, size=n_seg)
    labels = [int(pick_G[0])]
    for g in range(1, n_seg):
        allowed = [r for r in range(4) if r not in labels[-2:]]
        labels.append(allowed[int(pick_G[g]) % len(allowed)])
    return np.repeat(np.asarray(labels, dtype=np.int8), dur_G)[:n_min]


def draw_regime_path(
    rng: np.random.Generator, n_min: int, mean_regime_hours: float, regime_hours: tuple[float, float] | None
) -> np.ndarray:
    """Draw the regime of each minute: geometric durations (``regime_hours`` None) or the bounded schedule."""
    if regime_hours is None:
        return draw_regimes(rng, n_min, mean_regime_hours)
    return draw_bounded_regimes(rng, n_min, *regime_hours)


def regime_minutes(regime_hours: tuple[float, float]) -> tuple[int, int]:
    """Return the shortest and longest regime in whole minutes (lo rounded up, hi down; hi ≥ lo ≥ 1)."""
    lo = max(1, math.ceil(regime_hours[0] * 60.0 - 1e-9))
    return lo, max(lo, math.floor(regime_hours[1] * 60.0 + 1e-9))


def regime_windows(regime_hours: tuple[float, float]) -> tuple[float, float]:
    """Return the window lengths (hours) for which :func:`draw_bounded_regimes` guarantees three regimes ≥ 10 %."""
    lo, hi = regime_minutes(regime_hours)
    return 4.0 * hi / 60.0, 10.0 * lo / 60.0


def minute_state(
    rng: np.random.Generator,
    open_us_T: np.ndarray,
    *,
    annual_vol: float,
    mean_regime_hours: float,
    shape: MarketShape,
    regime_hours: tuple[float, float] | None = None,
) -> MinuteState:
    """Draw regimes and log-vol factors; derive each minute's vol, drift and trade activity."""
    n = len(open_us_T)
    regime_T = draw_regime_path(rng, n, mean_regime_hours, regime_hours)
    logvol_T = np.zeros(n)
    var_h = 0.0
    for sd, tau in (
        (shape.logvol_fast_sd, shape.logvol_fast_tau_min),
        (shape.logvol_slow_sd, shape.logvol_slow_tau_min),
    ):
        phi = math.exp(-1.0 / tau)
        # Start from the stationary law N(0, sd²) so the factor is stationary from the first minute.
        y0 = sd * float(rng.standard_normal())
        logvol_T += ar1_filter(rng.standard_normal(n) * (sd * math.sqrt(1.0 - phi * phi)), phi, y0)
        var_h += sd * sd
    logvol_T -= var_h  # E[exp(2h)] = 1: the log-vol factors leave the mean variance unchanged

    vol_mult_R = np.asarray(shape.vol_mult)
    season_T = season(open_us_T, shape)
    sigma_base = (
        annual_vol / math.sqrt(MINUTES_PER_YEAR) / math.sqrt(float(np.mean(vol_mult_R**2)) * season_mean(2, shape))
    )
    rel_vol_T = vol_mult_R[regime_T] * season_T * np.exp(logvol_T)
    eta = shape.activity_vol_elasticity
    # E[(mult·season·e^h)^η] with h ~ N(−var_h, var_h): normalises activity to a long-run mean of 1.
    mean_activity = (
        float(np.mean(vol_mult_R**eta)) * season_mean(eta, shape) * math.exp(-eta * var_h + eta * eta * var_h / 2)
    )
    return MinuteState(
        open_us_T=open_us_T,
        regime_T=regime_T,
        sigma_T=sigma_base * rel_vol_T,
        drift_T=sigma_base * np.asarray(shape.drift_sigmas)[regime_T],
        activity_T=rel_vol_T**eta / mean_activity,
        revert_T=(regime_T == Regime.RANGE).astype(np.float64),
        sigma_base=sigma_base,
    )


def student_t(rng: np.random.Generator, df: float, size: int) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(df, size=size) * math.sqrt((df - 2.0) / df)


def minute_shocks(
    rng: np.random.Generator, n: int, correlation: float, shape: MarketShape
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised (ETH, BTC) minute shocks with the configured correlation."""
    btc_T = student_t(rng, shape.shock_df, n)
    own_T = student_t(rng, shape.shock_df, n)
    return correlation * btc_T + math.sqrt(1.0 - correlation**2) * own_T, btc_T


def second_shocks(
    rng: np.random.Generator, n_sec: int, correlation: float, lag_s: int, strength: float, shape: MarketShape
) -> SecondShocks:
    """Standardised second shocks; ETH's carry ``a·u_btc[s−lag]`` (a = √strength) when strength > 0.

    The own part's correlation with BTC's same-second shock, ``ρc = (ρ − a·κ)/√(1−a²)`` with
    ``κ = max(0, 60 − lag)/60``, keeps the correlation of minute returns ≈ ``correlation`` (clipped to
    [−1, 1]). Seconds before ``lag`` have no lagged BTC second and carry no signal.
    """
    btc_S = student_t(rng, shape.shock_df, n_sec)
    own_S = student_t(rng, shape.shock_df, n_sec)
    a = math.sqrt(strength)
    if a >= 1.0:
        rho_c = 0.0
    else:
        kappa = max(0, 60 - lag_s) / 60.0
        rho_c = float(np.clip((correlation - a * kappa) / math.sqrt(1.0 - a * a), -1.0, 1.0))
    lead_S = np.zeros(n_sec)
    if a > 0.0 and n_sec > lag_s:
        lead_S[lag_s:] = a * btc_S[:-lag_s]
    a_S = np.where(np.arange(n_sec) >= lag_s, a, 0.0)
    rho_S = np.where(a_S > 0.0, rho_c, correlation)
    mixed_S = rho_S * btc_S + np.sqrt(1.0 - rho_S**2) * own_S
    eth_S = lead_S + np.sqrt(1.0 - a_S**2) * mixed_S
    return SecondShocks(eth_S=eth_S, btc_S=btc_S, lead_S=lead_S, loading=a, contemporaneous_corr=rho_c)


def range_reversion(e_T: np.ndarray, revert_T: np.ndarray, shape: MarketShape) -> np.ndarray:
    """``rev_t = −revert_t · F(1−φ) · Σ_{k≥1} φ^{k−1} e_{t−k}``: sees shocks of minutes before t only."""
    tau = shape.range_revert_tau_min
    phi = math.exp(-1.0 / tau)
    acc_T = ar1_filter(e_T, phi)
    past_T = np.concatenate(([0.0], acc_T[:-1]))
    return -revert_T * (shape.range_revert_fraction * (1.0 - phi)) * past_T


def bridge_extremes(
    d_T: np.ndarray, sigma_T: np.ndarray, u_hi_T: np.ndarray, u_lo_T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Max and min (log, relative to the open) of a Brownian bridge from 0 to ``d`` with vol ``sigma``.

    Exact inverse of ``P(max ≥ m) = exp(−2m(m−d)/σ²)``, m ≥ max(0, d) (and mirrored for the min);
    ``u_*`` are uniforms in (0, 1]. The two extremes are drawn independently (a simplification).
    """
    two_var_T = 2.0 * sigma_T * sigma_T
    hi_T = 0.5 * (d_T + np.sqrt(d_T * d_T - two_var_T * np.log(u_hi_T)))
    lo_T = 0.5 * (d_T - np.sqrt(d_T * d_T - two_var_T * np.log(u_lo_T)))
    return hi_T, lo_T


@dataclass(frozen=True)
class SymbolPath:
    """One symbol's mid path as ``log(price / start_price)``.

    The first open is exactly the start price; minute arrays cover the history, second arrays the tick period.
    """

    start_price: float
    close_T: np.ndarray
    """Log mid at each minute's close."""
    open_T: np.ndarray
    high_T: np.ndarray
    """Bridge high of each old (pre-tick) minute; shorter than close_T by the tick minutes."""
    low_T: np.ndarray
    shock_T: np.ndarray
    """Standardised minute shock (tick minutes: Σ second shocks / √60)."""
    log_mid_S: np.ndarray
    """Log mid quoted during each tick-period second (set at the second's start)."""
    shock_S: np.ndarray
    sigma_S: np.ndarray
    """Per-second vol of the mid's log return."""
    drift_S: np.ndarray
    """Per-second regime drift + range reversion (not predictable from the other symbol)."""


@dataclass(frozen=True)
class MarketPaths:
    """Everything ``simulate_paths`` made: the shared state, each symbol's path, the second shocks."""

    state: MinuteState
    eth: SymbolPath
    btc: SymbolPath
    seconds: SecondShocks


def simulate_paths(
    seed: int,
    open_us_T: np.ndarray,
    n_tick_min: int,
    *,
    start_prices: tuple[float, float],
    annual_vol: float,
    correlation: float,
    mean_regime_hours: float,
    lag_s: int,
    strength: float,
    shape: MarketShape,
    regime_hours: tuple[float, float] | None = None,
) -> MarketPaths:
    """Both symbols' mid paths: minute closes over the history, seconds over the last ``n_tick_min``."""
    n = len(open_us_T)
    n_old = n - n_tick_min
    state = minute_state(
        rng_stream(seed, STREAM_STATE),
        open_us_T,
        annual_vol=annual_vol,
        mean_regime_hours=mean_regime_hours,
        shape=shape,
        regime_hours=regime_hours,
    )
    u_eth_T, u_btc_T = minute_shocks(rng_stream(seed, STREAM_MINUTE_SHOCKS), n, correlation, shape)
    sec = second_shocks(rng_stream(seed, STREAM_SECOND_SHOCKS), 60 * n_tick_min, correlation, lag_s, strength, shape)
    uniform_4T = 1.0 - rng_stream(seed, STREAM_BRIDGE).random((4, n))  # (0, 1] for the bridge's log
    paths: list[SymbolPath] = []
    for i, (scale, u_T, u_S) in enumerate(((1.0, u_eth_T, sec.eth_S), (shape.leader_vol_ratio, u_btc_T, sec.btc_S))):
        sigma_T = scale * state.sigma_T
        shock_T = u_T.copy()
        shock_T[n_old:] = u_S.reshape(n_tick_min, 60).sum(axis=1) / math.sqrt(60.0)
        e_T = sigma_T * shock_T
        base_T = scale * state.drift_T + range_reversion(e_T, state.revert_T, shape)
        r_T = base_T + e_T
        close_T = np.cumsum(r_T)
        open_T = np.concatenate(([0.0], close_T[:-1]))
        hi_T, lo_T = bridge_extremes(
            r_T[:n_old], sigma_T[:n_old], uniform_4T[2 * i, :n_old], uniform_4T[2 * i + 1, :n_old]
        )
        sigma_S = np.repeat(sigma_T[n_old:] / math.sqrt(60.0), 60)
        drift_S = np.repeat(base_T[n_old:] / 60.0, 60)
        log_mid_S = (open_T[n_old] if n_tick_min else 0.0) + np.cumsum(drift_S + sigma_S * u_S)
        paths.append(
            SymbolPath(
                start_price=start_prices[i],
                close_T=close_T,
                open_T=open_T,
                high_T=np.maximum(open_T[:n_old] + hi_T, np.maximum(open_T[:n_old], close_T[:n_old])),
                low_T=np.minimum(open_T[:n_old] + lo_T, np.minimum(open_T[:n_old], close_T[:n_old])),
                shock_T=shock_T,
                log_mid_S=log_mid_S,
                shock_S=u_S,
                sigma_S=sigma_S,
                drift_S=drift_S,
            )
        )
    return MarketPaths(state=state, eth=paths[0], btc=paths[1], seconds=sec)
