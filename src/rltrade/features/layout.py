"""The state layout: named blocks, each with a shape and a slice of the flat float32 state vector.

The default (``full``) layout is SPEC §2.4's 15,588 market features::

    block            shape       size   what
    eth_ticks        300 × 10   3,000   most recent trades in the last 300 s (features.ticks)
    eth_1s..eth_1d   300 × 8    9,600   per-bar channels per timeframe (features.bar_channels)
    btc_1s           300 × 8    2,400   reference symbol, 1 s bars (all four timeframes as an option)
    cnn_hidden       4 × 128      512   CNN last hidden layer per timeframe (models.bridge)
    cnn_predictions  4 × 4         16   CNN outputs per timeframe
    pivots           5 × 10        50   Williams pivots per level (features.pivots)
    regime           10            10   market-regime features (features.regime)

followed by a small ``flags`` block (one availability flag per block, plus warm-up, stale feed and
CNN-model-present flags). The env appends the account block after the layout; the layout does not
know about it.

``basic`` is the ~100-feature baseline state of the original design (recent ETH and BTC returns,
volatility, volume, trend); ``demo`` keeps every block but with short windows, for fast runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from rich.table import Table

from rltrade.config import LayoutConfig
from rltrade.types import Timeframe

BlockKind = Literal["ticks", "bars", "flat", "flags"]

N_BAR_CHANNELS = 8
N_TICK_FEATURES = 10
N_PIVOT_LEVELS = 5
N_PIVOT_FEATURES = 10
N_REGIME_FEATURES = 10
CNN_HIDDEN = 128
CNN_OUTPUTS = 4
CNN_TIMEFRAMES: tuple[Timeframe, ...] = (Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1)

BASIC_RETURNS: tuple[tuple[str, Timeframe, int], ...] = (
    ("eth", Timeframe.S1, 30),
    ("btc", Timeframe.S1, 30),
    ("eth", Timeframe.M1, 15),
    ("btc", Timeframe.M1, 15),
)
"""The ``basic`` layout's return blocks: (symbol role, timeframe, number of most recent log returns)."""

EXTRA_FLAGS: tuple[str, ...] = ("warmup", "ticks_stale", "cnn_model_present")


class _BlockSpec(NamedTuple):
    """A block before it gets its slice of the state vector."""

    name: str
    shape: tuple[int, ...]
    kind: BlockKind
    description: str
    symbol: str | None = None
    """Symbol role (``eth`` / ``btc``) of a bar, tick or return block."""
    timeframe: Timeframe | None = None
    """Timeframe of a bar or return block."""


@dataclass(frozen=True)
class Block:
    """One named block of the state vector: ``state[start:stop].reshape(shape)``."""

    name: str
    shape: tuple[int, ...]
    kind: BlockKind
    start: int
    description: str
    symbol: str | None = None
    """``"eth"`` (traded) or ``"btc"`` (reference) for per-symbol blocks."""
    timeframe: Timeframe | None = None
    """The bars' timeframe for bar blocks, the returns' timeframe for basic return blocks."""

    @property
    def size(self) -> int:
        """The number of values in the block (the product of its shape)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def stop(self) -> int:
        """The exclusive end of the block in the flat state."""
        return self.start + self.size

    @property
    def slice(self) -> slice:
        """The block's columns in the flat state, as a slice."""
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class StateLayout:
    """An ordered set of blocks covering ``[0, size)`` of the flat state, flags last."""

    name: str
    blocks: tuple[Block, ...]
    tick_window_s: int
    base_timeframe: Timeframe
    """The finest bar timeframe in the layout: the natural decision clock."""

    @property
    def size(self) -> int:
        """The width of the flat state (the end of the last block)."""
        return self.blocks[-1].stop if self.blocks else 0

    @property
    def market_size(self) -> int:
        """Features excluding the flags block."""
        return sum(b.size for b in self.blocks if b.kind != "flags")

    def block(self, name: str) -> Block:
        """Return the block named ``name``; KeyError listing the blocks if there is none."""
        for b in self.blocks:
            if b.name == name:
                return b
        names = ", ".join(b.name for b in self.blocks)
        raise KeyError(f"layout {self.name!r} has no block {name!r}; blocks: {names}")

    def has(self, name: str) -> bool:
        """Return whether the layout has a block named ``name``."""
        return any(b.name == name for b in self.blocks)

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The names of the flags: ``has_<block>`` for every non-flag block, then the extra flags."""
        return tuple(f"has_{b.name}" for b in self.blocks if b.kind != "flags") + EXTRA_FLAGS

    def flag_index(self, flag: str) -> int:
        """Position of ``flag`` in the flat state vector."""
        return self.block("flags").start + self.flag_names.index(flag)

    def describe(self) -> list[dict[str, object]]:
        """One row per block: name, shape, size, slice, description (for tables and the run bundle)."""
        return [
            {
                "name": b.name,
                "shape": list(b.shape),
                "size": b.size,
                "start": b.start,
                "stop": b.stop,
                "kind": b.kind,
                "description": b.description,
            }
            for b in self.blocks
        ]

    def rich_table(self) -> Table:
        """Render the layout as a rich table: each block's shape, size, slice and description."""
        table = Table(title=f"state layout {self.name!r}: {self.size:,} features ({self.market_size:,} market)")
        for col in ("block", "shape", "size", "slice", "description"):
            table.add_column(col, justify="right" if col in ("size",) else "left")
        for b in self.blocks:
            shape = " × ".join(str(d) for d in b.shape)
            table.add_row(b.name, shape, f"{b.size:,}", f"{b.start}:{b.stop}", b.description)
        return table


@dataclass(frozen=True)
class _Preset:
    bar_window: int
    max_ticks: int
    timeframes: tuple[Timeframe, ...] = CNN_TIMEFRAMES
    reference_timeframes: tuple[Timeframe, ...] = (Timeframe.S1,)


_PRESETS: dict[str, _Preset] = {"full": _Preset(300, 300), "demo": _Preset(48, 64)}


def build_layout(cfg: LayoutConfig) -> StateLayout:
    """Build the layout described by ``cfg`` (a preset plus overrides)."""
    if cfg.name == "basic":
        return _basic_layout(cfg)
    preset = _PRESETS[cfg.name]
    window = cfg.bar_window or preset.bar_window
    max_ticks = cfg.max_ticks or preset.max_ticks
    tfs = cfg.timeframes if cfg.timeframes is not None else preset.timeframes
    ref_tfs = cfg.reference_timeframes if cfg.reference_timeframes is not None else preset.reference_timeframes
    specs: list[_BlockSpec] = []
    if cfg.ticks:
        specs.append(
            _BlockSpec(
                "eth_ticks",
                (max_ticks, N_TICK_FEATURES),
                "ticks",
                f"most recent ≤{max_ticks} ETH trades in the last {cfg.tick_window_s} s",
                "eth",
                None,
            )
        )
    for tf in tfs:
        specs.append(
            _BlockSpec(
                f"eth_{tf.value}",
                (window, N_BAR_CHANNELS),
                "bars",
                f"ETH {tf.value} bars: OHLC/c_ref, volume, RSI, MACD/ATR, ATR/close",
                "eth",
                tf,
            )
        )
    for tf in ref_tfs:
        specs.append(
            _BlockSpec(
                f"btc_{tf.value}",
                (window, N_BAR_CHANNELS),
                "bars",
                f"BTC {tf.value} bars (reference symbol)",
                "btc",
                tf,
            )
        )
    if cfg.returns:
        # No reference timeframes means no BTC block at all (the ablation's "btc"), returns included.
        specs += [spec for spec in _return_specs() if ref_tfs or spec.symbol != "btc"]
    if cfg.cnn:
        specs.append(
            _BlockSpec(
                "cnn_hidden",
                (len(CNN_TIMEFRAMES), CNN_HIDDEN),
                "flat",
                "last hidden layer of each timeframe's CNN (walk-forward)",
                None,
                None,
            )
        )
        specs.append(
            _BlockSpec(
                "cnn_predictions",
                (len(CNN_TIMEFRAMES), CNN_OUTPUTS),
                "flat",
                "P(down), P(flat), P(up), next-pivot distance per timeframe",
                None,
                None,
            )
        )
    if cfg.pivots:
        specs.append(
            _BlockSpec(
                "pivots",
                (N_PIVOT_LEVELS, N_PIVOT_FEATURES),
                "flat",
                "Williams pivots per level: last high/low, ages, trend, projection, provisional",
                None,
                None,
            )
        )
    if cfg.regime:
        specs.append(
            _BlockSpec(
                "regime",
                (N_REGIME_FEATURES,),
                "flat",
                "trend, volatility percentile, efficiency, ETH–BTC correlation and beta, ...",
                None,
                None,
            )
        )
    all_tfs = (*tfs, *ref_tfs)
    base = min(all_tfs, key=lambda t: t.us) if all_tfs else Timeframe.M1
    return _assemble(cfg.name, specs, cfg.tick_window_s, base)


def _return_specs() -> list[_BlockSpec]:
    return [
        _BlockSpec(f"{sym}_ret_{tf.value}", (n,), "flat", f"last {n} {sym.upper()} {tf.value} log returns", sym, tf)
        for sym, tf, n in BASIC_RETURNS
    ]


def _basic_layout(cfg: LayoutConfig) -> StateLayout:
    specs = _return_specs()
    specs.append(
        _BlockSpec(
            "regime",
            (N_REGIME_FEATURES,),
            "flat",
            "volatility, volume, trend and ETH–BTC co-movement (the regime features)",
            None,
            None,
        )
    )
    return _assemble("basic", specs, cfg.tick_window_s, Timeframe.S1)


def _assemble(
    name: str,
    specs: list[_BlockSpec],
    tick_window_s: int,
    base: Timeframe,
) -> StateLayout:
    blocks: list[Block] = []
    start = 0
    for spec in specs:
        block = Block(spec.name, spec.shape, spec.kind, start, spec.description, spec.symbol, spec.timeframe)
        blocks.append(block)
        start = block.stop
    n_flags = len(blocks) + len(EXTRA_FLAGS)
    blocks.append(
        Block(
            "flags",
            (n_flags,),
            "flags",
            start,
            "availability per block, warm-up, stale feed, CNN model present",
        )
    )
    return StateLayout(name, tuple(blocks), tick_window_s, base)
