"""Feature coverage of a period against the gathered states themselves."""

from __future__ import annotations

import numpy as np
import pytest

from rltrade.config import EnvConfig
from rltrade.training.coverage import COVERAGE_FILE, feature_coverage, write_coverage
from tests.unit.env.market_cases import small_setup, trading_period


def test_coverage_matches_the_states_the_agent_sees(tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = small_setup()
    period = trading_period(setup, EnvConfig())
    table = feature_coverage(setup.builder, period, max_steps=300)
    layout = setup.layout
    assert table.height == layout.market_size and table["n_steps"][0] == 300
    steps = np.unique(np.linspace(0, period.n_steps - 1, 300).round().astype(np.int64))
    states = setup.builder.gather(period.clock.time_of(steps)).astype(np.float64)
    for name in ("eth_1m", "eth_ticks", "regime", "cnn_hidden"):
        block = layout.block(name)
        on = states[:, layout.flag_index(f"has_{name}")] > 0.5
        rows = table.filter(table["block"] == name)
        assert rows["feature"].to_list() == list(range(block.start, block.stop))
        np.testing.assert_allclose(rows["unmasked_share"], on.mean())
        x = states[on][:, block.slice]
        if on.any():
            np.testing.assert_allclose(rows["mean"], x.mean(axis=0), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(rows["std"], x.std(axis=0), rtol=1e-6, atol=1e-12)
    # No CNN in this market: the CNN blocks are masked throughout; a 72-minute span never closes a 1d bar.
    assert table.filter(table["block"] == "cnn_hidden")["unmasked_share"].max() == 0.0
    assert table.filter(table["block"] == "eth_1d")["std"].max() == pytest.approx(0.0, abs=0.0)
    assert table.filter(table["block"] == "eth_1m")["std"].min() >= 0.0
    path = write_coverage(table, tmp_path)
    assert path.name == COVERAGE_FILE and path.is_file()
