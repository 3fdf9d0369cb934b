"""Which exceptions are the user's to fix (exit 2) and which mean an inconsistent store or run (exit 3)."""

from __future__ import annotations

from rltrade.config import ConfigError
from rltrade.data.schema import SchemaError
from rltrade.data.splits import SplitError
from rltrade.data.store import StoreError


class UsageError(ValueError):
    """Bad usage that the user can fix."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigError,
    SchemaError,
    SplitError,
    FileNotFoundError,
)
INCONSISTENT: tuple[type[BaseException], ...] = (StoreError,)
