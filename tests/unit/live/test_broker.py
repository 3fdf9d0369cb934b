"""The paper broker: the backtest's fill rule, costs and equity, order contract, checkpoint round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from rltrade.config import EnvConfig
from rltrade.live.broker import BrokerError, PaperBroker, fill_after_us
from rltrade.types import Timeframe

S = 1_000_000
T0 = 1_700_000_000 * S
CFG = EnvConfig(step=Timeframe.S1, latency_ms=100.0, taker_fee=0.001, half_spread_bps=1.0, impact_bps=2.0,
                borrow_annual_rate=0.5)  # fmt: skip


def test_fill_rule_is_the_first_step_bar_at_or_after_decision_plus_latency() -> None:
    assert fill_after_us(T0, 100_000, S) == T0 + S
    assert fill_after_us(T0, 1_500_000, S) == T0 + 2 * S
    assert fill_after_us(T0, S, S) == T0 + S
    b = PaperBroker(CFG)
    b.submit(0, T0, 1, 100.0)
    assert b.on_trade(T0 + 500_000, 101.0) == []  # after the latency but inside the decision's own second
    (fill,) = b.on_trade(T0 + S + 250, 102.0)
    assert (fill.price, fill.fill_us, fill.trade_us, fill.position) == (102.0, T0 + S, T0 + S + 250, 1)
    assert b.position == 1 and b.n_filled == 1


def test_one_trade_after_a_silence_fills_every_pending_order() -> None:
    b = PaperBroker(CFG)
    for i, p in enumerate((1, 1, -1)):
        b.submit(i, T0 + i * S, p, 100.0)
    fills = b.on_trade(T0 + 5 * S, 99.0)
    assert [f.t_idx for f in fills] == [0, 1, 2] and {f.price for f in fills} == {99.0}
    assert b.position == -1


def test_equity_matches_a_hand_computation() -> None:
    b = PaperBroker(CFG, initial_equity=1000.0)
    prices = [100.0, 102.0, 101.0, 103.0]
    targets = [1, -1, 0]
    for i, p in enumerate(targets):
        b.submit(i, T0 + i * S, p, 100.0)
    for i, px in enumerate(prices[:3]):
        b.on_trade(T0 + (i + 1) * S + 10, px)  # fills decision i at px
    b.submit(3, T0 + 3 * S, 0, 100.0)
    b.on_trade(T0 + 4 * S + 10, prices[3])

    def cost(q: float) -> float:
        return q * (0.001 + (1.0 + 2.0 * q) * 1e-4)

    carry = 0.5 * S / (365.25 * 86_400 * S)
    e = 1000.0
    e *= (1 - cost(1)) * (102 / 100)  # long 100 → 102
    e *= (1 - cost(2)) * (101 / 102) ** -1 * (1 - carry)  # reversed short 102 → 101, pays carry
    e *= 1 - cost(1)  # flat 101 → 103
    assert b.initial_equity * math.exp(b.log_equity) == pytest.approx(e, rel=1e-12)
    res = b.result()
    assert res is not None and res.equity_T[-1] == pytest.approx(e, rel=1e-12)  # flat at the end: no liquidation
    assert b.fees_paid == pytest.approx(float(res.metrics["fees_paid"]), rel=1e-12)
    assert res.trades["side"].to_list() == ["long", "short"]


def test_orders_must_follow_the_clock() -> None:
    b = PaperBroker(CFG)
    with pytest.raises(BrokerError, match="first decision must be step 0"):
        b.submit(1, T0, 0, 1.0)
    b = PaperBroker(CFG)
    b.submit(0, T0, 0, 1.0)
    with pytest.raises(BrokerError, match="not the next clock step"):
        b.submit(2, T0 + 2 * S, 0, 1.0)
    with pytest.raises(BrokerError, match="not the next clock step"):
        b.submit(1, T0 + 2 * S, 0, 1.0)
    with pytest.raises(BrokerError, match="must be -1, 0 or \\+1"):
        b.submit(1, T0 + S, 2, 1.0)


def test_no_result_before_two_fills_and_unrealised_equity_follows_the_price() -> None:
    b = PaperBroker(CFG, initial_equity=100.0)
    assert b.result() is None and b.equity_at(5.0) == 100.0
    b.submit(0, T0, 1, 10.0)
    b.on_trade(T0 + S, 10.0)
    assert b.result() is None
    assert b.equity_at(11.0) == pytest.approx(b.equity_at() * 1.1, rel=1e-12)


def test_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    a = PaperBroker(CFG)
    for i in range(30):
        a.submit(i, T0 + i * S, int(rng.integers(-1, 2)), 100.0)
        a.on_trade(T0 + (i + 1) * S + 7, float(100 + rng.normal()))
    b = PaperBroker(CFG)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i in range(30, 40):
        for x in (a, b):
            x.submit(i, T0 + i * S, -1, 100.0)
            x.on_trade(T0 + (i + 1) * S + 7, 100.0 + i / 10)
    ra, rb = a.result(), b.result()
    assert ra is not None and rb is not None
    assert_frame_equal(ra.steps, rb.steps)
    assert a.log_equity == b.log_equity
