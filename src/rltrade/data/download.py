"""Concurrent, retried, checksum-verified downloads of Binance archives into a local cache folder.

:func:`fetch_archives` downloads many :class:`~rltrade.data.archives.Archive` zips with at most
``concurrency`` requests in flight (aiohttp). Each archive and its ``.CHECKSUM`` are fetched; the zip is
streamed to a temporary file while its SHA-256 is computed, and only a zip whose hash matches its
checksum is renamed to its final name in the cache (so the cache never holds an unverified or torn zip
under a real name, and a second run re-uses it without the network).

Outcomes per archive (:class:`Fetched`):

- ``verified``: downloaded (or found in the cache) and its hash matches the checksum;
- ``missing``: the server answered 404 for the zip or its checksum (not published yet, or never);
- ``refused``: the hash did not match twice in a row (the zip is downloaded again once), or the checksum
  file is malformed or names another file. A refused archive is never imported. Binance has re-uploaded
  some files without updating their checksums: an archive named in ``accept_mismatch`` is then
  ``verified`` with a note instead (the user's explicit decision, per archive name).

Transient failures are retried with exponential backoff (``Retry``): 5xx, 408, 429, timeouts, dropped
connections and bodies shorter than their ``Content-Length``. Any other status fails at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import aiohttp

from rltrade.data.archives import Archive, ArchiveError, parse_checksum
from rltrade.data.atomic import atomic_write

Outcome = Literal["verified", "missing", "refused"]
_CHUNK = 1 << 20
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """Retries of transient failures: waits ``backoff_s * 2**attempt`` (capped), at most ``max_retries`` times."""

    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 60.0
    """Seconds a request may wait for its connection or for the next bytes before it is retried (a stall,
    not a total: a month of trades is hundreds of MB)."""
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    """Injectable so tests do not wait."""

    def delay_s(self, attempt: int) -> float:
        """Return the wait before retry ``attempt`` (from 0): ``backoff_s * 2**attempt``, at most ``max_backoff_s``."""
        return float(min(self.max_backoff_s, self.backoff_s * 2**attempt))


@dataclass(frozen=True)
class Fetched:
    """What became of one archive."""

    archive: Archive
    outcome: Outcome
    path: Path | None = None
    """The verified zip in the cache (``verified`` only)."""
    cached: bool = False
    """Found verified in the cache: no download."""
    note: str = ""
    retries: int = 0


class _Transient(Exception):
    """A failure worth retrying."""


class _NotFound(Exception):
    """HTTP 404."""


async def _retrying(what: str, retry: Retry, attempt_fn: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run ``attempt_fn`` until it succeeds; returns its result and the number of retries."""
    attempt = 0
    while True:
        try:
            return await attempt_fn(), attempt
        except (_Transient, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as err:
            if attempt >= retry.max_retries:
                raise ArchiveError(
                    f"{what}: failed after {attempt + 1} tries ({type(err).__name__}: {err}). The server is down "
                    "or limiting this IP: run again later (verified archives are kept and skipped)"
                ) from err
            await retry.sleep(retry.delay_s(attempt))
            attempt += 1


def _check_status(resp: aiohttp.ClientResponse, url: str) -> None:
    if resp.status == 404:
        raise _NotFound(url)
    if resp.status in _RETRY_STATUS:
        raise _Transient(f"HTTP {resp.status}")
    if resp.status != 200:
        raise ArchiveError(f"{url}: HTTP {resp.status} {resp.reason}; not retried: check --base-url")


async def _get_text(session: aiohttp.ClientSession, url: str, retry: Retry) -> tuple[str, int]:
    async def attempt() -> str:
        async with session.get(url) as resp:
            _check_status(resp, url)
            return await resp.text()

    return await _retrying(url, retry, attempt)


async def _get_file(session: aiohttp.ClientSession, url: str, target: Path, retry: Retry) -> tuple[Path, str, int]:
    """Stream ``url`` into a temporary file beside ``target``; returns it, its SHA-256 and the retries."""

    async def attempt() -> tuple[Path, str]:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh:
                async with session.get(url) as resp:
                    _check_status(resp, url)
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        digest.update(chunk)
                        fh.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), digest.hexdigest()

    (tmp_path, hexdigest), retries = await _retrying(url, retry, attempt)
    return tmp_path, hexdigest, retries


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _cached(archive: Archive, zip_path: Path) -> Path | None:
    """Return the cached zip when it and its checksum are present and agree (hashing is cheap beside downloading)."""
    sums = zip_path.with_name(zip_path.name + ".CHECKSUM")
    if not (zip_path.is_file() and sums.is_file()):
        return None
    try:
        expected = parse_checksum(sums.read_text(), name=archive.name, source=str(sums))
    except ArchiveError:
        return None
    return zip_path if _sha256_file(zip_path) == expected else None


def _write_checksum(zip_path: Path, line: bytes) -> None:
    atomic_write(zip_path.with_name(zip_path.name + ".CHECKSUM"), lambda fh: fh.write(line))


async def _fetch_one(
    session: aiohttp.ClientSession,
    base_url: str,
    archive: Archive,
    cache_dir: Path,
    retry: Retry,
    accept_mismatch: frozenset[str],
) -> Fetched:
    zip_path = cache_dir / archive.url_path
    if (hit := await asyncio.to_thread(_cached, archive, zip_path)) is not None:
        return Fetched(archive, "verified", hit, cached=True)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{archive.url_path}"
    retries = 0
    digests: list[tuple[str, str]] = []
    for _ in range(2):  # a mismatch is downloaded again once: it may be a torn transfer
        try:
            text, n = await _get_text(session, url + ".CHECKSUM", retry)
            retries += n
            expected = parse_checksum(text, name=archive.name, source=url + ".CHECKSUM")
            tmp, actual, n = await _get_file(session, url, zip_path, retry)
            retries += n
        except _NotFound:
            return Fetched(archive, "missing", note="404: not published (yet)", retries=retries)
        except ArchiveError as err:
            return Fetched(archive, "refused", note=str(err), retries=retries)
        if actual == expected or archive.name in accept_mismatch:
            note = "" if actual == expected else f"checksum mismatch accepted by the user (sha256 {actual})"
            # The zip is re-hashed against this file on every later use, so a crash cannot leave a trusted torn zip.
            os.replace(tmp, zip_path)
            _write_checksum(zip_path, f"{actual}  {archive.name}\n".encode())
            return Fetched(archive, "verified", zip_path, note=note, retries=retries)
        tmp.unlink(missing_ok=True)
        digests.append((expected, actual))
    shown = "; ".join(f"published {e[:16]}…, got {a[:16]}…" for e, a in digests)
    same = len({a for _, a in digests}) == 1
    why = (
        "the same bytes twice: the published checksum is probably stale (Binance re-uploaded the file)"
        if same
        else "different bytes each time: the transfer is unreliable"
    )
    return Fetched(
        archive,
        "refused",
        note=(
            f"{url}: SHA-256 does not match its .CHECKSUM ({shown}); {why}. Not imported. If you trust this file, "
            f"run again with --accept-checksum-mismatch {archive.name}"
        ),
        retries=retries,
    )


async def _fetch_all(
    archives: Sequence[Archive],
    *,
    base_url: str,
    cache_dir: Path,
    concurrency: int,
    retry: Retry,
    accept_mismatch: frozenset[str],
    on_done: Callable[[Fetched], object],
) -> list[Fetched]:
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=retry.timeout_s, sock_read=retry.timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False) as session:

        async def run(archive: Archive) -> Fetched:
            async with sem:
                done = await _fetch_one(session, base_url, archive, cache_dir, retry, accept_mismatch)
            on_done(done)
            return done

        return list(await asyncio.gather(*(run(a) for a in archives)))


def fetch_archives(
    archives: Sequence[Archive],
    *,
    base_url: str,
    cache_dir: Path,
    concurrency: int = 8,
    retry: Retry = Retry(),
    accept_mismatch: Sequence[str] = (),
    on_done: Callable[[Fetched], object] = lambda _: None,
) -> list[Fetched]:
    """Download and verify ``archives`` into ``cache_dir`` (same relative paths as on the server).

    Returns one :class:`Fetched` per archive, in the order given; ``on_done`` is called as each finishes.
    """
    if concurrency < 1:
        raise ArchiveError(f"concurrency must be at least 1, got {concurrency}")
    if not archives:
        return []
    return asyncio.run(
        _fetch_all(
            archives,
            base_url=base_url,
            cache_dir=Path(cache_dir),
            concurrency=concurrency,
            retry=retry,
            accept_mismatch=frozenset(accept_mismatch),
            on_done=on_done,
        )
    )
