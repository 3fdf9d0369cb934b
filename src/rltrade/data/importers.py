"""Import market-data files into rltrade frames: Binance dumps, recorded streams, book ticker, funding.

:func:`import_file` reads one klines / trades / aggTrades / recorded-trades file (plain CSV, ``.gz``, or a
Binance ``.zip`` holding one CSV; with or without a header row) and returns an :class:`ImportResult`: the
frame in ``BAR_SCHEMA`` or ``TRADE_SCHEMA`` (times in µs), its kind, symbol, timeframe, and the
:class:`~rltrade.data.cleaning.CleaningReport` of everything cleaning changed. :func:`import_files` does
the same for several files of one symbol (e.g. a month of daily zips). The layouts are documented in
``importers_klines`` and ``importers_trades``; errors and repairs per policy in ``cleaning``.

How a file is recognised, first match wins:

- kind: ``kind=`` if given, else the header row, else the file name (``ETHUSDT-aggTrades-2024-08-01.zip``,
  ``binance_spot_ETHUSDT_1m_....csv.gz``), else the column count and the first row's value types; a file
  that fits several layouts is refused with a request for ``kind=``. Given kind, header and name must agree.
- symbol: ``symbol=`` or the file name; both present must agree; neither is an error.
- timeframe (klines): ``timeframe=`` or the file name, checked against the modal open-time spacing, or
  inferred from that spacing alone.

Line numbers in messages and reports are 1-based lines of the (decompressed) CSV, header included.
Parsing is polars' CSV reader; checks are vectorised (polars / numpy) and only error messages loop.
"""

from __future__ import annotations

import enum
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import polars as pl
from polars.exceptions import ComputeError

from rltrade.data.cleaning import (
    FILE,
    LINE,
    MAX_EXAMPLES,
    BadRowError,
    CleaningReport,
    CorruptFileError,
    DataImportError,
    FileFormatError,
    MixedSymbolsError,
    Policy,
    Problem,
    RowRef,
    TimeframeError,
    clean_bars,
    clean_trades,
    detect_time_unit,
    to_us,
)
from rltrade.data.importers_klines import KLINE_HEADER_ALIASES, KLINES_6, KLINES_12, bars_from_klines
from rltrade.data.importers_trades import (
    AGG_TRADES_7,
    AGG_TRADES_8,
    RECORDED_TRADES,
    TRADES_6,
    TRADES_7,
    trades_from_raw,
)
from rltrade.types import Kind, Timeframe


class FileKind(enum.StrEnum):
    """What an importable file holds."""

    KLINES = "klines"
    TRADES = "trades"
    AGG_TRADES = "aggTrades"
    RECORDED_TRADES = "recorded_trades"

    @property
    def data_kind(self) -> Kind:
        """The kind of data (bars or trades) a file of this kind holds."""
        return Kind.BARS if self is FileKind.KLINES else Kind.TRADES


Layout = dict[str, pl.DataType]

# Known layouts; headerless files are matched only against the dump layouts (recordings have a header).
_LAYOUTS: Final[tuple[tuple[FileKind, Layout], ...]] = (
    (FileKind.KLINES, KLINES_12),
    (FileKind.KLINES, KLINES_6),
    (FileKind.TRADES, TRADES_7),
    (FileKind.TRADES, TRADES_6),
    (FileKind.AGG_TRADES, AGG_TRADES_8),
    (FileKind.AGG_TRADES, AGG_TRADES_7),
    (FileKind.RECORDED_TRADES, RECORDED_TRADES),
)
_BOOK_RECORDED: Final[Layout] = {
    "local_ts_ns": pl.Int64(),
    "update_id": pl.Int64(),
    "bid_price": pl.Float64(),
    "bid_qty": pl.Float64(),
    "ask_price": pl.Float64(),
    "ask_qty": pl.Float64(),
}
_BOOK_DUMP: Final[Layout] = {  # data.binance.vision USDⓈ-M bookTicker
    "update_id": pl.Int64(),
    "best_bid_price": pl.Float64(),
    "best_bid_qty": pl.Float64(),
    "best_ask_price": pl.Float64(),
    "best_ask_qty": pl.Float64(),
    "transaction_time": pl.Int64(),
    "event_time": pl.Int64(),
}
_AGG_HEADER_ALIASES: Final[dict[str, str]] = {"qty": "quantity", "time": "transact_time"}
_FUNDING_RECORDED: Final[Layout] = {"open_time": pl.Int64(), "funding_rate": pl.Float64()}
_FUNDING_DUMP: Final[Layout] = {
    "calc_time": pl.Int64(),
    "funding_interval_hours": pl.Int64(),
    "last_funding_rate": pl.Float64(),
}

_NAME_PATTERNS: Final = (
    re.compile(r"^(?P<symbol>[A-Z0-9]{2,})-(?P<what>\d+[smhdwM]|trades|aggTrades|bookTicker|fundingRate)-"),
    re.compile(r"^binance_(?P<market>[a-z]+)_(?P<symbol>[A-Z0-9]{2,})_(?P<what>[A-Za-z0-9]+)_"),
)
_WHAT_KIND: Final[dict[str, FileKind]] = {"trades": FileKind.TRADES, "aggTrades": FileKind.AGG_TRADES}


class NameInfo(NamedTuple):
    """What a file name says: symbol, the kind word or timeframe token, and whether it is a recording."""

    symbol: str | None
    what: str | None
    recorded: bool


def parse_file_name(name: str) -> NameInfo:
    """``ETHUSDT-1m-2024-08-01.zip`` → (ETHUSDT, 1m, False); ``binance_spot_ETHUSDT_trades_…`` → (…, True)."""
    for i, pattern in enumerate(_NAME_PATTERNS):
        if m := pattern.match(name):
            return NameInfo(m["symbol"], m["what"], recorded=i == 1)
    return NameInfo(None, None, recorded=False)


@dataclass(frozen=True)
class ImportResult:
    """One import: the frame (``BAR_SCHEMA`` / ``TRADE_SCHEMA``), what it is, and the cleaning report."""

    frame: pl.DataFrame
    kind: FileKind
    symbol: str
    timeframe: Timeframe | None  # None for trades
    report: CleaningReport

    @property
    def data_kind(self) -> Kind:
        """The kind of data (bars or trades) the file holds."""
        return self.kind.data_kind


# ---------------------------------------------------------------------------------------------------------
# Reading bytes and CSV text


def read_source(path: Path) -> tuple[bytes, str, str | None]:
    """Read the CSV bytes of ``path`` (plain, gzip, or a zip of one file), a label for messages, the zip member."""
    raw = path.read_bytes()
    if not raw:
        raise FileFormatError("file is empty (0 bytes)", file=str(path), hint="Re-download or regenerate it")
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw), str(path), None
        except (EOFError, OSError, zlib.error) as e:
            raise CorruptFileError(
                f"gzip data is damaged or truncated ({e})", file=str(path), hint="Re-download the file"
            ) from e
    if raw[:2] == b"PK" or path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise FileFormatError(
                        f"zip holds {len(members)} files {[m.filename for m in members]}, expected one CSV",
                        file=str(path),
                        hint="Unpack it and import the CSV files one by one",
                    )
                member = members[0].filename
                return zf.read(member), f"{path}:{member}", member
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise CorruptFileError(
                f"zip archive is damaged or truncated ({e})", file=str(path), hint="Re-download the file"
            ) from e
    if path.suffix.lower() == ".gz":
        raise CorruptFileError("named .gz but is not gzip data", file=str(path), hint="Re-download the file")
    return raw, str(path), None


class _Text(NamedTuple):
    """A decompressed CSV, split into header and data lines without copying the data."""

    data: bytes  # the whole file, header included
    header: tuple[str, ...] | None  # normalised names, or None when the first line is data
    n_lines: int  # data lines (blank ones included)
    ends_newline: bool  # whether the last line is complete
    first_row: tuple[str, ...]  # fields of the first data line (for layout sniffing)
    line0: int = 0  # file lines before ``data`` (a later chunk of a streamed file)

    @property
    def skip(self) -> int:
        return 0 if self.header is None else 1

    @property
    def first_line(self) -> int:
        """File line number of the first data line."""
        return self.line0 + self.skip + 1


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _fields(line: bytes) -> tuple[str, ...]:
    return tuple(f.strip() for f in line.rstrip(b"\r").decode("utf-8", "replace").split(","))


def _split_header(data: bytes, source: str) -> _Text:
    # Copies of the whole buffer happen only in the rare cases below (BOM, trailing blank lines).
    data = data.removeprefix(b"\xef\xbb\xbf")
    if data.endswith((b"\n\n", b"\n\r\n")):  # trailing blank lines are not rows
        data = data.rstrip(b"\r\n") + b"\n"
    if not data or data.isspace():
        raise FileFormatError("file holds no data", file=source, hint="Re-download or regenerate it")
    ends_newline = data.endswith(b"\n")
    n_total = data.count(b"\n") + (not ends_newline)
    nl = data.find(b"\n")
    first = _fields(data if nl < 0 else data[:nl])
    if _is_int(first[0]):
        return _Text(data, None, n_total, ends_newline, first)
    header = tuple(f.lower().replace(" ", "_") for f in first)
    if n_total < 2:
        raise FileFormatError(
            f"header {_show(header)} and no data rows", file=source, hint="Re-download or regenerate the file"
        )
    end = data.find(b"\n", nl + 1)
    row = _fields(data[nl + 1 : end if end >= 0 else len(data)])
    return _Text(data, header, n_total - 1, ends_newline, row)


def _scan_fields(text: _Text, ncols: int, source: str) -> tuple[list[int], int | None]:
    """Blank lines and a truncated last line (as file line numbers); any other ragged line is an error."""
    arr = np.frombuffer(text.data, dtype=np.uint8)
    nl = np.flatnonzero(arr == ord("\n"))
    starts = np.concatenate(([0], nl + 1))[text.skip : text.skip + text.n_lines]
    ends = np.concatenate((nl, [arr.size]))[text.skip : text.skip + text.n_lines]
    commas = np.flatnonzero(arr == ord(","))
    fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    length = ends - starts
    has_cr = np.zeros(length.size, dtype=bool)
    has_cr[length > 0] = arr[ends[length > 0] - 1] == ord("\r")
    blank = (length - has_cr) == 0
    ragged = np.flatnonzero(~blank & (fields != ncols))
    last = text.n_lines - 1
    truncated = None
    if ragged.size and ragged[-1] == last and fields[last] < ncols and not text.ends_newline:
        truncated, ragged = text.first_line + last, ragged[:-1]
    if ragged.size:
        i = int(ragged[0])
        shown = text.data[starts[i] : min(ends[i], starts[i] + 80)].decode("utf-8", "replace")
        raise FileFormatError(
            f"{fields[i]} fields where the layout has {ncols} ({shown!r}); {ragged.size} such line(s)",
            file=source,
            line=text.first_line + i,
            hint="The file is damaged or mixes layouts; re-download it",
        )
    return [text.first_line + int(i) for i in np.flatnonzero(blank)], truncated


def _csv(data: bytes, skip: int, schema: Layout) -> pl.DataFrame:
    return pl.read_csv(data, has_header=False, skip_lines=skip, schema=schema, quote_char=None)


def _raise_bad_cell(data: bytes, skip: int, layout: Layout, source: str, err: Exception, line0: int = 0) -> None:
    """Find the first cell polars could not parse and raise a FileFormatError naming line, column, value."""
    strings = _csv(data, skip, dict.fromkeys(layout, pl.String()))
    found: list[tuple[int, str, str, pl.DataType]] = []
    for col, dtype in layout.items():
        s = strings[col].str.strip_chars()
        if dtype == pl.String():
            continue
        if dtype == pl.Boolean():
            ok = s.str.to_lowercase().is_in(["true", "false"])
        else:
            ok = s.cast(dtype, strict=False).is_not_null()
        bad = (s.is_not_null() & (s != "") & ~ok).fill_null(False)
        if bad.any():
            i = int(bad.arg_true()[0])
            found.append((i, col, str(s[i]), dtype))
    if not found:
        raise FileFormatError(
            f"the CSV reader failed ({str(err).splitlines()[0]})", file=source, hint="Check the file's layout"
        ) from err
    i, col, value, dtype = min(found)
    kind = {pl.Int64(): "an integer", pl.Boolean(): "true/false"}.get(dtype, "a number")
    raise FileFormatError(
        f"cannot read {value!r} as {kind}",
        file=source,
        line=line0 + skip + 1 + i,
        column=col,
        hint="The cell is damaged or the file is not this layout; fix or re-download it",
    ) from err


def _read_body(data: bytes, skip: int, n_rows: int, layout: Layout, source: str, line0: int = 0) -> pl.DataFrame:
    if n_rows == 0:
        return pl.DataFrame(schema=layout)
    try:
        return _csv(data, skip, layout)
    except ComputeError as e:
        _raise_bad_cell(data, skip, layout, source, e, line0)
        raise  # unreachable: _raise_bad_cell always raises


def _parse(text: _Text, layout: Layout, source: str, policy: Policy) -> tuple[pl.DataFrame, CleaningReport]:
    """Parse the data lines with ``layout``; count (repair) or refuse (strict) blank and truncated lines.

    polars reads a short line as trailing nulls and a blank line as an all-null row, so the per-line field
    scan runs only when the parsed frame holds a null (or polars fails): clean files skip it.
    """
    blank: list[int] = []
    truncated: int | None = None
    frame: pl.DataFrame | None
    try:
        frame = _csv(text.data, text.skip, layout)
        if any(frame.null_count().row(0)):
            blank, truncated = _scan_fields(text, len(layout), source)
    except ComputeError:
        blank, truncated = _scan_fields(text, len(layout), source)  # raises for a line with too many fields
        frame = None
    n_rows = text.n_lines - (truncated is not None)
    if frame is None:
        data = text.data if truncated is None else text.data[: text.data.rfind(b"\n") + 1]
        frame = _read_body(data, text.skip, n_rows, layout, source, text.line0)
    elif truncated is not None:
        frame = frame.head(n_rows)
    if frame.height != n_rows:
        raise FileFormatError(f"read {frame.height} rows from {n_rows} lines", file=source, hint="Check the layout")
    frame = frame.with_columns(
        pl.int_range(text.first_line, text.first_line + frame.height, dtype=pl.Int64).alias(LINE),
        pl.lit(0, pl.UInt32).alias(FILE),
    )
    if policy == "strict" and (blank or truncated):
        problem = Problem.BLANK_LINE if blank else Problem.TRUNCATED_LAST_LINE
        raise BadRowError(
            problem,
            what=problem.text,
            file=source,
            line=blank[0] if blank else truncated,
            hint="Fix the file, or import with policy='repair' to drop such lines (counted)",
        )
    if blank:
        frame = frame.filter(~pl.col(LINE).is_in(blank))
    drops = {Problem.BLANK_LINE: blank, Problem.TRUNCATED_LAST_LINE: [truncated] if truncated else []}
    counts = {p: len(lines) for p, lines in drops.items() if lines}
    examples = {p: tuple(RowRef(source, ln) for ln in lines[:MAX_EXAMPLES]) for p, lines in drops.items() if lines}
    return frame, CleaningReport((source,), text.n_lines, frame.height, counts, examples)


# ---------------------------------------------------------------------------------------------------------
# Recognising the layout


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fits(row: Sequence[str], layout: Layout) -> bool:
    """Whether a headerless first row has the layout's field count and value types (empty cells fit)."""
    if len(row) != len(layout):
        return False
    tests: dict[pl.DataType, Callable[[str], bool]] = {
        pl.Int64(): _is_int,
        pl.Float64(): _is_float,
        pl.Boolean(): _is_bool,
    }
    return all(v == "" or tests.get(dt, _is_any)(v) for v, dt in zip(row, layout.values(), strict=True))


def _is_bool(text: str) -> bool:
    return text.lower() in ("true", "false")


def _is_any(text: str) -> bool:
    return True


def _kind_from_name(info: NameInfo, source: str) -> FileKind | None:
    what = info.what
    if what is None:
        return None
    if what.lower() in ("bookticker", "fundingrate"):
        reader = "read_book_ticker" if what.lower() == "bookticker" else "read_funding"
        raise FileFormatError(
            f"the file name says {what}, which is not bars or trades", file=source, hint=f"Read it with {reader}()"
        )
    if re.fullmatch(r"\d+[smhdwM]", what):
        return FileKind.KLINES
    if what == "trades" and info.recorded:
        return FileKind.RECORDED_TRADES
    if what in _WHAT_KIND:
        return _WHAT_KIND[what]
    raise FileFormatError(
        f"the file name says {what!r}, not klines, trades or aggTrades", file=source, hint="Pass kind= explicitly"
    )


def _layout_names(want: FileKind | None) -> str:
    return "; ".join(",".join(layout) for k, layout in _LAYOUTS if want is None or k == want)


def _choose_layout(text: _Text, kind: FileKind | None, info: NameInfo, source: str) -> tuple[FileKind, Layout]:
    named = _kind_from_name(info, source)
    if kind is not None and named is not None and kind != named:
        raise FileFormatError(
            f"the file name says {named} but kind={kind.value!r} was given",
            file=source,
            hint="Pass the kind the file really holds, or rename the file",
        )
    want = kind or named
    said = f"kind={kind.value!r} was given" if kind else f"the file name says {named}"
    if text.header is not None:
        names = tuple(KLINE_HEADER_ALIASES.get(h, h) for h in text.header)
        if names[:1] == ("agg_trade_id",):  # spot aggTrades headers say qty/time, USDⓈ-M quantity/transact_time
            names = tuple(_AGG_HEADER_ALIASES.get(h, h) for h in names)
        matches = [(k, layout) for k, layout in _LAYOUTS if tuple(layout) == names]
        if not matches:
            raise FileFormatError(
                f"header {_show(text.header)} is not a known layout (wrong, missing or extra columns)",
                file=source,
                line=1,
                hint=f"Expected one of: {_layout_names(want)}",
            )
        found, layout = matches[0]
        if want is not None and found != want:
            raise FileFormatError(
                f"the header is a {found} layout but {said}", file=source, line=1, hint="Check the file and kind="
            )
        return found, layout
    fitting = [
        (k, layout)
        for k, layout in _LAYOUTS
        if k is not FileKind.RECORDED_TRADES and (want is None or k == want) and _fits(text.first_row, layout)
    ]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise FileFormatError(
            f"the first line {_show(text.first_row)} fits no headerless {want or 'known'} layout",
            file=source,
            line=1,
            hint=f"Expected one of: {_layout_names(want)}; or pass kind=",
        )
    raise FileFormatError(
        f"the first line fits several layouts ({', '.join(k for k, _ in fitting)})",
        file=source,
        line=1,
        hint="Pass kind= explicitly",
    )


def _show(values: Sequence[str], limit: int = 120) -> str:
    """Show header or row cells in a message: at most ``limit`` characters; a binary file says so."""
    text = repr(list(values))
    printable = sum(ch.isprintable() and ch != "\ufffd" for ch in "".join(values))
    if values and printable < 0.9 * max(1, len("".join(values))):
        return f"of {len(''.join(values)):,} unreadable characters (a binary or compressed file, not text CSV?)"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _resolve_symbol(given: str | None, named: str | None, source: str) -> str:
    if given is not None:
        symbol = given.replace("/", "").upper()
        if named is not None and named != symbol:
            raise MixedSymbolsError(
                f"the file name says {named} but symbol={given!r} was given",
                file=source,
                hint="Pass the symbol the file really holds, or rename the file",
            )
        return symbol
    if named is None:
        raise FileFormatError(
            "cannot tell the symbol from the file name", file=source, hint="Pass symbol= (e.g. 'ETHUSDT')"
        )
    return named


# ---------------------------------------------------------------------------------------------------------
# Entry points


def _options(
    kind: FileKind | str | None, timeframe: Timeframe | str | None, policy: str
) -> tuple[FileKind | None, Timeframe | None, Policy]:
    if policy not in ("repair", "strict"):
        raise ValueError(f"policy must be 'repair' or 'strict', got {policy!r}")
    try:
        fk = FileKind(kind) if kind is not None else None
    except ValueError:
        raise ValueError(f"unknown kind {kind!r}; use one of: {', '.join(FileKind)}") from None
    tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
    return fk, tf, "repair" if policy == "repair" else "strict"


def _import_one(
    path: Path, kind: FileKind | None, symbol: str | None, timeframe: Timeframe | None, policy: Policy
) -> ImportResult:
    """Import one file; the frame keeps ``_line``/``_file`` for a later cross-file pass."""
    data, source, member = read_source(path)
    info = parse_file_name(path.name)
    if info.symbol is None and member is not None:
        info = parse_file_name(Path(member).name)
    text = _split_header(data, source)
    file_kind, layout = _choose_layout(text, kind, info, source)
    sym = _resolve_symbol(symbol, info.symbol, source)
    raw, pre = _parse(text, layout, source, policy)
    tf: Timeframe | None = None
    if file_kind is FileKind.KLINES:
        named = None
        if info.what is not None:
            try:
                named = Timeframe.parse(info.what)
            except ValueError:
                raise TimeframeError(
                    f"the file name says {info.what}, which rltrade does not handle",
                    file=source,
                    hint="Use 1s, 1m, 1h or 1d klines; coarser bars are resampled from them",
                ) from None
        bars, tf = bars_from_klines(raw, source=source, timeframe=timeframe, named=named)
        cleaned = clean_bars(bars, policy=policy, timeframe=tf, sources=(source,))
    else:
        if timeframe is not None:
            raise FileFormatError(
                f"this is a {file_kind.value} file, which has no timeframe, but timeframe={timeframe.value!r} "
                "was given",
                file=source,
                hint="Drop timeframe= for a trades file; bars are resampled from the stored trades",
            )
        cleaned = clean_trades(trades_from_raw(raw, source=source), policy=policy, sources=(source,))
    return ImportResult(cleaned.frame, file_kind, sym, tf, pre.then(cleaned.report))


def _finish(result: ImportResult) -> ImportResult:
    if result.frame.is_empty():
        raise FileFormatError(
            f"no valid rows left ({result.report.summary()})",
            file=", ".join(result.report.sources),
            hint="Check the file; every row was dropped",
        )
    frame = result.frame.drop(LINE, FILE)
    return ImportResult(frame, result.kind, result.symbol, result.timeframe, result.report)


def import_file(
    path: str | Path,
    *,
    kind: FileKind | str | None = None,
    symbol: str | None = None,
    timeframe: Timeframe | str | None = None,
    policy: Policy = "repair",
) -> ImportResult:
    """Import one klines / trades / aggTrades / recorded-trades file; see the module docstring.

    ``policy="repair"`` drops or reorders bad rows and counts them in ``result.report``; ``"strict"``
    refuses them. Either way, problems no repair can fix raise a :class:`DataImportError` subclass.
    """
    fk, tf, pol = _options(kind, timeframe, policy)
    return _finish(_import_one(Path(path), fk, symbol, tf, pol))


def import_files(
    paths: Sequence[str | Path],
    *,
    kind: FileKind | str | None = None,
    symbol: str | None = None,
    timeframe: Timeframe | str | None = None,
    policy: Policy = "repair",
) -> ImportResult:
    """Import several files of one symbol, kind and timeframe (e.g. daily dumps) as one frame.

    Each file is imported as by :func:`import_file`; then duplicates and order are checked across files
    (overlapping files give exact duplicates, counted; disagreeing overlaps are an error).
    """
    if not paths:
        raise ValueError("import_files needs at least one path")
    fk, tf, pol = _options(kind, timeframe, policy)
    parts = [_import_one(Path(p), fk, symbol, tf, pol) for p in paths]
    sources = tuple(r.report.sources[0] for r in parts)
    for attr, err in (("symbol", MixedSymbolsError), ("kind", FileFormatError), ("timeframe", TimeframeError)):
        values = {getattr(r, attr) for r in parts}
        if len(values) > 1:
            listing = ", ".join(f"{s} ({getattr(r, attr)})" for s, r in zip(sources, parts, strict=True))
            raise err(f"files disagree on {attr}: {listing}", file=sources[0], hint=f"Import each {attr} separately")
    first = parts[0]
    combined = pl.concat([r.frame.with_columns(pl.lit(i, pl.UInt32).alias(FILE)) for i, r in enumerate(parts)])
    if first.kind is FileKind.KLINES:
        cross = clean_bars(combined, policy=pol, timeframe=first.timeframe, sources=sources)
    else:
        cross = clean_trades(combined, policy=pol, sources=sources)
    report = CleaningReport.merged([r.report for r in parts]).then(cross.report)
    return _finish(ImportResult(cross.frame, first.kind, first.symbol, first.timeframe, report))


# ---------------------------------------------------------------------------------------------------------
# Book ticker and funding (strict readers: any bad row is an error)


def _read_table(path: Path, layouts: Sequence[Layout], what: str) -> tuple[pl.DataFrame, Layout, str]:
    data, source, _ = read_source(path)
    text = _split_header(data, source)
    matches = [layout for layout in layouts if text.header is not None and tuple(layout) == text.header]
    if not matches:
        expected = "; ".join(",".join(layout) for layout in layouts)
        raise FileFormatError(
            f"not a {what} file (header {_show(text.header) if text.header else 'missing'})",
            file=source,
            line=1,
            hint=f"Expected a header row, one of: {expected}",
        )
    frame, _ = _parse(text, matches[0], source, "strict")
    return frame, matches[0], source


def _refuse(frame: pl.DataFrame, checks: Sequence[tuple[str, str, pl.Expr]], source: str) -> None:
    """Raise for the first row any check flags (``(column, what, bad-expr)``); checks run vectorised."""
    flags = frame.select([expr.fill_null(False).alias(str(i)) for i, (_, _, expr) in enumerate(checks)])
    for i, (column, what, _) in enumerate(checks):
        bad = flags[str(i)]
        if bad.any():
            row = int(bad.arg_true()[0])
            raise DataImportError(
                f"{what} ({int(bad.sum())} row(s))",
                file=source,
                line=int(frame[LINE][row]),
                column=column,
                hint="Fix or re-download the file",
            )


def _null_checks(frame: pl.DataFrame, columns: Sequence[str]) -> list[tuple[str, str, pl.Expr]]:
    return [(c, "empty cell", pl.col(c).is_null()) for c in columns]


def read_book_ticker(path: str | Path) -> pl.DataFrame:
    """Best bid/offer updates: ``ts_us, update_id, bid_price, bid_qty, ask_price, ask_qty``, in file order.

    Recorded files (``local_ts_ns, update_id, bid_price, ...``) carry only the recorder's clock, so
    ``ts_us`` is ``local_ts_ns // 1000`` (about 1.2 s behind the exchange); Binance USDⓈ-M dumps
    (``update_id, best_bid_price, ..., transaction_time, event_time``) give the exchange's
    ``transaction_time``. Refused (error naming the line): empty cells, non-finite or non-positive prices,
    negative sizes, a crossed book (ask < bid), time going backwards.
    """
    raw, layout, source = _read_table(Path(path), [_BOOK_RECORDED, _BOOK_DUMP], "book-ticker")
    if layout is _BOOK_RECORDED:
        unit = detect_time_unit(raw["local_ts_ns"], raw[LINE], source=source, column="local_ts_ns", allowed=("ns",))
        book = raw.select(to_us("local_ts_ns", unit).alias("ts_us"), *list(_BOOK_RECORDED)[1:], LINE)
    else:
        unit = detect_time_unit(raw["transaction_time"], raw[LINE], source=source, column="transaction_time")
        book = raw.select(
            to_us("transaction_time", unit).alias("ts_us"),
            "update_id",
            *(pl.col(f"best_{c}").alias(c) for c in ("bid_price", "bid_qty", "ask_price", "ask_qty")),
            LINE,
        )
    prices, sizes = ("bid_price", "ask_price"), ("bid_qty", "ask_qty")
    _refuse(
        book,
        [
            *_null_checks(book, [c for c in book.columns if c != LINE]),
            *((c, "price is NaN or infinite", ~pl.col(c).is_finite()) for c in (*prices, *sizes)),
            *((c, "price is zero or negative", pl.col(c) <= 0) for c in prices),
            *((c, "size is negative", pl.col(c) < 0) for c in sizes),
            ("ask_price", "crossed book: ask below bid", pl.col("ask_price") < pl.col("bid_price")),
            ("ts_us", "time goes backwards", pl.col("ts_us").diff() < 0),
        ],
        source,
    )
    return book.drop(LINE)


def read_funding(path: str | Path) -> pl.DataFrame:
    """Funding rates: ``ts_us`` (funding time, µs), ``funding_rate`` (fraction per interval), time-sorted.

    Reads the recorded layout (``open_time, funding_rate``) and Binance's dumps (``calc_time,
    funding_interval_hours, last_funding_rate``). Refused: empty cells, non-finite rates, times not
    strictly increasing.
    """
    raw, layout, source = _read_table(Path(path), [_FUNDING_RECORDED, _FUNDING_DUMP], "funding-rate")
    time_col, rate_col = (
        ("open_time", "funding_rate") if layout is _FUNDING_RECORDED else ("calc_time", "last_funding_rate")
    )
    unit = detect_time_unit(raw[time_col], raw[LINE], source=source, column=time_col)
    funding = raw.select(to_us(time_col, unit).alias("ts_us"), pl.col(rate_col).alias("funding_rate"), LINE)
    _refuse(
        funding,
        [
            *_null_checks(funding, ["ts_us", "funding_rate"]),
            ("funding_rate", "rate is NaN or infinite", ~pl.col("funding_rate").is_finite()),
            ("ts_us", "time does not increase", pl.col("ts_us").diff() <= 0),
        ],
        source,
    )
    return funding.drop(LINE)


def median_half_spread_bps(book: pl.DataFrame) -> float:
    """Median half-spread in basis points of the mid, ``(ask - bid) / (ask + bid) * 1e4``, over updates.

    Each book update weighs the same (not time-weighted: busy moments, which is when a taker trades,
    count more). ``book`` is a :func:`read_book_ticker` frame.
    """
    if book.is_empty():
        raise ValueError("median_half_spread_bps: the book-ticker frame is empty")
    spread = book.select((pl.col("ask_price") - pl.col("bid_price")) / (pl.col("ask_price") + pl.col("bid_price")))
    return float(spread.to_series().median()) * 1e4  # type: ignore[arg-type]
