"""Named fee tiers, the --fee value, the tier's consistency checks and the costs caption."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rltrade.cli import main
from rltrade.config import FEE_TIERS, EnvConfig, costs_caption, fee_overrides


def test_taker_tiers_and_numbers() -> None:
    assert fee_overrides("binance-spot") == {"taker_fee": 0.001, "fee_tier": "binance-spot"}
    assert fee_overrides("Binance-Spot-BNB") == {"taker_fee": 0.00075, "fee_tier": "binance-spot-bnb"}
    assert fee_overrides("binance-usdm") == {"taker_fee": 0.0005, "fee_tier": "binance-usdm"}
    assert fee_overrides("binance-usdm-bnb") == {"taker_fee": 0.00045, "fee_tier": "binance-usdm-bnb"}
    assert fee_overrides("0.0004") == {"taker_fee": 0.0004, "fee_tier": None}
    assert fee_overrides("0.04%")["taker_fee"] == pytest.approx(0.0004)
    assert fee_overrides("0") == {"taker_fee": 0.0, "fee_tier": None}
    assert all(t.dated for t in FEE_TIERS.values())


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("binance-spot-maker", "maker tier.*no limit-order fill model"),
        ("binance-usdm-maker", "maker tier"),
        ("vip9", "neither a fee tier"),
        ("0.02", "between 0 and 1 %"),
        ("-0.001", "between 0 and 1 %"),
        ("nan", "between 0 and 1 %"),
    ],
)
def test_refusals(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fee_overrides(value)


def test_env_checks_the_tier(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"charges 0\.1000% but env\.taker_fee is 0\.0500%"):
        EnvConfig(fee_tier="binance-spot", taker_fee=0.0005)
    with pytest.raises(ValidationError, match=r"pay funding: set env\.funding_file"):
        EnvConfig(**fee_overrides("binance-usdm"))
    with pytest.raises(ValidationError, match="maker tier"):
        EnvConfig(fee_tier="binance-spot-maker")
    with pytest.raises(ValidationError, match="not a fee tier"):
        EnvConfig(fee_tier="0.001")
    usdm = EnvConfig(**fee_overrides("binance-usdm"), funding_file=tmp_path / "funding.csv")
    assert "taker fee 0.0500% (binance-usdm)" in costs_caption(usdm)
    assert "funding from funding.csv" in costs_caption(usdm)


def test_caption_states_every_cost() -> None:
    text = costs_caption(EnvConfig(taker_fee=0.0004, half_spread_bps=0.5, impact_bps=2.0, borrow_annual_rate=0.03))
    assert text.startswith("costs: taker fee 0.0400%, half spread 0.5 bps, impact 2 bps/unit, short borrow 3.0%/yr")
    assert text.endswith("taker fills 100 ms after each 1s decision")


@pytest.mark.parametrize("command", ["train", "walkforward"])
def test_cli_refuses_a_maker_tier_with_exit_2(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--preset", "demo", "--fee", "binance-spot-maker"]) == 2
    err = capsys.readouterr().err
    assert "maker tier" in err and "limit-order fill model" in err
