"""Validation and cleaning of trades and bars frames: every problem is an error or a counted repair.

The importers (``rltrade.data.importers``) run these checks on every file; other sources (ccxt, the
synthetic market) may call :func:`clean_trades` / :func:`clean_bars` on their own frames. Input frames use
``rltrade.data.schema`` column names with times already in µs; two optional bookkeeping columns trace each
row back to its origin and are passed through when present: ``_line`` (1-based line in the source file,
header included; for a bare frame, the 1-based row position) and ``_file`` (index into ``sources``).

What happens to each problem, by policy (``strict``: everything ``repair`` would fix is an error instead):

==============================================  ====================================  ========
problem                                         ``repair``                            ``strict``
==============================================  ====================================  ========
bad gzip / zip, truncated gzip, zip not 1 CSV   error :class:`CorruptFileError`       error
empty file, header only, unknown header,        error :class:`FileFormatError`        error
missing/extra columns, line with too many or
too few fields (not the last), non-numeric cell
last line cut short (fewer fields, no newline)  drop, ``truncated_last_line``         error
blank line                                      drop, ``blank_line``                  error
timestamps neither ms nor µs, or ms and µs      error :class:`TimeUnitError`          error
mixed in one file, or a frame not in µs
empty cell in a required column                 drop, ``missing_value``               error
time later than now + 5 minutes (trade time     drop, ``future_time``                 error
or bar open; a clock or unit error upstream)
NaN / ±inf price (any of OHLC)                  drop, ``non_finite_price``            error
zero or negative price                          drop, ``non_positive_price``          error
NaN / ±inf trade quantity                       drop, ``non_finite_qty``              error
negative trade quantity                         drop, ``negative_qty``                error
zero trade quantity                             drop, ``zero_qty``                    error
high < low, open or close outside [low, high]   drop, ``ohlc_inconsistent``           error
NaN / ±inf volume, quote volume, taker volume   drop, ``non_finite_volume``           error
negative volume, quote volume, taker volume,    drop, ``negative_volume``             error
or trade count
taker buy volume > volume                       drop, ``taker_buy_exceeds_volume``    error
exact duplicate row (same key, same values)     keep first, ``duplicate_exact``       error
same key, different values                      error :class:`DuplicateConflictError` error
rows not in time order                          sort, ``out_of_order`` (not dropped)  error
more than one symbol                            error :class:`MixedSymbolsError`      error
bar time off the timeframe grid, or a           error :class:`TimeframeError`         error
timeframe that contradicts the file
==============================================  ====================================  ========

Zero-volume bars are valid (an hour with no trade) and kept. A row with several problems is counted once,
under the first one in the table's order, so the report's drop counts add up exactly:
``rows_in == rows_out + n_dropped``. Checks run in this order: columns, time unit, row values, duplicates
(after bad rows are gone, so a NaN copy of a good row is a bad row, not a conflict), then time order.
Nothing is changed in place: a repair either drops a whole row or reorders rows, never edits a value.
Known limit: a plain CSV cut inside the last field of its last line (no final newline, field count intact)
cannot be told from a complete file; compressed files carry a checksum that catches it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple

import polars as pl
from polars.exceptions import InvalidOperationError

from rltrade.data.schema import BAR_KEY, BAR_SCHEMA, TRADE_KEY, TRADE_SCHEMA, SchemaError, conform
from rltrade.types import Timeframe

Policy = Literal["repair", "strict"]
TimeUnit = Literal["ms", "us", "ns"]

LINE: Final = "_line"
FILE: Final = "_file"
MAX_EXAMPLES: Final = 5

# Epoch magnitudes for 2001-09-09 .. 2286-11-20 in each unit (ns: until int64 ends in 2262). The ranges are
# disjoint, so one value names its unit; values between them (e.g. 1e14) are ambiguous and refused.
_UNIT_RANGE: Final[dict[str, tuple[int, int]]] = {
    "ms": (10**12, 10**13),
    "us": (10**15, 10**16),
    "ns": (10**18, 2**63 - 1),
}
_UNIT_TO_US: Final[dict[str, tuple[int, int]]] = {"ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}
FUTURE_TOLERANCE_US: Final = 5 * 60 * 1_000_000
"""A time up to this far past the cleaning clock is accepted (clock skew); later ones are ``future_time``."""
_REPAIR_HINT: Final = "Fix the file, or import with policy='repair' to drop or reorder such rows (counted)"


class Problem(enum.StrEnum):
    """A repairable problem; the order is the precedence when one row has several."""

    TRUNCATED_LAST_LINE = "truncated_last_line"
    BLANK_LINE = "blank_line"
    MISSING_VALUE = "missing_value"
    FUTURE_TIME = "future_time"
    NON_FINITE_PRICE = "non_finite_price"
    NON_POSITIVE_PRICE = "non_positive_price"
    NON_FINITE_QTY = "non_finite_qty"
    NEGATIVE_QTY = "negative_qty"
    ZERO_QTY = "zero_qty"
    OHLC_INCONSISTENT = "ohlc_inconsistent"
    NON_FINITE_VOLUME = "non_finite_volume"
    NEGATIVE_VOLUME = "negative_volume"
    TAKER_BUY_EXCEEDS_VOLUME = "taker_buy_exceeds_volume"
    DUPLICATE_EXACT = "duplicate_exact"
    OUT_OF_ORDER = "out_of_order"

    @property
    def drops(self) -> bool:
        """True when the repair removes the row (every problem except reordering)."""
        return self is not Problem.OUT_OF_ORDER

    @property
    def text(self) -> str:
        """The one-line description of this problem used in reports."""
        return _PROBLEM_TEXT[self]


_PROBLEM_TEXT: Final[dict[Problem, str]] = {
    Problem.TRUNCATED_LAST_LINE: "last line is cut short (fewer fields and no final newline)",
    Problem.BLANK_LINE: "blank line",
    Problem.MISSING_VALUE: "empty cell in a required column",
    Problem.FUTURE_TIME: "time is later than now (plus 5 minutes)",
    Problem.NON_FINITE_PRICE: "price is NaN or infinite",
    Problem.NON_POSITIVE_PRICE: "price is zero or negative",
    Problem.NON_FINITE_QTY: "quantity is NaN or infinite",
    Problem.NEGATIVE_QTY: "quantity is negative",
    Problem.ZERO_QTY: "quantity is zero",
    Problem.OHLC_INCONSISTENT: "OHLC inconsistent (high < low, or open/close outside [low, high])",
    Problem.NON_FINITE_VOLUME: "volume is NaN or infinite",
    Problem.NEGATIVE_VOLUME: "volume or trade count is negative",
    Problem.TAKER_BUY_EXCEEDS_VOLUME: "taker buy volume exceeds volume",
    Problem.DUPLICATE_EXACT: "exact duplicate of an earlier row",
    Problem.OUT_OF_ORDER: "row is earlier in time than the row before it",
}


class DataImportError(ValueError):
    """Bad input a user can act on: what was wrong, where (file, line, column) and what to do."""

    def __init__(self, what: str, *, file: str, hint: str, line: int | None = None, column: str | None = None) -> None:
        self.what, self.file, self.line, self.column, self.hint = what, file, line, column, hint
        where = file + (f", line {line}" if line is not None else "")
        where += f", column {column!r}" if column is not None else ""
        super().__init__(f"{where}: {what}. {hint}.")


class CorruptFileError(DataImportError):
    """The archive or compression is damaged (truncated gzip, bad zip)."""


class FileFormatError(DataImportError):
    """The file is not a layout rltrade knows: columns, field counts, cell types, no data."""


class TimeUnitError(DataImportError):
    """Timestamps whose unit cannot be told, or ms and µs mixed in one file."""


class BadRowError(DataImportError):
    """A row ``repair`` would drop or reorder, refused under ``strict``."""

    def __init__(self, problem: Problem, **kwargs: object) -> None:
        self.problem = problem
        super().__init__(**kwargs)  # type: ignore[arg-type]


class DuplicateConflictError(DataImportError):
    """Two rows share a key (trade id, bar open time) but disagree on values: no copy can be chosen."""


class MixedSymbolsError(DataImportError):
    """One import holds more than one symbol."""


class TimeframeError(DataImportError):
    """Bars off the timeframe grid, finer than the timeframe, or a timeframe that contradicts the file."""


@dataclass(frozen=True)
class RowRef:
    """Where a row came from: source label and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        """Return ``file:line``."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CleaningReport:
    """Everything cleaning changed: per-problem row counts and up to ``MAX_EXAMPLES`` example rows each.

    ``counts[p]`` is the number of rows dropped for ``p`` (or moved, for ``out_of_order``). The
    constructor enforces ``rows_in == rows_out + n_dropped``, so nothing can be dropped uncounted.
    """

    sources: tuple[str, ...]
    rows_in: int
    rows_out: int
    counts: Mapping[Problem, int] = field(default_factory=dict)
    examples: Mapping[Problem, tuple[RowRef, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check that every input row is either kept or counted as dropped."""
        if self.rows_in != self.rows_out + self.n_dropped:
            raise RuntimeError(
                f"cleaning bug: {self.rows_in} rows in != {self.rows_out} out + {self.n_dropped} counted drops"
            )

    @property
    def n_dropped(self) -> int:
        """The number of rows dropped, over all dropping problems."""
        return sum(n for p, n in self.counts.items() if p.drops)

    @property
    def is_clean(self) -> bool:
        """True when nothing was dropped or reordered."""
        return not any(self.counts.values())

    def then(self, later: CleaningReport) -> CleaningReport:
        """Chain a later stage applied to this stage's output."""
        if later.rows_in != self.rows_out:
            raise RuntimeError(f"cleaning bug: stage has {later.rows_in} rows in, previous gave {self.rows_out}")
        return _sum_reports([self, later], self.sources, self.rows_in, later.rows_out)

    @staticmethod
    def merged(reports: Sequence[CleaningReport]) -> CleaningReport:
        """Merge the reports of separate inputs (several files) into one."""
        sources = tuple(s for r in reports for s in r.sources)
        return _sum_reports(reports, sources, sum(r.rows_in for r in reports), sum(r.rows_out for r in reports))

    def summary(self) -> str:
        """Describe the report in a few lines of text: rows in/out, then one line per problem with examples."""
        src = self.sources[0] if len(self.sources) == 1 else f"{len(self.sources)} files"
        head = f"{src}: {self.rows_in:,} rows in, {self.rows_out:,} out, {self.n_dropped:,} dropped"
        if self.is_clean:
            return head + "; nothing changed"
        lines = [head]
        for p in Problem:
            if n := self.counts.get(p, 0):
                verb = "dropped" if p.drops else "reordered"
                eg = ", ".join(str(r) for r in self.examples.get(p, ()))
                lines.append(f"  {p.value:<26} {n:>9,} {verb:<9} {p.text}; e.g. {eg}")
        return "\n".join(lines)


def _sum_reports(
    reports: Sequence[CleaningReport], sources: tuple[str, ...], rows_in: int, rows_out: int
) -> CleaningReport:
    counts: dict[Problem, int] = {}
    examples: dict[Problem, tuple[RowRef, ...]] = {}
    for r in reports:
        for p, n in r.counts.items():
            counts[p] = counts.get(p, 0) + n
            examples[p] = (examples.get(p, ()) + r.examples.get(p, ()))[:MAX_EXAMPLES]
    return CleaningReport(sources, rows_in, rows_out, counts, examples)


class Cleaned(NamedTuple):
    """A cleaned frame (schema columns, plus ``_line``/``_file`` if the input had them) and its report."""

    frame: pl.DataFrame
    report: CleaningReport


# ---------------------------------------------------------------------------------------------------------
# Time units


def fmt_time(value: int, unit: TimeUnit = "us") -> str:
    """``value`` as an ISO UTC time for messages (or the raw number when it is not a plausible epoch)."""
    mul, div = _UNIT_TO_US[unit]
    try:
        return datetime.fromtimestamp(value * mul // div / 1e6, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return str(value)


def detect_time_unit(
    values: pl.Series, lines: pl.Series, *, source: str, column: str, allowed: Sequence[TimeUnit] = ("ms", "us")
) -> TimeUnit:
    """Infer the unit of integer epoch ``values`` from their magnitude, among ``allowed``.

    ms epochs of 2001–2286 lie in [1e12, 1e13), µs in [1e15, 1e16), ns in [1e18, 2**63): a value outside
    every allowed range, or values of two units in one column, raise :class:`TimeUnitError` naming the line.
    Nulls are ignored (cleaning counts them as ``missing_value``).
    """
    masks = {u: values.is_between(*_UNIT_RANGE[u], closed="left").fill_null(False) for u in allowed}
    unknown = values.is_not_null()
    for m in masks.values():
        unknown = unknown & ~m
    names = {"ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
    if unknown.any():
        i = int(unknown.arg_true()[0])
        ranges = ", ".join(f"{names[u]} [{_UNIT_RANGE[u][0]:.0e}, {_UNIT_RANGE[u][1]:.0e})" for u in allowed)
        raise TimeUnitError(
            f"timestamp {values[i]} is not an epoch between 2001 and 2286 in {ranges}: the unit is ambiguous",
            file=source,
            line=int(lines[i]),
            column=column,
            hint="Check the column holds UTC epoch times in one of those units (seconds are not accepted)",
        )
    present = [u for u, m in masks.items() if m.any()]
    if not present:
        raise FileFormatError("column has no timestamps", file=source, column=column, hint="Check the file is complete")
    if len(present) > 1:
        firsts = ", ".join(
            f"{int(masks[u].sum())} in {names[u]} (first at line {lines[int(masks[u].arg_true()[0])]})" for u in present
        )
        raise TimeUnitError(
            f"timestamps of different units in one column: {firsts}",
            file=source,
            column=column,
            hint="Binance spot dumps switched from ms to µs in 2025; import such files separately",
        )
    return present[0]


def to_us(col: str, unit: TimeUnit) -> pl.Expr:
    """Expression converting integer epoch column ``col`` from ``unit`` to µs (ns are floored)."""
    mul, div = _UNIT_TO_US[unit]
    expr = pl.col(col).cast(pl.Int64)
    if mul != 1:
        expr = expr * mul
    if div != 1:
        expr = expr // div
    return expr


# ---------------------------------------------------------------------------------------------------------
# Cleaning


class _Check(NamedTuple):
    problem: Problem
    column: str
    bad: pl.Expr  # True where the row has the problem; never null


def _not_finite(c: str) -> pl.Expr:
    return (~pl.col(c).is_finite()).fill_null(False)


def _lt(a: str | pl.Expr, b: str | pl.Expr) -> pl.Expr:
    left = pl.col(a) if isinstance(a, str) else a
    right = pl.col(b) if isinstance(b, str) else b
    return (left < right).fill_null(False)


def _missing_checks(df: pl.DataFrame, required: Sequence[str], optional: Sequence[str]) -> list[_Check]:
    # An optional column that is null throughout means "unknown for this source"; partly null means holes.
    cols = list(required) + [c for c in optional if c in df.columns and 0 < df[c].null_count() < df.height]
    return [_Check(Problem.MISSING_VALUE, c, pl.col(c).is_null()) for c in cols]


def _now_us(now_us: int | None) -> int:
    return now_us if now_us is not None else int(datetime.now(UTC).timestamp() * 1_000_000)


def _future_check(col: str, now_us: int) -> _Check:
    return _Check(Problem.FUTURE_TIME, col, (pl.col(col) > now_us + FUTURE_TOLERANCE_US).fill_null(False))


def _trade_checks(df: pl.DataFrame, now_us: int) -> list[_Check]:
    checks = _missing_checks(df, ["ts_us", "trade_id", "price", "qty", "side"], [])
    checks += [
        _future_check("ts_us", now_us),
        _Check(Problem.NON_FINITE_PRICE, "price", _not_finite("price")),
        _Check(Problem.NON_POSITIVE_PRICE, "price", (pl.col("price") <= 0).fill_null(False)),
        _Check(Problem.NON_FINITE_QTY, "qty", _not_finite("qty")),
        _Check(Problem.NEGATIVE_QTY, "qty", _lt("qty", pl.lit(0.0))),
        _Check(Problem.ZERO_QTY, "qty", (pl.col("qty") == 0).fill_null(False)),
    ]
    return checks


_PRICES: Final = ("open", "high", "low", "close")
_VOLUMES: Final = ("volume", "quote_volume", "taker_buy_volume")


def _bar_checks(df: pl.DataFrame, now_us: int) -> list[_Check]:
    checks = _missing_checks(df, ["open_us", *_PRICES, "volume"], ["quote_volume", "trade_count", "taker_buy_volume"])
    checks.append(_future_check("open_us", now_us))
    checks += [_Check(Problem.NON_FINITE_PRICE, c, _not_finite(c)) for c in _PRICES]
    checks += [_Check(Problem.NON_POSITIVE_PRICE, c, (pl.col(c) <= 0).fill_null(False)) for c in _PRICES]
    checks += [
        _Check(Problem.OHLC_INCONSISTENT, "high", _lt("high", "low")),
        _Check(Problem.OHLC_INCONSISTENT, "open", _lt("high", "open") | _lt("open", "low")),
        _Check(Problem.OHLC_INCONSISTENT, "close", _lt("high", "close") | _lt("close", "low")),
    ]
    checks += [_Check(Problem.NON_FINITE_VOLUME, c, _not_finite(c)) for c in _VOLUMES]
    checks += [_Check(Problem.NEGATIVE_VOLUME, c, _lt(c, pl.lit(0))) for c in (*_VOLUMES, "trade_count")]
    checks.append(_Check(Problem.TAKER_BUY_EXCEEDS_VOLUME, "taker_buy_volume", _lt("volume", "taker_buy_volume")))
    return checks


def _refs(rows: pl.DataFrame, sources: Sequence[str]) -> tuple[RowRef, ...]:
    return tuple(RowRef(sources[f], ln) for f, ln in zip(rows[FILE], rows[LINE], strict=True))


def _row_checks(df: pl.DataFrame, checks: list[_Check], policy: Policy, sources: Sequence[str]) -> Cleaned:
    """Drop (repair) or refuse (strict) rows failing ``checks``; a row counts under its first failing check."""
    # coalesce picks the first check (in precedence order) that flags the row.
    code = pl.coalesce([pl.when(chk.bad).then(pl.lit(i, pl.Int16)) for i, chk in enumerate(checks)])
    codes = df.select(code.alias("code")).to_series()
    n_bad = codes.len() - codes.null_count()
    report = CleaningReport(tuple(sources), df.height, df.height)
    if n_bad == 0:
        return Cleaned(df, report)
    bad = df.with_columns(codes).filter(pl.col("code").is_not_null()).sort(FILE, LINE)
    if policy == "strict":
        row = bad.row(0, named=True)
        chk = checks[row["code"]]
        raise BadRowError(
            chk.problem,
            what=f"{chk.problem.text} (value {row[chk.column]!r})"
            + (f"; {n_bad - 1} more row(s) with problems" if n_bad > 1 else ""),
            file=sources[row[FILE]],
            line=row[LINE],
            column=chk.column,
            hint=_REPAIR_HINT,
        )
    counts: dict[Problem, int] = {}
    examples: dict[Problem, tuple[RowRef, ...]] = {}
    problem_of = pl.Series([c.problem.value for c in checks])
    bad = bad.with_columns(problem=problem_of.gather(bad["code"]))
    for (name,), rows in bad.group_by("problem", maintain_order=True):
        p = Problem(str(name))
        counts[p] = counts.get(p, 0) + rows.height
        examples[p] = (examples.get(p, ()) + _refs(rows.head(MAX_EXAMPLES), sources))[:MAX_EXAMPLES]
    out = df.filter(codes.is_null())
    return Cleaned(out, CleaningReport(tuple(sources), df.height, out.height, counts, examples))


def _deduplicate(
    df: pl.DataFrame, key: str, value_cols: Sequence[str], policy: Policy, sources: Sequence[str]
) -> Cleaned:
    """Drop exact duplicates (keeping the first in row order); refuse same-key rows that disagree."""
    report = CleaningReport(tuple(sources), df.height, df.height)
    if df[key].n_unique() == df.height:
        return Cleaned(df, report)
    first = df.select(pl.struct(*value_cols).is_first_distinct()).to_series()
    dups = df.filter(~first)
    if dups.height and policy == "strict":
        row = dups.row(0, named=True)
        orig = df.filter(first & (pl.col(key) == row[key])).row(0, named=True)
        raise BadRowError(
            Problem.DUPLICATE_EXACT,
            what=f"exact duplicate of {sources[orig[FILE]]} line {orig[LINE]} ({key} {row[key]})",
            file=sources[row[FILE]],
            line=row[LINE],
            column=key,
            hint=_REPAIR_HINT,
        )
    kept = df.filter(first)
    conflict = kept[key].is_duplicated()
    if conflict.any():
        k = kept[key][int(conflict.arg_true()[0])]
        a, b = kept.filter(pl.col(key) == k).head(2).iter_rows(named=True)
        col = next((c for c in value_cols if a[c] != b[c]), key)  # key: differ only in ways == hides (-0.0)
        shown = fmt_time(k) if key == BAR_KEY else str(k)
        raise DuplicateConflictError(
            f"{key} {shown} also at {sources[a[FILE]]} line {a[LINE]} with different values "
            f"({col}: {a[col]!r} there, {b[col]!r} here)",
            file=sources[b[FILE]],
            line=b[LINE],
            column=col,
            hint="Keep the correct row and delete the other; no copy can be chosen automatically",
        )
    counts = {Problem.DUPLICATE_EXACT: dups.height} if dups.height else {}
    examples = {Problem.DUPLICATE_EXACT: _refs(dups.head(MAX_EXAMPLES), sources)} if dups.height else {}
    return Cleaned(kept, CleaningReport(tuple(sources), df.height, kept.height, counts, examples))


def _order(df: pl.DataFrame, by: Sequence[str], policy: Policy, sources: Sequence[str]) -> Cleaned:
    """Sort rows by ``by`` (lexicographic); ``out_of_order`` counts rows that sort before their predecessor."""
    # Row i descends when by[j] ties with row i-1 for every j < k and by[k] is smaller, for some k.
    descent = pl.lit(False)
    for k in range(len(by)):
        ties = [pl.col(c) == pl.col(c).shift(1) for c in by[:k]]
        descent = descent | pl.all_horizontal(*ties, pl.col(by[k]) < pl.col(by[k]).shift(1))
    flags = df.select(descent.fill_null(False)).to_series()
    n = int(flags.sum())
    if n == 0:
        return Cleaned(df, CleaningReport(tuple(sources), df.height, df.height))
    moved = df.filter(flags)
    if policy == "strict":
        i = int(flags.arg_true()[0])
        row, prev = df.row(i, named=True), df.row(i - 1, named=True)
        col = next(c for c in by if row[c] != prev[c])  # the first sort column that decides
        shown, before = (fmt_time(row[col]), fmt_time(prev[col])) if col == by[0] else (row[col], prev[col])
        tie = "" if col == by[0] else f"at the same {by[0]}, "
        raise BadRowError(
            Problem.OUT_OF_ORDER,
            what=f"{tie}{col} {shown} is below line {prev[LINE]}'s {before}",
            file=sources[row[FILE]],
            line=row[LINE],
            column=col,
            hint="Sort the file by time, or import with policy='repair' to sort it (counted)",
        )
    out = df.sort(by, maintain_order=True)
    ex = {Problem.OUT_OF_ORDER: _refs(moved.head(MAX_EXAMPLES), sources)}
    return Cleaned(out, CleaningReport(tuple(sources), df.height, df.height, {Problem.OUT_OF_ORDER: n}, ex))


def _prepare(df: pl.DataFrame, schema: dict[str, pl.DataType], sources: Sequence[str], what: str) -> pl.DataFrame:
    """Cast to ``schema`` (adding unknown optional columns), keep/add ``_line``/``_file``, check symbols."""
    source = sources[0] if len(sources) == 1 else f"{len(sources)} files"
    if "symbol" in df.columns and (syms := df["symbol"].drop_nulls().unique().sort().to_list()) and len(syms) > 1:
        raise MixedSymbolsError(
            f"{len(syms)} symbols in one {what} frame: {syms}",
            file=source,
            column="symbol",
            hint="Import each symbol separately",
        )
    meta = [
        pl.col(LINE).cast(pl.Int64)
        if LINE in df.columns
        else pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(LINE),
        pl.col(FILE).cast(pl.UInt32) if FILE in df.columns else pl.lit(0, pl.UInt32).alias(FILE),
    ]
    try:
        body = conform(df, schema, what=f"{source}: {what}")
    except SchemaError as e:
        raise FileFormatError(str(e), file=source, hint=f"Provide the columns {list(schema)}") from e
    except InvalidOperationError as e:
        raise FileFormatError(
            f"a column cannot be cast to the {what} schema ({str(e).splitlines()[0]})",
            file=source,
            hint=f"Expected dtypes: { {k: str(v) for k, v in schema.items()} }",
        ) from e
    return body.with_columns(df.select(meta))


def _check_us(df: pl.DataFrame, col: str, sources: Sequence[str]) -> None:
    """Refuse a time column that is not µs (a ms or ns frame passed to cleaning by mistake)."""
    detect_time_unit(
        df[col], df[LINE], source=sources[0] if len(sources) == 1 else ", ".join(sources), column=col, allowed=("us",)
    )


def _finish(parts: Sequence[CleaningReport], frame: pl.DataFrame, keep_meta: bool) -> Cleaned:
    report = parts[0]
    for later in parts[1:]:
        report = report.then(later)
    return Cleaned(frame if keep_meta else frame.drop(LINE, FILE), report)


def clean_trades(
    df: pl.DataFrame, *, policy: Policy = "repair", sources: Sequence[str] = ("<frame>",), now_us: int | None = None
) -> Cleaned:
    """Validate and clean a trades frame (``TRADE_SCHEMA`` columns, times in µs); see the module table.

    Returns rows sorted by ``(ts_us, trade_id)``, one per trade id, every value valid. ``now_us`` is the
    clock for ``future_time`` (default: the wall clock when called).
    """
    keep_meta = LINE in df.columns
    df = _prepare(df, TRADE_SCHEMA, sources, "trades")
    if df.height:
        _check_us(df, "ts_us", sources)
    a = _row_checks(df, _trade_checks(df, _now_us(now_us)), policy, sources)
    b = _deduplicate(a.frame, TRADE_KEY, list(TRADE_SCHEMA), policy, sources)
    c = _order(b.frame, ["ts_us", TRADE_KEY], policy, sources)
    return _finish([a.report, b.report, c.report], c.frame, keep_meta)


def clean_bars(
    df: pl.DataFrame,
    *,
    policy: Policy = "repair",
    timeframe: Timeframe | None = None,
    sources: Sequence[str] = ("<frame>",),
    now_us: int | None = None,
) -> Cleaned:
    """Validate and clean a bars frame (``BAR_SCHEMA`` columns, times in µs); see the module table.

    With ``timeframe``, every open time must lie on its grid (a multiple of ``timeframe.us``).
    Returns rows sorted by ``open_us``, one per open time, every value valid. ``now_us`` is the clock
    for ``future_time`` (default: the wall clock when called).
    """
    keep_meta = LINE in df.columns
    df = _prepare(df, BAR_SCHEMA, sources, "bars")
    if df.height:
        _check_us(df, "open_us", sources)
    a = _row_checks(df, _bar_checks(df, _now_us(now_us)), policy, sources)
    b = _deduplicate(a.frame, BAR_KEY, list(BAR_SCHEMA), policy, sources)
    c = _order(b.frame, [BAR_KEY], policy, sources)
    if timeframe is not None:
        check_timeframe_grid(c.frame, timeframe, sources)
    return _finish([a.report, b.report, c.report], c.frame, keep_meta)


def check_timeframe_grid(bars: pl.DataFrame, timeframe: Timeframe, sources: Sequence[str]) -> None:
    """Refuse bars (with ``_line``/``_file``) whose open time is not a multiple of ``timeframe``.

    With unique open times (cleaning guarantees them) this also rules out bars closer than one timeframe.
    """
    off = ((bars[BAR_KEY] % timeframe.us) != 0).fill_null(False)
    if off.any():
        row = bars.row(int(off.arg_true()[0]), named=True)
        raise TimeframeError(
            f"bar open time {fmt_time(row[BAR_KEY])} is not on the {timeframe} grid (not a multiple of "
            f"{timeframe}); {int(off.sum())} such bar(s)",
            file=sources[row[FILE]],
            line=row[LINE],
            column=BAR_KEY,
            hint=f"Check that the file holds {timeframe} bars, or pass the right timeframe",
        )
