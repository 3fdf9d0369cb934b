"""State layouts: the SPEC §2.4 sizes, contiguous slices, presets and overrides."""

from __future__ import annotations

import pytest

from rltrade.config import LayoutConfig
from rltrade.features.layout import build_layout
from rltrade.types import Timeframe


def test_full_layout_has_the_spec_sizes() -> None:
    layout = build_layout(LayoutConfig())
    sizes = {b.name: b.size for b in layout.blocks}
    assert sizes == {
        "eth_ticks": 3000,
        "eth_1s": 2400,
        "eth_1m": 2400,
        "eth_1h": 2400,
        "eth_1d": 2400,
        "btc_1s": 2400,
        "cnn_hidden": 512,
        "cnn_predictions": 16,
        "pivots": 50,
        "regime": 10,
        "flags": 13,
    }
    assert layout.market_size == 15_588
    assert layout.base_timeframe is Timeframe.S1


@pytest.mark.parametrize("name", ["full", "demo", "basic"])
def test_blocks_tile_the_vector(name: str) -> None:
    layout = build_layout(LayoutConfig(name=name))  # type: ignore[arg-type]
    pos = 0
    for block in layout.blocks:
        assert block.start == pos
        pos = block.stop
    assert pos == layout.size
    assert layout.blocks[-1].name == "flags"
    assert layout.block("flags").size == len(layout.flag_names)


def test_basic_layout_is_about_100_features() -> None:
    layout = build_layout(LayoutConfig(name="basic"))
    assert 90 <= layout.market_size <= 110


def test_return_blocks_join_any_layout_on_request() -> None:
    demo, basic = build_layout(LayoutConfig(name="demo")), build_layout(LayoutConfig(name="basic"))
    with_returns = build_layout(LayoutConfig(name="demo", returns=True))
    added = {b.name for b in with_returns.blocks} - {b.name for b in demo.blocks}
    assert added == {b.name for b in basic.blocks if "_ret_" in b.name}
    extra = sum(basic.block(n).size for n in added) + len(added)  # the blocks and their flags
    assert with_returns.size == demo.size + extra


def test_overrides_reference_timeframes_and_dropped_blocks() -> None:
    layout = build_layout(
        LayoutConfig(
            reference_timeframes=(Timeframe.S1, Timeframe.M1, Timeframe.H1, Timeframe.D1), ticks=False, cnn=False
        )
    )
    names = [b.name for b in layout.blocks]
    assert "eth_ticks" not in names and "cnn_hidden" not in names
    assert [n for n in names if n.startswith("btc_")] == ["btc_1s", "btc_1m", "btc_1h", "btc_1d"]
    minute = build_layout(
        LayoutConfig(timeframes=(Timeframe.M1, Timeframe.H1), reference_timeframes=(Timeframe.M1,), ticks=False)
    )
    assert minute.base_timeframe is Timeframe.M1
    assert layout.flag_index("warmup") == layout.block("flags").start + layout.flag_names.index("warmup")


def test_unknown_block_names_the_alternatives() -> None:
    with pytest.raises(KeyError, match="blocks: eth_ticks, eth_1s"):
        build_layout(LayoutConfig()).block("eth_5m")
