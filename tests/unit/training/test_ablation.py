"""Ablation variants: each switch removes exactly its block; absent or unremovable blocks are reported, not skipped."""

from __future__ import annotations

import pytest

from rltrade.features.layout import build_layout
from rltrade.training.ablation import BLOCKS, block_names, block_status, summarise, variant_config
from rltrade.training.walkforward import WalkForwardError
from tests.support.tiny_config import tiny


@pytest.mark.parametrize("block", BLOCKS)
def test_each_switch_removes_its_blocks_and_nothing_else(block: str) -> None:
    cfg = tiny()
    full = build_layout(cfg.features.layout)
    removed = block_names(full, block)
    assert removed, f"the demo layout should hold {block}"
    ablated = build_layout(variant_config(cfg, block).features.layout)
    names = {b.name for b in ablated.blocks if b.kind != "flags"}
    assert names == {b.name for b in full.blocks if b.kind != "flags"} - set(removed)


def test_blocks_map_to_state_block_names() -> None:
    full = build_layout(tiny().features.layout)
    assert block_names(full, "ticks") == ["eth_ticks"]
    assert block_names(full, "btc") == ["btc_1s", "btc_ret_1s", "btc_ret_1m"]  # the demo preset has returns
    assert block_names(full, "returns") == ["eth_ret_1s", "btc_ret_1s", "eth_ret_1m", "btc_ret_1m"]
    assert block_names(full, "cnn") == ["cnn_hidden", "cnn_predictions"]
    no_btc = build_layout(variant_config(tiny(), "btc").features.layout)
    assert block_names(no_btc, "btc") == [] and block_names(no_btc, "returns") == ["eth_ret_1s", "eth_ret_1m"]


def test_absent_and_unremovable_blocks_are_named() -> None:
    no_ticks = tiny(features={"layout": {"ticks": False}})
    assert block_status(no_ticks, "ticks") == ("not in layout", [])
    assert block_status(no_ticks, "pivots") == ("ok", ["pivots"])
    assert block_status(no_ticks, "cnn")[0] == "masked (cnn.enabled: false)"  # tiny() has no CNN stage
    assert block_status(tiny(cnn={"enabled": True}), "cnn") == ("ok", ["cnn_hidden", "cnn_predictions"])
    basic = tiny(features={"layout": {"name": "basic"}})
    # the basic layout ignores the switches: its BTC returns and its regime block stay
    assert block_status(basic, "regime") == ("not removable", ["regime"])
    assert block_status(basic, "btc") == ("not removable", ["btc_ret_1s", "btc_ret_1m"])
    assert block_status(basic, "pivots") == ("not in layout", [])


def test_unknown_block_is_refused() -> None:
    with pytest.raises(WalkForwardError, match="unknown ablation block 'volume'"):
        variant_config(tiny(), "volume")


def test_summary_pairs_seeds_and_keeps_statuses() -> None:
    rows = [
        {
            "removed": "none",
            "seed": 0,
            "status": "ok",
            "test_return": 0.02,
            "sharpe": 1.0,
            "delta_vs_all": 0.0,
            "direction_accuracy": 0.5,
        },
        {
            "removed": "none",
            "seed": 1,
            "status": "ok",
            "test_return": 0.04,
            "sharpe": 2.0,
            "delta_vs_all": 0.0,
            "direction_accuracy": 0.7,
        },
        {
            "removed": "pivots",
            "seed": 0,
            "status": "ok",
            "test_return": 0.01,
            "sharpe": 0.5,
            "delta_vs_all": -0.01,
            "direction_accuracy": 0.5,
        },
        {"removed": "pivots", "seed": 1, "status": "failed", "test_return": None, "sharpe": None, "delta_vs_all": None},
        {
            "removed": "ticks",
            "seed": None,
            "status": "not in layout",
            "test_return": None,
            "sharpe": None,
            "delta_vs_all": None,
        },
    ]
    summary = {s["removed"]: s for s in summarise(rows)}
    assert summary["none"]["test_return"]["mean"] == pytest.approx(0.03)
    assert summary["none"]["mean_direction_accuracy"] == pytest.approx(0.6)
    assert summary["pivots"]["seeds"] == 1 and summary["pivots"]["failed"] == 1
    assert summary["pivots"]["delta_vs_all"]["mean"] == pytest.approx(-0.01)
    assert summary["ticks"]["status"] == "not in layout" and summary["ticks"]["test_return"]["n"] == 0
