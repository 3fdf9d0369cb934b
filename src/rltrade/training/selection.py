"""Do-no-harm selection: choose on validation with the baselines as candidates, confirm, measure PBO.

A policy is picked on validation with flat and buy-and-hold among the candidates, confirmed on a held-back
window, and the selection's probability of backtest overfitting (PBO) is measured.

Used wherever one policy is picked among many (the training loop's checkpoints, the seeds and trials of a sweep).
The rule, in order (:func:`decide`):

1. **Choose.** Every candidate (checkpoints, seeds or trials) and the two baselines ``flat`` and
   ``buy_and_hold`` get a validation score (higher is better; the training loop uses the total return after
   costs on the *selection* part of the validation range). The highest wins; ties go to the earlier name in
   the mapping, and callers list the baselines first, so an agent must do strictly better than both.
   A baseline that wins is the selection.
2. **Overfitting.** When a probability of backtest overfitting is given (:func:`pbo_cscv`) and it is
   ``≥ max_pbo`` (0.5), the winner is refused and ``flat`` is selected, unless ``allow_overfit`` is set.
3. **Confirm.** Picking the best of many is biased upward (the winner's curse), so the last part of the
   validation range is kept for confirmation only: nothing is chosen on it. There the winner must beat
   ``flat`` and ``buy_and_hold``, each by a one-sided 95 % stationary-bootstrap test
   (:func:`rltrade.training.bootstrap.mean_greater_than_zero`, Politis–White block length, ≥ 1,000
   resamples) of the mean of the per-step return difference (winner − baseline, paired: same steps). The
   bootstrap is used rather than a deflated Sharpe ratio because the confirmation window tests one policy
   chosen elsewhere (no multiple testing left to deflate for), against a baseline rather than against zero
   Sharpe, and the paired difference keeps the market moves both policies share.
4. **Fail safe.** A winner that fails is replaced by the baseline that beat it: ``buy_and_hold`` when it
   beat ``flat`` but not ``buy_and_hold``, else ``flat`` (both baselines beat it, or neither test could
   tell). The reason is kept: :meth:`Selection.label` reads, e.g.,
   ``selected: flat (agent failed confirmation: vs flat mean −1.2e-05/step, 95 % lower bound −3.1e-05)``.

PBO (Bailey, Borwein, López de Prado & Zhu, 2015, "The probability of backtest overfitting"): combinatorially
symmetric cross-validation over the candidates' per-step validation returns (a ``T × N`` matrix). The rows are
cut into ``S`` contiguous blocks; for each of the ``C(S, S/2)`` ways to call half of them in-sample, the
candidate with the best in-sample Sharpe ratio is located in the out-of-sample ranking, ``ω`` = its rank /
(N + 1) (rank 1 = worst, ties averaged) and ``λ = log(ω / (1 − ω))``. PBO is the share of splits with
``λ ≤ 0``: how often the in-sample winner ranks at or below the out-of-sample median.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from rltrade.data.splits import TimeRange
from rltrade.training.bootstrap import OneSided, mean_greater_than_zero

F64 = npt.NDArray[np.float64]

BASELINES: Final = ("flat", "buy_and_hold")
"""The baselines every selection includes as candidates (and the ones the winner is confirmed against)."""
MIN_BLOCK_ROWS: Final = 4
"""Fewest rows per CSCV block: fewer blocks are used on short series."""

Status = Literal["confirmed", "failed_confirmation", "baseline_best", "refused_overfit"]


def selection_ranges(validation: TimeRange, confirm_fraction: float, step_us: int) -> tuple[TimeRange, TimeRange]:
    """Cut ``validation`` into ``(selection window, confirmation window)``.

    The cut lies at ``1 − confirm_fraction`` of its length, on the decision step (the selection window keeps at
    least one step).
    """
    if not 0.0 < confirm_fraction < 1.0:
        raise ValueError(f"the confirmation share of the validation range must lie in (0, 1), got {confirm_fraction}")
    keep = int(validation.duration_us * (1.0 - confirm_fraction)) // step_us * step_us
    cut = validation.start_us + max(keep, step_us)
    if cut >= validation.end_us:
        raise ValueError(
            f"the validation range ({validation.duration_us // step_us} steps) is too short to keep a confirmation "
            "window; lengthen splits.validation"
        )
    return TimeRange(validation.start_us, cut), TimeRange(cut, validation.end_us)


@dataclass(frozen=True)
class Pbo:
    """The probability of backtest overfitting of one selection (module docstring)."""

    pbo: float
    n_blocks: int
    n_combinations: int
    n_candidates: int
    median_logit: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the figures as a JSON-ready mapping."""
        return {
            "pbo": self.pbo,
            "n_blocks": self.n_blocks,
            "n_combinations": self.n_combinations,
            "n_candidates": self.n_candidates,
            "median_logit": self.median_logit,
        }


def pbo_cscv(returns: Mapping[str, npt.ArrayLike] | npt.ArrayLike, *, n_blocks: int = 16) -> Pbo:
    """PBO by combinatorially symmetric cross-validation of the candidates' per-step returns.

    ``returns``: name → per-step returns (all over the same steps), or a ``T × N`` array. ``n_blocks`` (even)
    is lowered to the largest even number that leaves :data:`MIN_BLOCK_ROWS` rows per block.
    """
    m_TN = (
        np.stack([np.asarray(r, dtype=np.float64) for r in returns.values()], axis=1)
        if isinstance(returns, Mapping)
        else np.asarray(returns, dtype=np.float64)
    )
    if m_TN.ndim != 2 or m_TN.shape[1] < 2:
        raise ValueError(f"PBO needs a T × N return matrix with N ≥ 2 candidates, got shape {m_TN.shape}")
    if not np.isfinite(m_TN).all():
        raise ValueError("PBO: the return matrix holds a non-finite value")
    t, n = m_TN.shape
    s = min(n_blocks, t // MIN_BLOCK_ROWS) // 2 * 2
    if s < 2:
        raise ValueError(f"PBO needs at least {2 * MIN_BLOCK_ROWS} steps of returns, got {t}")
    blocks = np.array_split(np.arange(t), s)
    count_S = np.array([len(b) for b in blocks], dtype=np.float64)
    sum_SN = np.stack([m_TN[b].sum(axis=0) for b in blocks])
    sq_SN = np.stack([(m_TN[b] ** 2).sum(axis=0) for b in blocks])
    combos = list(itertools.combinations(range(s), s // 2))
    in_CS = np.zeros((len(combos), s))
    for c, chosen in enumerate(combos):
        in_CS[c, list(chosen)] = 1.0
    out_CS = 1.0 - in_CS
    sharpe_is = _sharpe_from_sums(in_CS @ sum_SN, in_CS @ sq_SN, in_CS @ count_S)
    sharpe_oos = _sharpe_from_sums(out_CS @ sum_SN, out_CS @ sq_SN, out_CS @ count_S)
    best_C = np.argmax(sharpe_is, axis=1)
    rows = np.arange(len(combos))
    best_oos = sharpe_oos[rows, best_C][:, None]
    rank = (sharpe_oos < best_oos).sum(axis=1) + 0.5 * ((sharpe_oos == best_oos).sum(axis=1) - 1) + 1.0
    omega = rank / (n + 1)
    logit = np.log(omega / (1.0 - omega))
    return Pbo(float(np.mean(logit <= 0.0)), s, len(combos), n, float(np.median(logit)))


def _sharpe_from_sums(sum_CN: F64, sq_CN: F64, count_C: F64) -> F64:
    """Per-step Sharpe (mean / sample std, 0 when the std is 0) from sums, sums of squares and counts."""
    k = count_C[:, None]
    mean = sum_CN / k
    var = np.maximum(sq_CN - k * mean**2, 0.0) / np.maximum(k - 1.0, 1.0)
    sd = np.sqrt(var)
    tiny = sd <= 1e-12 * np.maximum(np.abs(mean), 1e-300)
    return np.where(tiny | (sd == 0.0), 0.0, mean / np.where(sd > 0.0, sd, 1.0))


def choose(scores: Mapping[str, float]) -> str:
    """Return the candidate with the highest score; ties go to the first in the mapping's order."""
    if not scores:
        raise ValueError("nothing to choose from: no candidate has a validation score")
    bad = [name for name, v in scores.items() if not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"validation score of {', '.join(bad)} is not finite")
    return max(scores, key=lambda name: float(scores[name]))


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`decide`."""

    selected: str
    """What is traded: the candidate when confirmed, else ``flat`` or ``buy_and_hold``."""
    candidate: str
    """The best on the validation (selection) part."""
    status: Status
    reason: str
    scores: dict[str, float]
    """Validation score of every candidate."""
    confirmation: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Baseline → the one-sided test of candidate − baseline on the confirmation window."""
    pbo: dict[str, Any] | None = None
    allow_overfit: bool = False

    @property
    def label(self) -> str:
        """``selected: <policy> (<why>)``, the line every table prints."""
        return f"selected: {self.selected} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as a JSON-ready mapping (with :attr:`label`)."""
        return {
            "selected": self.selected,
            "candidate": self.candidate,
            "status": self.status,
            "reason": self.reason,
            "label": self.label,
            "scores": self.scores,
            "confirmation": self.confirmation,
            "pbo": self.pbo,
            "allow_overfit": self.allow_overfit,
        }


def decide(
    scores: Mapping[str, float],
    confirmation_returns: Mapping[str, npt.ArrayLike] | None,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    pbo: Pbo | None = None,
    max_pbo: float = 0.5,
    allow_overfit: bool = False,
) -> Selection:
    """Apply the module's rule to the candidates' validation ``scores`` (both baselines among them).

    ``confirmation_returns`` holds the per-step returns on the confirmation window of the chosen candidate and
    of both baselines (None: there is no confirmation window, so a non-baseline winner cannot be confirmed and
    fails).
    """
    missing = [b for b in BASELINES if b not in scores]
    if missing:
        raise ValueError(f"the baselines {', '.join(missing)} must be candidates of every selection")
    if n_resamples < 1000:
        raise ValueError(f"confirmation needs at least 1,000 bootstrap resamples, got {n_resamples}")
    cand = choose(scores)
    sc = {k: float(v) for k, v in scores.items()}
    pbo_d = None if pbo is None else pbo.to_dict()
    if cand in BASELINES:
        rest = {k: v for k, v in sc.items() if k not in BASELINES}
        runner = max(rest, key=lambda k: rest[k]) if rest else None
        best_other = "" if runner is None else f"; best other: {runner} {rest[runner]:+.4g}"
        reason = f"{cand} scored best on validation ({sc[cand]:+.4g}{best_other})"
        return Selection(cand, cand, "baseline_best", reason, sc, {}, pbo_d, allow_overfit)
    if pbo is not None and pbo.pbo >= max_pbo and not allow_overfit:
        reason = (
            f"{cand} refused: probability of backtest overfitting {pbo.pbo:.2f} ≥ {max_pbo:.2f} "
            "(override with --allow-overfit)"
        )
        return Selection("flat", cand, "refused_overfit", reason, sc, {}, pbo_d, allow_overfit)
    if confirmation_returns is None:
        reason = f"{cand} failed confirmation: no confirmation window"
        return Selection("flat", cand, "failed_confirmation", reason, sc, {}, pbo_d, allow_overfit)
    need = [cand, *BASELINES]
    absent = [k for k in need if k not in confirmation_returns]
    if absent:
        raise ValueError(f"confirmation returns lack {', '.join(absent)}")
    mine = np.asarray(confirmation_returns[cand], dtype=np.float64)
    tests: dict[str, OneSided] = {}
    for b in BASELINES:
        other = np.asarray(confirmation_returns[b], dtype=np.float64)
        if other.shape != mine.shape:
            raise ValueError(f"confirmation returns of {cand} and {b} cover different steps")
        tests[b] = mean_greater_than_zero(mine - other, rng=rng, n_resamples=n_resamples, level=level)
    conf = {b: t.to_dict() for b, t in tests.items()}
    if all(t.passed for t in tests.values()):
        reason = f"{cand} confirmed: beat " + " and ".join(_beat(b, t) for b, t in tests.items())
        return Selection(cand, cand, "confirmed", reason, sc, conf, pbo_d, allow_overfit)
    failed = [b for b, t in tests.items() if not t.passed]
    selected = "buy_and_hold" if failed == ["buy_and_hold"] else "flat"
    reason = f"{cand} failed confirmation: " + "; ".join(_beat(b, tests[b], vs=True) for b in failed)
    return Selection(selected, cand, "failed_confirmation", reason, sc, conf, pbo_d, allow_overfit)


def _beat(baseline: str, t: OneSided, *, vs: bool = False) -> str:
    head = f"vs {baseline}" if vs else baseline
    return (
        f"{head} mean {t.estimate:+.2e}/step, one-sided {t.level:.0%} lower bound {t.lower:+.2e} "
        f"(p={t.p_value:.3f}, {t.n_resamples} resamples)"
    )
