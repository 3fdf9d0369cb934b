"""CNN model files: weights with their config, fit record and version, written atomically.

A file holds one timeframe's fitted CNN (:class:`~rltrade.models.train.TrainedCnn`)::

    format          "rltrade.models.cnn"
    version         FORMAT_VERSION (a reader refuses newer files)
    rltrade         the package version that wrote it
    config          the CnnConfig (JSON-safe dict)
    shape           the module's parameter shapes (CnnShape)
    fit             FitInfo: timeframe, train / validation ranges, fit_end_us, flat band, class
                    frequencies, epochs, seed, ...
    extra           caller's plain values (e.g. the walk-forward fold id)
    state_dict      the weights and the fitted input scale

Writing goes to a temporary file in the target folder, is fsync'ed, then ``os.replace``d over the target:
a crash leaves the old file or the new one, never a torn one. Reading uses
``torch.load(weights_only=True)``: only tensors and plain containers are unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import torch
from pydantic import ValidationError

from rltrade import __version__
from rltrade.config import CnnConfig
from rltrade.data.atomic import atomic_write
from rltrade.models.cnn import CnnShape, TimeframeCnn
from rltrade.models.train import FitInfo, TrainedCnn

FORMAT: Final = "rltrade.models.cnn"
FORMAT_VERSION: Final = 1


class ModelFileError(ValueError):
    """A CNN model file is missing, unreadable, of another format or of a newer version."""


def save_cnn(trained: TrainedCnn, path: Path) -> None:
    """Write ``trained`` to ``path`` atomically (creating its folder)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "rltrade": __version__,
        "config": trained.config.model_dump(mode="json"),
        "shape": trained.model.shape.to_dict(),
        "fit": trained.info.to_dict(),
        "extra": dict(trained.extra),
        "state_dict": {k: v.detach().cpu().clone() for k, v in trained.model.state_dict().items()},
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))


def load_cnn(path: Path) -> TrainedCnn:
    """Read a model file written by :func:`save_cnn` (``weights_only``), in eval mode."""
    if not path.is_file():
        raise ModelFileError(f"no CNN model file at {path}; train one with `rltrade cnn train`")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable CNN model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an rltrade CNN model file (format {raw.get('format')!r})")
    if int(raw["version"]) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file version {raw['version']} is newer than this rltrade reads ({FORMAT_VERSION}); "
            f"it was written by rltrade {raw.get('rltrade')}, upgrade to read it"
        )
    try:
        cfg = CnnConfig.model_validate(raw["config"])
    except ValidationError as exc:
        raise ModelFileError(f"{path}: the stored CNN config does not validate: {exc}") from None
    # Built on the meta device and given the stored tensors: no initialisation, no draw from the global RNG.
    with torch.device("meta"):
        model = TimeframeCnn(CnnShape.from_dict(raw["shape"]))
    try:
        model.load_state_dict(raw["state_dict"], assign=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit the stored shape: {exc}") from None
    model.eval()
    return TrainedCnn(model, cfg, FitInfo.from_dict(raw["fit"]), dict(raw.get("extra") or {}))
