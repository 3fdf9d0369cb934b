"""Streaming import of large trade files: a month of trades (30M+ rows) in bounded memory.

:func:`iter_trade_chunks` reads a trades / aggTrades / recorded-trades file (plain, ``.gz`` or a Binance
``.zip``) as a byte stream, cuts it into chunks of about ``chunk_bytes`` at line ends, and yields each chunk
parsed and cleaned exactly as :func:`~rltrade.data.importers.import_file` would (same layouts, same checks,
same line numbers in messages), so memory stays at a few chunks whatever the file's size.

What cleaning sees per chunk: bad rows, duplicates and order *inside* the chunk. Across chunks, the store
does the rest when the chunks are appended: exact duplicates are counted as duplicates, a trade id stored
with other values is a conflict, and every partition is written sorted.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Final, Protocol

from rltrade.data.cleaning import FILE, LINE, CorruptFileError, FileFormatError, Policy, clean_trades
from rltrade.data.importers import (
    FileKind,
    ImportResult,
    _choose_layout,
    _fields,
    _parse,
    _resolve_symbol,
    _split_header,
    _Text,
    parse_file_name,
)
from rltrade.data.importers_trades import trades_from_raw


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


CHUNK_BYTES: Final = 64 << 20
"""Decompressed bytes per chunk (about 700k Binance trade lines)."""


def _open(path: Path, stack: ExitStack) -> tuple[_Readable, str, str | None]:
    """Open ``path``'s CSV as a stream: plain, gzip, or the one member of a zip."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if not magic:
        raise FileFormatError("file is empty (0 bytes)", file=str(path), hint="Re-download or regenerate it")
    if magic == b"\x1f\x8b":
        gz: _Readable = stack.enter_context(gzip.GzipFile(path, "rb"))
        return gz, str(path), None
    if magic == b"PK" or path.suffix.lower() == ".zip":
        try:
            zf = stack.enter_context(zipfile.ZipFile(path))
        except (zipfile.BadZipFile, OSError) as e:
            raise CorruptFileError(f"zip archive is damaged ({e})", file=str(path), hint="Re-download the file") from e
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise FileFormatError(
                f"zip holds {len(members)} files, expected one CSV",
                file=str(path),
                hint="Unpack it and import the CSV files one by one",
            )
        name = members[0].filename
        return stack.enter_context(zf.open(name)), f"{path}:{name}", name
    return stack.enter_context(path.open("rb")), str(path), None


def _read(stream: _Readable, n: int, source: str) -> bytes:
    try:
        return stream.read(n)
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
        raise CorruptFileError(
            f"compressed data is damaged or truncated ({e})", file=source, hint="Re-download the file"
        ) from e


def _pieces(stream: _Readable, chunk_bytes: int, source: str) -> Iterator[bytes]:
    """Consecutive pieces of the stream, each ending at a line end (the last one maybe not)."""
    carry = b""
    while True:
        block = _read(stream, chunk_bytes, source)
        if not block:
            if carry:
                yield carry
            return
        data = carry + block
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # a single line longer than a chunk: keep reading
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut]


def _text(data: bytes, line0: int) -> _Text:
    ends_newline = data.endswith(b"\n")
    nl = data.find(b"\n")
    first = _fields(data if nl < 0 else data[:nl])
    return _Text(data, None, data.count(b"\n") + (not ends_newline), ends_newline, first, line0)


def iter_trade_chunks(
    path: str | Path,
    *,
    kind: FileKind | None = None,
    symbol: str | None = None,
    policy: Policy = "repair",
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[ImportResult]:
    """Yield ``path``'s trades chunk by chunk, each parsed and cleaned (``TRADE_SCHEMA``, with its report).

    The first chunk decides layout and symbol as :func:`~rltrade.data.importers.import_file` does; a file
    that is not trades raises :class:`~rltrade.data.cleaning.FileFormatError` before anything is yielded.
    Chunks whose rows were all dropped are still yielded (an empty frame and the report counting them).
    """
    path = Path(path)
    with ExitStack() as stack:
        stream, source, member = _open(path, stack)
        info = parse_file_name(path.name)
        if info.symbol is None and member is not None:
            info = parse_file_name(Path(member).name)
        pieces = _pieces(stream, chunk_bytes, source)
        head = next(pieces, b"")
        text = _split_header(head, source)
        file_kind, layout = _choose_layout(text, kind, info, source)
        if file_kind is FileKind.KLINES:
            raise FileFormatError(
                "this is a klines file, not trades", file=source, hint="Import it with import_file / import_files"
            )
        sym = _resolve_symbol(symbol, info.symbol, source)
        line0 = 0
        while True:
            raw, pre = _parse(text, layout, source, policy)
            cleaned = clean_trades(trades_from_raw(raw, source=source), policy=policy, sources=(source,))
            frame = cleaned.frame.drop(LINE, FILE)
            yield ImportResult(frame, file_kind, sym, None, pre.then(cleaned.report))
            line0 = text.first_line - 1 + text.n_lines
            piece = next(pieces, None)
            if piece is None:
                return
            text = _text(piece, line0)


def sniff_kind(path: str | Path, *, kind: FileKind | None = None) -> FileKind:
    """Tell what ``path`` holds, from its name and first lines (reads at most 64 KiB of it)."""
    path = Path(path)
    with ExitStack() as stack:
        stream, source, member = _open(path, stack)
        head = _read(stream, 1 << 16, source)
    cut = head.rfind(b"\n") + 1
    head = head[:cut] if cut and len(head) == 1 << 16 else head
    info = parse_file_name(path.name)
    if info.symbol is None and member is not None:
        info = parse_file_name(Path(member).name)
    found, _ = _choose_layout(_split_header(head, source), kind, info, source)
    return found
