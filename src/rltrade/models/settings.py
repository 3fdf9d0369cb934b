"""Configuration of the per-timeframe CNNs: inputs, labels, architecture and training (SPEC §2.3).

``CnnConfig`` is a frozen pydantic model in the style of :mod:`rltrade.config` (one docstring per field);
it lives here until it joins ``rltrade.config.Config`` as the ``cnn`` section (it imports nothing but
``rltrade.types``, so it can move as is).

Label defaults: the flat band is the 0.2 % round trip (taker fee 0.1 % each way), and each timeframe's
horizon is long enough that a move beyond it is common. On the real ETH/USDT data in
``shared/data/real`` the class frequencies (down / flat / up) are: 1m with 60 bars 0.33 / 0.34 / 0.33
(Aug 2024); 1h with 4 bars 0.40 / 0.18 / 0.42 (2018-2026); 1d with 1 bar 0.45 / 0.06 / 0.49; for 1s,
900 bars (15 min) ≈ the 1m month's 15-minute moves, 0.22 / 0.57 / 0.21 (the synthetic default market's
1 s day: 0.35 / 0.45 / 0.20).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rltrade.types import Timeframe

DEFAULT_HORIZONS: dict[Timeframe, int] = {Timeframe.S1: 900, Timeframe.M1: 60, Timeframe.H1: 4, Timeframe.D1: 1}
"""Label horizon in bars per timeframe (see the module docstring for the class frequencies they give)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class CnnConfig(_Frozen):
    """The per-timeframe CNNs, their labels and their training."""

    timeframes: tuple[Timeframe, ...] = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)
    """Timeframes that get a CNN (each its own model over its own bars)."""
    window: Annotated[int, Field(ge=8, le=2000)] = 300
    """Bars per input window (the state's bar window); at most the layout's window for live use."""
    use_reference: bool = True
    """Stack the reference symbol's (BTC) 8 channels beside the traded symbol's: 16 input channels."""
    conv_channels: tuple[int, ...] = (32, 32, 64)
    """Output channels of the 1D convolutions; every one after the first halves the time axis (stride 2)."""
    kernel_size: Annotated[int, Field(ge=1, le=31)] = 5
    """Width of every convolution kernel, in bars."""
    hidden: Annotated[int, Field(ge=1, le=4096)] = 128
    """Units of the named last hidden layer (the state's cnn_hidden block holds 128 per timeframe)."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Dropout before the hidden layer (training only)."""
    horizons: dict[Timeframe, int] = Field(default_factory=lambda: dict(DEFAULT_HORIZONS))
    """Label horizon in bars per timeframe: the class is the log return from the window's last close to the
    close ``horizon`` bars later."""
    flat_band: Annotated[float, Field(ge=0.0, le=0.5)] = 0.002
    """A forward log return inside ±flat_band is "flat" (default: the 0.2 % round trip)."""
    flat_quantile: Annotated[float | None, Field(gt=0.0, lt=1.0)] = None
    """If set, the band is instead fitted on each training range: this quantile of |forward return|
    (1/3 gives about equal classes). The fitted band is saved with the model."""
    pivot_n: Annotated[int, Field(ge=1, le=10)] = 2
    """Level-0 pivot neighbours for the next-pivot target (as the features' Williams pivots)."""
    pivot_loss_weight: Annotated[float, Field(ge=0.0)] = 0.5
    """Weight of the next-pivot regression (Huber) loss beside the class cross-entropy."""
    distance_clip: Annotated[float, Field(gt=0.0)] = 10.0
    """The next-pivot distance target (in ATRs) is clipped to ±distance_clip."""
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256
    """Windows per optimisation step."""
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    """Adam learning rate."""
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4
    """AdamW weight decay."""
    max_epochs: Annotated[int, Field(ge=1, le=1000)] = 20
    """Upper bound on passes over the (subsampled) training windows."""
    patience: Annotated[int, Field(ge=1, le=100)] = 3
    """Stop after this many epochs without a lower validation loss; the best epoch's weights are kept."""
    max_train_windows: Annotated[int, Field(ge=1)] = 50_000
    """Training windows per epoch at most: a seeded random subset when there are more (1 s bars)."""
    max_val_windows: Annotated[int, Field(ge=1)] = 20_000
    """Validation windows at most (a fixed seeded subset)."""
    validation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    """Walk-forward fits: the last part of the data before the cutoff used for early stopping."""
    inference_batch: Annotated[int, Field(ge=1, le=65536)] = 1024
    """Windows per forward pass when computing outputs offline."""

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: dict[Timeframe, int]) -> dict[Timeframe, int]:
        bad = {tf.value: h for tf, h in value.items() if h < 1}
        if bad:
            raise ValueError(f"horizons must be >= 1 bar, got {bad}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> CnnConfig:
        missing = [tf.value for tf in self.timeframes if tf not in self.horizons]
        if missing:
            raise ValueError(f"horizons has no entry for {missing}; give one per timeframe in `timeframes`")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must be a non-empty list of positive widths, got {self.conv_channels}")
        return self

    def horizon(self, tf: Timeframe) -> int:
        return self.horizons[tf]
