"""The live engine: live events in, decisions on the clock out, through the training's own feature code.

Glossary of one event (:meth:`LiveEngine.on_event`):

* **trade**: dropped and counted if already known (trade id at or below the role's last queued id: the
  warm-start history holds it, or the feed or a restart delivers it again) or *late* (older than the
  builder's clock, which only a grace decision can cause); else queued in the
  :class:`~rltrade.live.merge.TradeMerger`;
* **release**: queued trades no future trade can precede (at or below the watermark) go, in time order, to
  the :class:`~rltrade.features.state_stream.StreamingStateBuilder`, the mark tracker and the paper broker
  (which fills pending orders);
* **decision** at clock time ``t`` (``start + i · step``): once trades of *both* roles *newer* than ``t``
  have been seen (the watermark passed ``t``, so every trade at or before ``t`` is in) the CNN rows are
  brought up to ``t`` (:class:`~rltrade.models.bridge.StreamingCnnBridge`: once per closed bar), the state
  at ``t`` is read, the account block appended as the env does (:class:`~rltrade.live.account.LiveAccount`),
  the policy acts, the env's minimum holding time applies (``env.min_hold_steps``: a long or short opened
  fewer than that many decisions ago is kept, by the env's own :func:`~rltrade.env.fills.held_positions` on the
  account book's position and entry step), and the target goes to the
  :class:`~rltrade.live.broker.PaperBroker`. If one role has
  passed ``t`` but the other has not within ``grace_s`` wall seconds, the engine decides with what it has
  and counts a *grace decision* (trades of the slow role at or before ``t`` arriving later are then late);
* **status**: ``STALE`` of a role marks decisions *stale* until its ``RECOVERED``. The clock still waits
  for the role (a silent one is handled by the grace: ignoring a stale role's watermark at once would run
  the clock past the trades the feed still holds behind the hole, which would then arrive late). A stale
  decision holds (``on_stale="hold"``: keep the position, only going flat is allowed) or goes flat
  (``"flat"``: a risk rule, applied after the minimum holding time, so it may close a position held for fewer
  than ``env.min_hold_steps``), and is counted. Connection status and gaps are counted; the wall time spent degraded (a
  role stale or the connection down) gives the uptime.

Decisions on the clock, the fill rule and the accounting are the backtest's, so a replay of stored trades
gives the backtest's states (within ``FLOAT_TOLERANCE``), actions, fills and equity (tested).
Latency is recorded per stage in bounded histograms (:mod:`rltrade.live.latency`): ``update`` (builder,
marks and broker for one trade), ``cnn`` (the CNN bridge), ``state`` (``state_at``), ``policy``, ``broker``
(order submission), and end to end, from a trade's receipt (``recv_us``) to the end of its processing
(``trade``) and to the action it triggered (``decision``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from rltrade.config import EnvConfig, FeaturesConfig
from rltrade.data.market import MarketFrames
from rltrade.env.fills import held_positions
from rltrade.env.trading_env import ACTION_POSITIONS
from rltrade.features.bar_stream import BarSeed
from rltrade.features.layout import StateLayout
from rltrade.features.market_features import FeatureStats
from rltrade.features.state_stream import StreamingStateBuilder
from rltrade.live.account import LiveAccount, MarkTracker
from rltrade.live.broker import Fill, PaperBroker
from rltrade.live.events import BookEvent, LiveEvent, StreamHealth, StreamStatus, TradeEvent
from rltrade.live.latency import StageLatencies
from rltrade.live.merge import TradeMerger
from rltrade.models.bridge import StreamingCnnBridge
from rltrade.training.backtest import Policy

STAGES = ("update", "cnn", "state", "policy", "broker", "trade", "decision")
ROLES = ("eth", "btc")


def wall_us() -> int:
    """Read the wall clock in µs since the epoch (the clock ``recv_us`` is read on)."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class EngineSettings:
    """Knobs of the live engine: staleness grace, what a stale decision does, the starting equity."""

    grace_s: float | None = 1.0
    """Wall seconds to wait for the slower role once the other has passed a clock time; None waits forever."""
    on_stale: Literal["hold", "flat"] = "hold"
    """What a decision does while a role is stale: hold (no new or reversed position) or go flat."""
    initial_equity: float = 10_000.0


@dataclass
class EngineCounters:
    """Counters of what the live engine received, dropped and decided."""

    trades_received: int = 0
    trades_processed: int = 0
    known_dropped: int = 0
    """Trades at or below the role's last processed id (in the history already, or re-delivered)."""
    late_dropped: int = 0
    """Trades older than the builder's clock (after a grace decision)."""
    book_events: int = 0
    decisions: int = 0
    grace_decisions: int = 0
    stale_decisions: int = 0
    overridden_actions: int = 0
    """Stale decisions whose target differs from the agent's action."""
    min_hold_kept: int = 0
    """Decisions whose close or reversal ``env.min_hold_steps`` refused (the position was kept, as in the env)."""
    fills: int = 0
    status: dict[str, int] = field(default_factory=dict)
    degraded_us: int = 0
    """Wall µs spent with a role stale or the connection down."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of the live engine: the action, the target sent to the broker and the observation behind it."""

    t_idx: int
    time_us: int
    action: int
    """The agent's action (0 short, 1 flat, 2 long)."""
    position: int
    """The target sent to the broker (the action's, unless a stale rule overrode it)."""
    mark: float
    obs: npt.NDArray[np.float32]
    """The observation ``[1, layout.size + ACCOUNT_DIM]`` the agent acted on."""
    forced: str | None
    """``"grace"``, ``"stale"``, ``"grace+stale"`` or None."""


class LiveEngine:
    """Consumes live events in order, decides on the clock, trades on paper (module docstring).

    ``history`` is the stored market, cut at ``t0_us`` by the builder (``history.until(t0_us)``); it must be
    at least as long as every warm-up. The clock starts at the first step at or after ``t0_us``. ``seed``
    supplies the real bar for a bar that formed across ``t0_us`` without finer history back to its open
    (the exchange's klines); without it such a bar is masked (:mod:`rltrade.features.state_stream`).
    """

    def __init__(
        self,
        layout: StateLayout,
        features_cfg: FeaturesConfig,
        env_cfg: EnvConfig,
        history: MarketFrames,
        t0_us: int,
        policy: Policy,
        *,
        stats: FeatureStats = FeatureStats(),
        settings: EngineSettings = EngineSettings(),
        funding: pl.DataFrame | None = None,
        cnn: StreamingCnnBridge | None = None,
        seed: BarSeed | None = None,
    ) -> None:
        self.layout, self.env_cfg, self.settings, self.policy = layout, env_cfg, settings, policy
        self.min_hold = env_cfg.min_hold_steps
        """``env.min_hold_steps``: decisions a long or short is kept before it may be closed or reversed."""
        self.cnn = cnn
        self.step_us = env_cfg.step.us
        self.builder = StreamingStateBuilder(layout, features_cfg, history, t0_us, stats, seed=seed)
        self.broker = PaperBroker(env_cfg, initial_equity=settings.initial_equity, funding=funding)
        self.account = LiveAccount(env_cfg, funding)
        self.marks = MarkTracker.from_history(history, "eth", t0_us, self.step_us)
        self.merger = TradeMerger(ROLES)
        self.t0_us = t0_us
        self.clock_start_us = -(-t0_us // self.step_us) * self.step_us
        self.next_idx = 0
        self.last_trade_id: dict[str, int] = {}
        for role in ROLES:
            df = history.trades.get(role)
            known = df.filter(pl.col("ts_us") <= t0_us) if df is not None else None
            ids = known["trade_id"].to_numpy() if known is not None else np.zeros(0, np.int64)
            self.last_trade_id[role] = int(ids.max()) if ids.size else -1
        self._ids_at_decision = dict(self.last_trade_id)
        self._pushed_id = dict(self.last_trade_id)
        """Newest trade id queued per role: the feed delivers ids in order, so any id at or below is a repeat."""
        self.stale: set[str] = set()
        self.connected = True
        self.counters = EngineCounters()
        self.latency = StageLatencies(STAGES)
        self.last_price: float = self.marks.last_price
        self.on_decision: list[Callable[[Decision], None]] = []
        self.on_fill: list[Callable[[Fill], None]] = []
        self._blocked_since_us: int | None = None
        self._degraded_since_us: int | None = None
        self._trigger_recv_us: int | None = None

    def warm_up(self) -> None:
        """Do the first decision's one-time work now, before the feed starts, so that it costs what any other does.

        That is the CNN rows of the bars closed by the builder's clock (each timeframe's first row) and the
        state there, which also loads the compiled feature kernels (~10 ms each on the first call in a
        process, ~0.5 s for the first of all). Reads only data up to the clock, so every later decision
        is the same as without it; the latencies it takes are not recorded.
        """
        t = self.builder.t_us
        if self.cnn is not None:
            self.cnn.refresh(self.builder, t)
        self.builder.state_at(t)

    # ------------------------------------------------------------------ clock
    @property
    def next_time_us(self) -> int:
        """Clock time of the next decision."""
        return self.clock_start_us + self.next_idx * self.step_us

    @property
    def degraded(self) -> bool:
        """Whether a role is stale or the connection is down."""
        return bool(self.stale) or not self.connected

    # ------------------------------------------------------------------ events
    def on_event(self, event: LiveEvent, now_us: int | None = None) -> list[Decision]:
        """Process one event (``now_us``: the wall clock, default the event's ``recv_us``); the decisions it led to."""
        now = event.recv_us if now_us is None else now_us
        if isinstance(event, TradeEvent):
            return self._on_trade(event, now)
        if isinstance(event, BookEvent):
            self.counters.book_events += 1
            return []
        self._on_status(event)
        return self._drain(now)

    def poll(self, now_us: int | None = None) -> list[Decision]:
        """Take decisions whose grace has run out by wall time ``now_us`` (call it periodically)."""
        return self._drain(wall_us() if now_us is None else now_us)

    def _on_trade(self, trade: TradeEvent, now: int) -> list[Decision]:
        c = self.counters
        c.trades_received += 1
        if trade.role not in self.last_trade_id:
            raise ValueError(f"trade of unknown role {trade.role!r} ({trade.symbol}); roles are {ROLES}")
        if trade.trade_id <= self._pushed_id[trade.role]:
            c.known_dropped += 1
            return []
        queued = self.merger.last_us[trade.role]
        if trade.time_us < self.builder.t_us or (queued is not None and trade.time_us < queued):
            c.late_dropped += 1
            return []
        self.merger.push(trade)
        self._pushed_id[trade.role] = trade.trade_id
        self._trigger_recv_us = trade.recv_us
        out = self._drain(now)
        self.latency.add("trade", wall_us() - trade.recv_us)
        return out

    def _on_status(self, status: StreamStatus) -> None:
        c = self.counters
        c.status[status.health.value] = c.status.get(status.health.value, 0) + 1
        was = self.degraded
        roles = ROLES if status.role is None else (status.role,)
        if status.health is StreamHealth.STALE:
            self.stale.update(roles)
        elif status.health is StreamHealth.RECOVERED:
            self.stale.difference_update(roles)
        elif status.health is StreamHealth.DISCONNECTED:
            self.connected = False
        elif status.health is StreamHealth.CONNECTED:
            self.connected = True
        if self.degraded and not was:
            self._degraded_since_us = status.recv_us
        elif was and not self.degraded and self._degraded_since_us is not None:
            c.degraded_us += max(0, status.recv_us - self._degraded_since_us)
            self._degraded_since_us = None

    def await_connection(self, now_us: int) -> None:
        """Start the session disconnected: degraded from ``now_us`` until the feed's first ``CONNECTED``.

        Without it a session that never connects (``rltrade live --wait`` on a dead URL) would report full
        uptime; the engine alone (replays, tests) starts connected.
        """
        self.connected = False
        if self._degraded_since_us is None:
            self._degraded_since_us = now_us

    def degraded_us(self, now_us: int) -> int:
        """Wall µs spent degraded so far, the current spell included."""
        open_spell = now_us - self._degraded_since_us if self._degraded_since_us is not None else 0
        return self.counters.degraded_us + max(0, open_spell)

    # ------------------------------------------------------------------ release and decide
    def _release(self, up_to_us: int) -> None:
        for trade in self.merger.pop_until(up_to_us):
            t = time.perf_counter_ns()
            self.builder.update(trade.role, trade.time_us, trade.price, trade.qty, trade.side)
            self.last_trade_id[trade.role] = trade.trade_id
            self.counters.trades_processed += 1
            if trade.role == "eth":
                self.marks.on_trade(trade.time_us, trade.price)
                self.last_price = trade.price
                for fill in self.broker.on_trade(trade.time_us, trade.price):
                    self.counters.fills += 1
                    for cb in self.on_fill:
                        cb(fill)
            self.latency.add("update", (time.perf_counter_ns() - t) / 1000)

    def _drain(self, now: int) -> list[Decision]:
        out: list[Decision] = []
        while True:
            t_d = self.next_time_us
            water = self.merger.watermark()
            self._release(min(water, t_d) if water is not None else self.builder.t_us)
            if water is not None and water > t_d:
                out.append(self._decide(t_d, forced=None, now=now))
                continue
            newest = self.merger.newest_us
            if newest is None or newest <= t_d:
                self._blocked_since_us = None
                return out
            if self._blocked_since_us is None:
                self._blocked_since_us = now
            grace = self.settings.grace_s
            if grace is None or now - self._blocked_since_us < grace * 1e6:
                return out
            self._release(t_d)
            self.counters.grace_decisions += 1
            out.append(self._decide(t_d, forced="grace", now=now))

    def _decide(self, t_us: int, *, forced: str | None, now: int) -> Decision:
        lat = self.latency
        if self.cnn is not None:
            tc = time.perf_counter_ns()
            self.cnn.refresh(self.builder, t_us)
            lat.add("cnn", (time.perf_counter_ns() - tc) / 1000)
        t = time.perf_counter_ns()
        state_F = self.builder.state_at(t_us)
        t1 = time.perf_counter_ns()
        i = self.next_idx
        mark = self.marks.mark_before(t_us)
        obs = np.concatenate([state_F[None], self.account.vector(i, mark)], axis=1)
        act = np.asarray(self.policy(obs)).reshape(-1)
        if act.shape != (1,) or int(act[0]) not in (0, 1, 2):
            raise ValueError(f"the policy must return one action in {{0, 1, 2}} at step {i}, got {act}")
        action = int(act[0])
        t2 = time.perf_counter_ns()
        position = ACTION_POSITIONS[action]
        book = self.account.book  # decision i − 1 applied by ``vector``: what is held now, and since when
        kept = int(held_positions(np.array([position], np.int8), book.position, i - book.entry_step, self.min_hold)[0])
        if kept != position:
            self.counters.min_hold_kept += 1
            position = kept
        if self.stale:
            self.counters.stale_decisions += 1
            held = self.broker.target[-1] if self.broker.target else 0
            safe = 0 if self.settings.on_stale == "flat" or position == 0 else held
            if safe != position:
                self.counters.overridden_actions += 1
            position = safe
            forced = "stale" if forced is None else f"{forced}+stale"
        self.broker.submit(i, t_us, position, mark)
        self.account.record(i, t_us, position, mark)
        t3 = time.perf_counter_ns()
        lat.add("state", (t1 - t) / 1000)
        lat.add("policy", (t2 - t1) / 1000)
        lat.add("broker", (t3 - t2) / 1000)
        if self._trigger_recv_us is not None:
            lat.add("decision", wall_us() - self._trigger_recv_us)
        self.next_idx += 1
        self.counters.decisions += 1
        self._blocked_since_us = None
        self._ids_at_decision = dict(self.last_trade_id)
        decision = Decision(i, t_us, action, position, mark, obs, forced)
        for cb in self.on_decision:
            cb(decision)
        return decision

    # ------------------------------------------------------------------ async loop
    async def run(self, events: AsyncIterable[LiveEvent], *, poll_s: float = 0.05) -> None:
        """Consume ``events`` until they end, polling the grace timer every ``poll_s`` seconds meanwhile."""

        async def ticker() -> None:
            while True:
                await asyncio.sleep(poll_s)
                self.poll(wall_us())

        task = asyncio.create_task(ticker())
        try:
            async for event in events:
                self.on_event(event, wall_us())
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ checkpoint
    @property
    def resume_us(self) -> int:
        """Where a restart warm-starts the builder: the last decided clock time (``t0_us`` before any)."""
        return self.clock_start_us + (self.next_idx - 1) * self.step_us if self.next_idx else self.t0_us

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready engine state: clock, last processed trade ids, broker, account, stale roles, counters.

        Valid at any moment: the trade ids are those processed by the last decision (``resume_us``), so a
        restart warm-started at ``resume_us`` takes the trades after it again; they can fill no order twice
        (orders decided later fill after their own decision time, and earlier ones are filled already).
        """
        return {
            "t0_us": self.t0_us,
            "clock_start_us": self.clock_start_us,
            "step_us": self.step_us,
            "next_idx": self.next_idx,
            "resume_us": self.resume_us,
            "last_trade_id": dict(self._ids_at_decision),
            "stale": sorted(self.stale),
            "broker": self.broker.state_dict(),
            "account": self.account.state_dict(),
            "counters": asdict(self.counters),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (the builder must have been warm-started at ``state["resume_us"]``)."""
        if int(state["step_us"]) != self.step_us:
            raise ValueError(f"the saved clock steps {state['step_us']} µs, this run's clock {self.step_us} µs")
        if self.builder.t_us != int(state["resume_us"]):
            raise ValueError(
                f"the builder was warm-started at {self.builder.t_us} µs, the saved state resumes at "
                f"{state['resume_us']} µs: start the engine with t0_us = state['resume_us']"
            )
        self.clock_start_us = int(state["clock_start_us"])
        self.next_idx = int(state["next_idx"])
        self.t0_us = int(state["t0_us"])
        self.last_trade_id = {k: int(v) for k, v in state["last_trade_id"].items()}
        self._ids_at_decision = dict(self.last_trade_id)
        self._pushed_id = dict(self.last_trade_id)
        self.stale = set(state["stale"])
        self.broker.load_state_dict(state["broker"])
        self.account.load_state_dict(state["account"])
        self.counters = EngineCounters(**state["counters"])
