"""Which exceptions are the user's to fix (exit 2) and which mean an inconsistent store or run (exit 3)."""

from __future__ import annotations

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
from rltrade.training.bundle import BundleError
from rltrade.types import TimeframeError


class UsageError(ValueError):
    """Bad usage that the user can fix."""


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
    ModelFileError,
    TimeframeError,
    FileNotFoundError,
)
INCONSISTENT: tuple[type[BaseException], ...] = (StoreError, BundleError, LiveStateError, CheckpointError)
