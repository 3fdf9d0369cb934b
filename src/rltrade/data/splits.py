"""Train / validation / test ranges and walk-forward folds with purge and embargo.

Every later stage (CNN training, RL training, evaluation) takes its ranges from here, so the rules
live in one place:

* Ranges are half-open ``[start_us, end_us)`` in µs.
* **Purge** removes the last ``purge_us`` of every range that something is *fitted* on (train, and
  validation when it is used for early stopping): a label at ``t`` may look up to ``purge_us``
  ahead, so no label of a fitted range can reach into the next range.
* **Embargo** skips ``embargo_us`` at the start of every range that follows a fitted one, so slowly
  decaying serial correlation does not carry information across the boundary.

With the defaults (purge 1 h, embargo 10 min) and a 10-day span 60/20/20, for example::

    train       day 0 00:00 → day 6 00:00 − 1 h
    validation  day 6 00:10 → day 8 00:00 − 1 h
    test        day 8 00:10 → day 10 00:00
"""

from __future__ import annotations

from dataclasses import dataclass

from rltrade.config import SplitConfig
from rltrade.data.store import iso


class SplitError(ValueError):
    """Requested ranges are empty, overlap, or leave nothing after purge and embargo."""


@dataclass(frozen=True, order=True)
class TimeRange:
    """A half-open time range ``[start_us, end_us)``."""

    start_us: int
    end_us: int

    def __post_init__(self) -> None:
        """Check that the range is not empty."""
        if self.end_us <= self.start_us:
            raise SplitError(f"empty time range [{self.start_us}, {self.end_us}): end must be after start")

    @property
    def duration_us(self) -> int:
        """The length of the range in µs."""
        return self.end_us - self.start_us

    def overlaps(self, other: TimeRange) -> bool:
        """Return whether the two half-open ranges share any instant."""
        return self.start_us < other.end_us and other.start_us < self.end_us

    def contains(self, t_us: int) -> bool:
        """Return whether ``t_us`` lies in ``[start_us, end_us)``."""
        return self.start_us <= t_us < self.end_us

    def to_dict(self) -> dict[str, int]:
        """Return the range as ``{"start_us": ..., "end_us": ...}``."""
        return {"start_us": self.start_us, "end_us": self.end_us}


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: fit on ``train`` (and select on ``validation``), evaluate on ``test``."""

    index: int
    train: TimeRange
    validation: TimeRange | None
    test: TimeRange

    def fitted(self) -> list[TimeRange]:
        """Ranges something is fitted or selected on; ``test`` must not overlap any of them."""
        return [self.train] + ([self.validation] if self.validation is not None else [])


def _cut(start: int, end: int, *, purge: int, embargo: int, fitted: bool, after_fit: bool) -> TimeRange:
    s = start + (embargo if after_fit else 0)
    e = end - (purge if fitted else 0)
    if e <= s:
        raise SplitError(
            f"range [{start}, {end}) is {end - start} µs long: nothing left after purge ({purge} µs) and "
            f"embargo ({embargo} µs). Use a longer span or smaller purge_s / embargo_s."
        )
    return TimeRange(s, e)


def split_span(span: TimeRange, cfg: SplitConfig, *, step_us: int = 1) -> Fold:
    """Split ``span`` into train / validation / test by the fractions of ``cfg``, boundaries on ``step_us``.

    Validation is purged too (it selects the best checkpoint and stops CNN training early), so the
    test range starts an embargo after a purged validation range.
    """
    purge, embargo = cfg.purge_us, cfg.embargo_us
    length = span.duration_us

    def snap(x: float) -> int:
        return span.start_us + int(x * length) // step_us * step_us

    a = snap(cfg.train)
    b = snap(cfg.train + cfg.validation)
    train = _cut(span.start_us, a, purge=purge, embargo=embargo, fitted=True, after_fit=False)
    validation = _cut(a, b, purge=purge, embargo=embargo, fitted=True, after_fit=True) if cfg.validation > 0 else None
    test = _cut(b, span.end_us, purge=purge, embargo=embargo, fitted=False, after_fit=True)
    return Fold(0, train, validation, test)


def walk_forward(
    span: TimeRange,
    n_folds: int,
    *,
    purge_us: int,
    embargo_us: int,
    expanding: bool = True,
    validation_fraction: float = 0.0,
    step_us: int = 1,
) -> list[Fold]:
    """Cut rolling (or expanding) walk-forward folds over ``span``.

    The span is cut into ``n_folds + 1`` equal chunks. Fold ``k`` tests on chunk ``k + 1`` and trains
    on chunks ``0..k`` (expanding) or on chunk ``k`` alone (rolling). When ``validation_fraction > 0``
    the tail of the training part becomes the validation range. Test ranges never overlap each other
    and never overlap anything fitted in their own fold.
    """
    if n_folds < 1:
        raise SplitError(f"n_folds must be ≥ 1, got {n_folds}")
    if not 0.0 <= validation_fraction < 1.0:
        raise SplitError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    chunk = span.duration_us // (n_folds + 1) // step_us * step_us
    if chunk <= 0:
        raise SplitError(f"span of {span.duration_us} µs is too short for {n_folds} folds of step {step_us} µs")
    edges = [span.start_us + i * chunk for i in range(n_folds + 1)] + [span.end_us]
    folds: list[Fold] = []
    for k in range(n_folds):
        fit_start = edges[0] if expanding else edges[k]
        fit_end = edges[k + 1]
        validation = None
        if validation_fraction > 0:
            cut = fit_start + int((fit_end - fit_start) * (1 - validation_fraction)) // step_us * step_us
            train = _cut(fit_start, cut, purge=purge_us, embargo=embargo_us, fitted=True, after_fit=False)
            validation = _cut(cut, fit_end, purge=purge_us, embargo=embargo_us, fitted=True, after_fit=True)
        else:
            train = _cut(fit_start, fit_end, purge=purge_us, embargo=embargo_us, fitted=True, after_fit=False)
        test = _cut(fit_end, edges[k + 2], purge=purge_us, embargo=embargo_us, fitted=False, after_fit=True)
        folds.append(Fold(k, train, validation, test))
    return folds


def ensure_disjoint(evaluated: TimeRange, fitted: list[TimeRange], *, what: str) -> None:
    """Refuse to evaluate on a range that overlaps anything fitted (scalers, thresholds, models)."""
    for f in fitted:
        if evaluated.overlaps(f):
            raise SplitError(
                f"{what}: evaluation range [{iso(evaluated.start_us)}, {iso(evaluated.end_us)}) overlaps the "
                f"fitted range [{iso(f.start_us)}, {iso(f.end_us)}). Results there would be a leak; "
                "evaluate on a later period."
            )
