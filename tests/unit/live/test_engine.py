"""The live engine on a replay of stored trades: the batch builder's states, the backtest's actions and equity,
arrival order, duplicates, grace, stale handling and checkpoint/restore."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from polars.testing import assert_frame_equal

from rltrade.agent.learner import DQNLearner
from rltrade.config import Config
from rltrade.data.splits import TimeRange
from rltrade.env.prices import PeriodData, build_period
from rltrade.features.account import ACCOUNT_DIM
from rltrade.features.state_stream import FLOAT_TOLERANCE
from rltrade.live.broker import Fill
from rltrade.live.engine import Decision, EngineSettings, LiveEngine
from rltrade.live.events import StreamHealth, StreamStatus, TradeEvent
from rltrade.training.backtest import backtest_actions, backtest_policy
from rltrade.training.bundle import greedy_policy
from rltrade.training.pipeline import Prepared, block_specs, prepare
from tests.support.live_market import delay_role, tiny_live_config, trade_events

STEP = 1_000_000
N_STEPS = 240


@pytest.fixture(scope="module")
def cfg() -> Config:
    return tiny_live_config()


@pytest.fixture(scope="module")
def prep(cfg: Config) -> Prepared:
    return prepare(cfg)


@pytest.fixture(scope="module")
def t0(prep: Prepared) -> int:
    return int(prep.test_period.clock.start_us)


@pytest.fixture(scope="module")
def period(prep: Prepared, cfg: Config, t0: int) -> PeriodData:
    return build_period(prep.builder.features, TimeRange(t0, t0 + N_STEPS * STEP), cfg.env, cfg.reward)


@pytest.fixture(scope="module")
def events(prep: Prepared, t0: int) -> list[TradeEvent]:
    return trade_events(prep.frames, t0, t0 + (N_STEPS + 5) * STEP)


def scripted(actions_T: npt.NDArray[np.int64]) -> Callable[[npt.NDArray[np.float32]], npt.NDArray[np.int64]]:
    """A policy playing ``actions_T`` in order, whatever it sees."""
    it = iter(actions_T.tolist())
    return lambda obs: np.array([next(it)])


def make_engine(
    prep: Prepared, cfg: Config, t0: int, policy: Callable[..., npt.ArrayLike], **settings: object
) -> LiveEngine:
    s = EngineSettings(**{"grace_s": None, **settings})  # type: ignore[arg-type]
    return LiveEngine(prep.layout, cfg.features, cfg.env, prep.frames, t0, policy, stats=prep.stats, settings=s)


def run(engine: LiveEngine, events: list[object]) -> list[Decision]:
    out: list[Decision] = []
    for ev in events:
        out += engine.on_event(ev)  # type: ignore[arg-type]
    return out


def random_actions(n: int, seed: int = 0) -> npt.NDArray[np.int64]:
    return np.random.default_rng(seed).integers(0, 3, n)


def test_states_equal_the_batch_builders(prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]) -> None:
    decisions = run(make_engine(prep, cfg, t0, scripted(random_actions(N_STEPS + 10))), events)
    assert len(decisions) >= N_STEPS
    times = np.array([d.time_us for d in decisions])
    assert np.array_equal(times, t0 + STEP * np.arange(len(decisions)))
    live_BF = np.concatenate([d.obs[:, : prep.layout.size] for d in decisions])
    batch_BF = prep.builder.gather(times)
    flags = prep.layout.block("flags").slice
    assert np.array_equal(live_BF[:, flags], batch_BF[:, flags])
    assert np.abs(live_BF - batch_BF).max() <= FLOAT_TOLERANCE
    # The states move: a test over constant states would prove nothing.
    assert np.abs(np.diff(live_BF, axis=0)).max() > 0.1


def test_paper_broker_equals_backtest_actions(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent], period: PeriodData
) -> None:
    actions = random_actions(N_STEPS + 10, seed=3)
    engine = make_engine(prep, cfg, t0, scripted(actions))
    recorded: list[Fill] = []
    engine.on_fill.append(recorded.append)
    run(engine, events)
    n = period.n_steps
    live = engine.broker.result(n)
    ref = backtest_actions(period, actions[:n], cfg.env)
    assert live is not None and ref.trades.height > 20
    assert_frame_equal(live.steps, ref.steps)
    assert_frame_equal(live.trades, ref.trades)
    assert live.metrics == ref.metrics
    # The running equity at each fill, before that fill's trade, is the backtest's equity curve.
    fills = engine.broker.n_filled
    assert fills > n
    online = [f.equity for f in recorded]
    assert np.allclose(online[:n], ref.steps["equity"].to_numpy()[:n], rtol=1e-12, atol=0)


def test_greedy_learner_takes_the_backtests_actions_on_the_envs_observations(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    period = build_period(prep.builder.features, TimeRange(t0, t0 + 100 * STEP), cfg.env, cfg.reward)
    events = [e for e in events if e.time_us <= t0 + 103 * STEP]
    seen: list[npt.NDArray[np.float32]] = []
    # Most untrained nets pick one action everywhere, which would test little: take the first seed whose
    # greedy actions vary over the period (deterministic: the same seed every run).
    for seed in range(64):
        learner = DQNLearner(
            cfg.agent.model_copy(update={"seed": seed}), prep.layout.size, ACCOUNT_DIM, blocks=block_specs(prep.layout)
        )
        greedy = greedy_policy(learner)

        def recording(
            obs: npt.NDArray[np.float32], greedy: Callable[..., npt.NDArray[np.int64]] = greedy
        ) -> npt.NDArray[np.int64]:
            seen.append(obs.copy())
            return greedy(obs)

        seen.clear()
        ref = backtest_policy(prep.builder, period, recording, cfg.env)
        if ref.steps["position"][: period.n_steps].n_unique() > 1:
            break
    engine = make_engine(prep, cfg, t0, greedy)
    decisions = run(engine, events)
    n = period.n_steps
    ref_actions = ref.steps["position"].to_numpy()[:n] + 1
    assert len(set(ref_actions.tolist())) > 1, "an untrained net that always picks one action tests little"
    assert [d.action for d in decisions[:n]] == ref_actions.tolist()
    live_obs = np.concatenate([d.obs for d in decisions[:n]])
    assert np.abs(live_obs - np.concatenate(seen)).max() <= FLOAT_TOLERANCE
    live = engine.broker.result(n)
    assert live is not None
    assert_frame_equal(live.trades, ref.trades)


def test_arrival_order_across_roles_and_duplicates_do_not_change_decisions(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    actions = random_actions(N_STEPS + 10, seed=1)
    ref = run(make_engine(prep, cfg, t0, scripted(actions)), events[:1500])
    lagged = delay_role(events[:1500], "btc", 700_000)
    assert lagged != events[:1500]
    redelivered = lagged[:600] + lagged[300:]
    engine = make_engine(prep, cfg, t0, scripted(actions))
    got = run(engine, redelivered)
    n = min(len(ref), len(got))
    assert n > 50
    assert [(d.time_us, d.action) for d in got[:n]] == [(d.time_us, d.action) for d in ref[:n]]
    assert all(np.array_equal(a.obs, b.obs) for a, b in zip(got[:n], ref[:n], strict=True))
    assert engine.counters.known_dropped == 300
    assert engine.counters.late_dropped == 0


def test_trades_already_in_the_history_are_dropped_as_known(prep: Prepared, cfg: Config, t0: int) -> None:
    before = trade_events(prep.frames, t0 - 20 * STEP, t0)
    engine = make_engine(prep, cfg, t0, scripted(random_actions(10)))
    assert run(engine, before) == []
    assert engine.counters.known_dropped == len(before) > 0


def test_grace_decides_without_the_silent_role_and_counts_it(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    eth_only = [e for e in events if e.role == "eth"][:200]
    waiting = make_engine(prep, cfg, t0, scripted(random_actions(100)))
    assert run(waiting, eth_only) == []  # without grace it waits for BTC forever
    engine = make_engine(prep, cfg, t0, scripted(random_actions(100)), grace_s=0.5)
    decisions = run(engine, eth_only)  # recv_us = trade time: the grace runs on event time here
    assert len(decisions) > 5 and all(d.forced == "grace" for d in decisions)
    assert engine.counters.grace_decisions == len(decisions)
    assert decisions[-1].time_us < eth_only[-1].time_us
    # A BTC trade older than the clock is now late: dropped and counted.
    late = next(e for e in events if e.role == "btc" and e.time_us < decisions[-1].time_us - STEP)
    engine.on_event(replace(late, trade_id=10**12))
    assert engine.counters.late_dropped == 1


@pytest.mark.parametrize(("rule", "held"), [("hold", 1), ("flat", 0)])
def test_stale_role_holds_or_goes_flat(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent], rule: str, held: int
) -> None:
    engine = make_engine(prep, cfg, t0, lambda obs: np.array([2]), on_stale=rule, grace_s=0.5)  # always long
    cut = len(events) // 3
    first = run(engine, events[:cut])
    assert first and first[-1].position == 1
    stale_at = events[cut].recv_us
    engine.on_event(StreamStatus(StreamHealth.STALE, "btc", "gap not backfilled", stale_at))
    assert engine.degraded
    # BTC stays silent: ETH moves the clock through the grace.
    during = run(engine, [e for e in events[cut : 2 * cut] if e.role == "eth"])
    assert during and all(d.forced == "grace+stale" and d.action == 2 and d.position == held for d in during)
    assert engine.counters.stale_decisions == len(during)
    assert engine.counters.overridden_actions == (len(during) if rule == "flat" else 0)
    recovered_at = events[2 * cut].recv_us
    engine.on_event(StreamStatus(StreamHealth.RECOVERED, "btc", "", recovered_at))
    assert not engine.degraded
    assert engine.degraded_us(recovered_at + 123) == recovered_at - stale_at
    after = run(engine, [e for e in events[2 * cut :] if e.time_us > engine.builder.t_us])
    assert after and all(d.forced in (None, "grace") and d.position == 1 for d in after)


def test_stale_hold_never_opens_a_position(prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]) -> None:
    engine = make_engine(prep, cfg, t0, lambda obs: np.array([0]))  # always short
    engine.on_event(StreamStatus(StreamHealth.STALE, "btc", "gap not backfilled", events[0].recv_us))
    decisions = run(engine, events[:400])
    assert decisions and all(d.position == 0 and d.forced == "stale" for d in decisions)
    assert engine.counters.overridden_actions == len(decisions)


def test_stale_statuses_and_disconnects_count_as_degraded_time(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    engine = make_engine(prep, cfg, t0, scripted(random_actions(50)))
    engine.on_event(StreamStatus(StreamHealth.STALE, None, "silent socket", 1_000))
    engine.on_event(StreamStatus(StreamHealth.DISCONNECTED, None, "heartbeat", 1_500))
    engine.on_event(StreamStatus(StreamHealth.RECOVERED, None, "", 3_000))
    assert engine.degraded and engine.degraded_us(4_000) == 3_000
    engine.on_event(StreamStatus(StreamHealth.CONNECTED, None, "", 5_000))
    assert not engine.degraded and engine.degraded_us(9_000) == 4_000
    assert engine.counters.status == {"stale": 1, "disconnected": 1, "recovered": 1, "connected": 1}


def test_restart_from_a_checkpoint_continues_like_an_uninterrupted_run(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent], period: PeriodData
) -> None:
    actions = random_actions(N_STEPS + 10, seed=7)
    full = make_engine(prep, cfg, t0, scripted(actions))
    ref = run(full, events)
    first = make_engine(prep, cfg, t0, scripted(actions))
    cut = len(events) // 2
    done = run(first, events[:cut])
    state = json.loads(json.dumps(first.state_dict()))  # what the checkpoint file holds
    restarted = make_engine(prep, cfg, int(state["resume_us"]), scripted(actions[len(done) :]))
    restarted.load_state_dict(state)
    # The feed delivers again from the saved trade ids; a few already-processed trades come twice.
    rest = run(restarted, events[cut - 50 :])
    got = done + rest
    assert [(d.time_us, d.action, d.position) for d in got] == [(d.time_us, d.action, d.position) for d in ref]
    assert np.abs(np.concatenate([d.obs for d in got]) - np.concatenate([d.obs for d in ref])).max() <= FLOAT_TOLERANCE
    a, b = restarted.broker.result(period.n_steps), full.broker.result(period.n_steps)
    assert a is not None and b is not None
    assert_frame_equal(a.trades, b.trades)
    assert a.metrics == b.metrics


def test_restore_refuses_a_builder_started_elsewhere(prep: Prepared, cfg: Config, t0: int) -> None:
    engine = make_engine(prep, cfg, t0, scripted(random_actions(5)))
    state = engine.state_dict()
    other = make_engine(prep, cfg, t0 + 10 * STEP, scripted(random_actions(5)))
    with pytest.raises(ValueError, match="resumes at"):
        other.load_state_dict(state)


def test_latency_stages_are_recorded(prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]) -> None:
    engine = make_engine(prep, cfg, t0, scripted(random_actions(N_STEPS + 10)))
    decisions = run(engine, events)
    summary = engine.latency.summary()
    assert summary["state"]["n"] == summary["policy"]["n"] == len(decisions)
    assert summary["update"]["n"] == engine.counters.trades_processed
    p50, p99 = summary["state"]["p50_us"], summary["state"]["p99_us"]
    assert p50 is not None and p99 is not None and 0 < p50 <= p99


def test_warm_up_changes_no_decision_and_records_no_latency(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    actions = random_actions(N_STEPS + 10, seed=5)
    cold, warm = make_engine(prep, cfg, t0, scripted(actions)), make_engine(prep, cfg, t0, scripted(actions))
    warm.warm_up()
    assert warm.latency.summary()["state"]["n"] == 0 and warm.next_idx == 0
    a, b = run(cold, events), run(warm, events)
    assert len(a) == len(b) >= N_STEPS
    assert all(x.action == y.action and np.array_equal(x.obs, y.obs) for x, y in zip(a, b, strict=True))
    assert cold.broker.equity_at(cold.last_price) == warm.broker.equity_at(warm.last_price)


def test_policy_returning_a_bad_action_is_refused(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]
) -> None:
    engine = make_engine(prep, cfg, t0, lambda obs: np.array([3]))
    with pytest.raises(ValueError, match="one action in"):
        run(engine, events[:200])


def test_unknown_role_is_refused(prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent]) -> None:
    engine = make_engine(prep, cfg, t0, scripted(random_actions(5)))
    with pytest.raises(ValueError, match="unknown role"):
        engine.on_event(replace(events[0], role="sol"))


def test_min_hold_steps_keeps_positions_exactly_as_the_env(
    prep: Prepared, cfg: Config, t0: int, events: list[TradeEvent], period: PeriodData
) -> None:
    held = cfg.env.model_copy(update={"min_hold_steps": 7})
    actions = random_actions(N_STEPS + 10, seed=5)  # a random order every step: most closes come too early
    seen_env: list[npt.NDArray[np.float32]] = []
    it_env = iter(actions.tolist())

    def env_policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        seen_env.append(obs.copy())
        return np.array([next(it_env)])

    n = period.n_steps
    ref = backtest_policy(prep.builder, period, env_policy, held)
    engine = LiveEngine(
        prep.layout,
        cfg.features,
        held,
        prep.frames,
        t0,
        scripted(actions),
        stats=prep.stats,
        settings=EngineSettings(grace_s=None),
    )
    decisions = run(engine, events)
    ref_positions = ref.steps["position"].to_numpy()[:n]
    assert [d.position for d in decisions[:n]] == ref_positions.tolist()
    assert [d.action for d in decisions[:n]] == actions[:n].tolist()  # the agent's own actions, as it chose them
    kept = int(np.sum(ref_positions != actions[:n] - 1))
    assert kept > 20 and engine.counters.min_hold_kept >= kept  # the rule did act, on the same decisions
    # Every long or short (but the last, cut by the session's end) lasts at least 7 decisions.
    trades = ref.trades.filter(ref.trades["exit_step"] < n)
    assert trades.height > 5 and int((trades["exit_step"] - trades["entry_step"]).min()) >= 7
    live_obs = np.concatenate([d.obs for d in decisions[:n]])
    assert np.abs(live_obs - np.concatenate(seen_env)).max() <= FLOAT_TOLERANCE  # time in trade too
    live = engine.broker.result(n)
    assert live is not None
    assert_frame_equal(live.trades, ref.trades)
    assert_frame_equal(live.steps, ref.steps)
    # Without the rule the same actions trade more often.
    free = make_engine(prep, cfg, t0, scripted(actions))
    run(free, events)
    result = free.broker.result(n)
    assert result is not None and result.trades.height > ref.trades.height and free.counters.min_hold_kept == 0
