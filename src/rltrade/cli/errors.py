"""Which exceptions are the user's to fix (exit 2) and which mean an inconsistent store or run (exit 3)."""

from __future__ import annotations

import re
from pathlib import Path

from rltrade.agent.checkpoint import CheckpointError
from rltrade.config import ConfigError
from rltrade.data.cleaning import DataImportError
from rltrade.data.fetch import FetchError
from rltrade.data.resample import ResampleError
from rltrade.data.schema import SchemaError
from rltrade.data.splits import SplitError
from rltrade.data.store import StoreConflictError, StoreError
from rltrade.features.bar_channels import FeatureInputError
from rltrade.features.cnn_blocks import CnnOutputsError
from rltrade.live.state import LiveStateError
from rltrade.models.dataset import CnnDataError
from rltrade.models.io import ModelFileError
from rltrade.report.market import ReportDataError
from rltrade.training.bundle import BundleError
from rltrade.types import TimeframeError


class UsageError(ValueError):
    """Bad usage that the user can fix."""


_CLI_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"import with policy='repair'"), "import without --strict"),
    (re.compile(r"policy='repair'"), "no --strict"),
    (re.compile(r"Pass symbol= \(e\.g\. '(\w+)'\)"), r"Pass --symbol (e.g. --symbol \1)"),
    (re.compile(r"\bsymbol=(?='|\w)"), "--symbol "),
    (re.compile(r"\btimeframe=(?='|\w)"), "--timeframe "),
    (re.compile(r"Drop timeframe="), "Drop --timeframe"),
)
"""The library's keyword arguments in messages, and the command line's flags that set them."""


def cli_message(exc: BaseException) -> str:
    """Say ``exc`` in the command line's words: its flags instead of keyword arguments, a hint for a missing file."""
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        where = Path(str(exc.filename))
        return f"{where}: no such file or folder (looked in {where.resolve().parent}); check the path and its spelling"
    text = str(exc)
    if isinstance(exc, USER_ERRORS):
        for pattern, flag in _CLI_WORDS:
            text = pattern.sub(flag, text)
    return text


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigError,
    SchemaError,
    StoreConflictError,
    SplitError,
    DataImportError,
    FetchError,
    ResampleError,
    FeatureInputError,
    CnnOutputsError,
    CnnDataError,
    TimeframeError,
    FileNotFoundError,
)
INCONSISTENT: tuple[type[BaseException], ...] = (
    StoreError,
    BundleError,
    LiveStateError,
    CheckpointError,
    ModelFileError,
    ReportDataError,
)
"""A damaged or incomplete store or run folder: a tampered CNN file exits 3 like a tampered checkpoint."""
