"""The structured encoder's options for the rich state: per-block input standardisation, block dropout, recent rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from rltrade.agent.batches import ArrayStateSource, ReplaySample
from rltrade.agent.block_norm import InputStandardiser, block_statistics
from rltrade.agent.encoder import BlockSpec, StructuredEncoder, block_dropout, structured_q_network
from rltrade.agent.learner import DQNLearner, LearnerConfig
from rltrade.training.loop import norm_rows

BLOCKS = [
    BlockSpec("ticks", (6, 2), 0, 12, "ticks"),
    BlockSpec("bars_a", (6, 3), 12, 30, "bars"),
    BlockSpec("flags", (2,), 30, 32, "flat"),
    BlockSpec("bars_b", (6, 3), 32, 50, "bars"),
]
WIDTH, K = 52, 3  # state columns 50, 51 are in no block


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _encoder(**options: Any) -> StructuredEncoder:
    return StructuredEncoder(BLOCKS, WIDTH, K, channels=(4,), patches=(3,), **options)


# ---------------------------------------------------------------------------------------- statistics
def test_block_statistics_are_per_channel_for_windows_and_per_column_for_flat_blocks() -> None:
    rng = np.random.default_rng(0)
    states = rng.standard_normal((500, WIDTH)) * 3.0 + 7.0
    mean, std = block_statistics(states, BLOCKS)
    assert mean.shape == std.shape == (WIDTH,)
    # bars_a's channel 1 is every third column of its slice, pooled over its 6 rows.
    channel = states[:, 12:30].reshape(-1, 3)[:, 1]
    np.testing.assert_allclose(mean[13:30:3], channel.mean(), rtol=1e-5)
    np.testing.assert_allclose(std[13:30:3], channel.std(), rtol=1e-5)
    np.testing.assert_allclose(mean[30:32], states[:, 30:32].mean(axis=0), rtol=1e-5)
    # Columns in no block are left alone; a constant column keeps scale 1 (centred only).
    assert np.all(mean[50:] == 0) and np.all(std[50:] == 1)
    states[:, 30] = 4.0
    mean, std = block_statistics(states, BLOCKS)
    assert mean[30] == pytest.approx(4.0) and std[30] == 1.0


def test_block_statistics_read_only_the_rows_given() -> None:
    """Causality: statistics fitted on training rows do not move when later (validation, test) rows change."""
    rng = np.random.default_rng(1)
    states = rng.standard_normal((300, WIDTH)).astype(np.float32)
    train_rows = norm_rows(200, rows=64)
    assert train_rows.max() < 200 and train_rows.min() == 0 and train_rows.max() == 199
    before = block_statistics(states[train_rows], BLOCKS)
    states[200:] = 1e6  # the future
    after = block_statistics(states[train_rows], BLOCKS)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="at least 2"):
        norm_rows(1)


def test_standardiser_is_the_identity_until_fitted_then_standardises_and_clips() -> None:
    norm = InputStandardiser(4, clip=3.0)
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5]])
    torch.testing.assert_close(norm(x), x)
    norm.fit([1.0, 0.0, 0.0, 0.0], [2.0, 0.5, 1.0, 0.01])
    torch.testing.assert_close(norm(x), torch.tensor([[0.0, 3.0, -1.0, 3.0]]))  # 4.0 and 50.0 clipped to 3
    with pytest.raises(ValueError, match="positive"):
        norm.fit([0.0] * 4, [1.0, 0.0, 1.0, 1.0])


def test_input_norm_changes_the_encoding_and_is_saved_with_the_network() -> None:
    net = structured_q_network(BLOCKS, WIDTH, K, _gen(), channels=(4,), patches=(3,), hidden=(8,), input_norm=True)
    plain = structured_q_network(BLOCKS, WIDTH, K, _gen(), channels=(4,), patches=(3,), hidden=(8,))
    state = (torch.randn(5, WIDTH, generator=_gen(1)) * 2 + 3).clamp(-9.0, 9.0)  # inside the ±10 clip
    account = torch.randn(5, K, generator=_gen(2))
    torch.testing.assert_close(net(state, account), plain(state, account))  # identity statistics at first
    mean, std = block_statistics(state.numpy(), BLOCKS)
    encoder = net.body.encoder
    assert isinstance(encoder, StructuredEncoder) and encoder.input_norm is not None
    encoder.input_norm.fit(mean, std)
    assert not torch.allclose(net(state, account), plain(state, account))
    assert "body.encoder.input_norm.mean_F" in net.state_dict()
    assert "body.encoder.input_norm.mean_F" not in plain.state_dict()  # off: old checkpoints still load


# ---------------------------------------------------------------------------------------- block dropout
def test_block_dropout_zeroes_whole_blocks_and_scales_the_kept_ones() -> None:
    enc = _encoder(block_dropout=0.5)
    state, account = torch.randn(64, WIDTH, generator=_gen(0)), torch.randn(64, K, generator=_gen(1))
    clean = enc(state, account)
    with block_dropout(enc, _gen(7)):
        dropped = enc(state, account)
    assert dropped.shape == clean.shape == (64, enc.out_dim)
    ratio = torch.where(clean != 0, dropped / clean, torch.full_like(clean, float("nan")))
    # Column layout: ticks (2 patches × 4), bars_a, bars_b (8 each), flags (2), no block (2), account (3).
    spans = {"ticks": (0, 8), "bars_a": (8, 16), "bars_b": (16, 24), "flags": (24, 26)}
    factors = []
    for start, stop in spans.values():
        block = ratio[:, start:stop]
        per_sample = torch.nanmean(block, dim=1)
        factors += per_sample[~per_sample.isnan()].round(decimals=4).tolist()
        # Within a sample the whole block shares one factor.
        assert torch.all((block - per_sample[:, None]).abs().nan_to_num(0.0) < 1e-4)
    assert set(factors) == {0.0, 2.0}
    assert 0.35 < factors.count(0.0) / len(factors) < 0.65
    torch.testing.assert_close(dropped[:, 26:], clean[:, 26:])  # unblocked columns and the account: never


def test_block_dropout_is_off_in_eval_mode_and_outside_the_context() -> None:
    enc = _encoder(block_dropout=0.9)
    state, account = torch.randn(8, WIDTH, generator=_gen(0)), torch.randn(8, K, generator=_gen(1))
    clean = enc(state, account)
    torch.testing.assert_close(enc(state, account), clean)  # training mode, no generator: nothing dropped
    enc.eval()
    with block_dropout(enc, _gen(3)):
        torch.testing.assert_close(enc(state, account), clean)
    enc.train()
    with block_dropout(enc, _gen(3)):
        assert not torch.equal(enc(state, account), clean)
    assert enc.dropout_generator is None


def test_block_dropout_is_deterministic_given_the_generator() -> None:
    enc = _encoder(block_dropout=0.3)
    state, account = torch.randn(16, WIDTH, generator=_gen(0)), torch.randn(16, K, generator=_gen(1))
    outs = []
    for seed in (5, 5, 6):
        with block_dropout(enc, _gen(seed)):
            outs.append(enc(state, account))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        _encoder(block_dropout=1.0)


# ---------------------------------------------------------------------------------------- recent rows
def test_recent_rows_pass_the_newest_rows_of_every_window_through_unpatched() -> None:
    state, account = torch.randn(5, WIDTH, generator=_gen(0)), torch.randn(5, K, generator=_gen(1))
    plain, enc = _encoder(), _encoder(recent_rows=2)
    enc.load_state_dict(plain.state_dict())  # the skip path adds no weights
    # Two rows of ticks (2 channels) and of both bar windows (3 channels): 4 + 6 + 6 more columns.
    assert enc.out_dim == plain.out_dim + 16
    out, base = enc(state, account), plain(state, account)
    torch.testing.assert_close(out[:, :24], base[:, :24])  # the stacks' features come first, unchanged
    # Then the newest rows, per group (ticks; bars_a, bars_b: not adjacent in the state), oldest row first.
    torch.testing.assert_close(out[:, 24:40], torch.cat([state[:, 8:12], state[:, 24:30], state[:, 44:50]], dim=1))
    torch.testing.assert_close(out[:, 40:], base[:, 24:])  # flat columns and the account after them
    # More rows than a window has: the whole window.
    assert _encoder(recent_rows=99).out_dim == plain.out_dim + WIDTH - 4


def test_recent_rows_of_adjacent_windows_read_the_same_values_as_separate_ones() -> None:
    adjacent = [BlockSpec("a", (4, 2), 0, 8, "bars"), BlockSpec("b", (4, 2), 8, 16, "bars")]
    enc = StructuredEncoder(adjacent, 16, 1, channels=(3,), patches=(2,), recent_rows=3)
    state = torch.arange(32, dtype=torch.float32).reshape(2, 16)
    recent = enc(state, torch.zeros(2, 1))[:, 2 * 2 * 3 : -1]
    torch.testing.assert_close(recent, torch.cat([state[:, 2:8], state[:, 10:16]], dim=1))


def test_recent_changes_of_adjacent_windows_equal_those_of_separate_ones() -> None:
    # Adjacent windows are read as one strided view of the state (no copy); apart, each window is copied.
    adjacent = [BlockSpec("a", (4, 2), 0, 8, "bars"), BlockSpec("b", (4, 2), 8, 16, "bars")]
    apart = [
        BlockSpec("a", (4, 2), 0, 8, "bars"),
        BlockSpec("f", (1,), 8, 9, "flat"),
        BlockSpec("b", (4, 2), 9, 17, "bars"),
    ]
    state = torch.randn(3, 16, generator=_gen(2))
    spread = torch.cat([state[:, :8], torch.zeros(3, 1), state[:, 8:]], dim=1)
    one = StructuredEncoder(
        adjacent, 16, 1, channels=(3,), patches=(2,), input_norm=True, recent_rows=2, recent_diff=True
    )
    two = StructuredEncoder(apart, 17, 1, channels=(3,), patches=(2,), input_norm=True, recent_rows=2, recent_diff=True)
    assert one.groups[0].contiguous and not two.groups[0].contiguous
    changes = one._recent(state, one.groups[0])
    assert torch.equal(changes, two._recent(spread, two.groups[0]))
    rows = state.reshape(3, 2, 4, 2)[:, :, 1:]  # the newest 3 rows of each window
    assert torch.equal(changes, (rows[:, :, 1:] - rows[:, :, :-1]).reshape(3, -1))


def test_block_dropout_drops_a_window_and_its_recent_rows_together() -> None:
    enc = _encoder(block_dropout=0.5, recent_rows=2)
    state, account = torch.randn(64, WIDTH, generator=_gen(0)) + 3.0, torch.randn(64, K, generator=_gen(1))
    clean = enc(state, account)
    with block_dropout(enc, _gen(7)):
        dropped = enc(state, account)
    # bars_a: its stack columns 8:16 and its recent columns 28:34 share one factor (0 or 2) per sample.
    factor_B = dropped[:, 28] / clean[:, 28]
    assert set(factor_B.round(decimals=4).tolist()) == {0.0, 2.0}
    torch.testing.assert_close(dropped[:, 28:34], clean[:, 28:34] * factor_B[:, None])
    torch.testing.assert_close(dropped[:, 8:16], clean[:, 8:16] * factor_B[:, None])
    with pytest.raises(ValueError, match="recent_rows"):
        _encoder(recent_rows=-1)


def test_recent_diff_passes_the_scaled_row_changes_of_the_newest_rows() -> None:
    state, account = torch.randn(5, WIDTH, generator=_gen(0)), torch.randn(5, K, generator=_gen(1))
    levels, enc = _encoder(recent_rows=2, input_norm=True), _encoder(recent_rows=2, input_norm=True, recent_diff=True)
    enc.load_state_dict(levels.state_dict(), strict=False)  # the same weights; the scales are the change path's own
    assert enc.out_dim == levels.out_dim  # two changes from three rows, where the levels path passes two rows
    out, base = enc(state, account), levels(state, account)
    torch.testing.assert_close(out[:, :24], base[:, :24])
    torch.testing.assert_close(out[:, 40:], base[:, 40:])

    def changes(start: int, rows: int, cols: int) -> torch.Tensor:  # the newest 3 rows of a window → 2 changes
        w = state[:, start : start + rows * cols].reshape(5, rows, cols)[:, -3:]
        return (w[:, 1:] - w[:, :-1]).reshape(5, -1)

    expected = torch.cat([changes(0, 6, 2), changes(12, 6, 3), changes(32, 6, 3)], dim=1)
    torch.testing.assert_close(out[:, 24:40], expected)  # scale 1 until fitted
    # Fitted on states: each column of changes gets unit standard deviation over them, and is clipped.
    fit = torch.randn(400, WIDTH, generator=_gen(2)) * torch.linspace(0.5, 5.0, WIDTH)
    enc.input_norm.fit(*block_statistics(fit.numpy(), BLOCKS))
    enc.fit_recent_scale(fit.numpy())
    scaled = enc(fit, torch.zeros(400, K))[:, 24:40]
    torch.testing.assert_close(scaled.std(dim=0, unbiased=False), torch.ones(16), atol=0.02, rtol=0)
    assert float(enc(fit * 1e4, torch.zeros(400, K))[:, 24:40].detach().abs().max()) <= 10.0
    # Causal within the window: only the newest 3 rows are read.
    older = state.clone()
    older[:, 12:21] += 5.0  # bars_a's rows 0-2
    torch.testing.assert_close(enc(older, account)[:, 24:40], enc(state, account)[:, 24:40])
    # A layout without windows (basic) has nothing to change: the option is a no-op there.
    flat_only = StructuredEncoder([BLOCKS[2]], WIDTH, K, input_norm=True, recent_rows=2, recent_diff=True)
    flat_only.fit_recent_scale(fit.numpy())
    assert flat_only(state, account).shape == (5, flat_only.out_dim) and flat_only.recent_scale.numel() == 0
    with pytest.raises(ValueError, match="recent_diff needs"):
        _encoder(recent_rows=2, recent_diff=True)
    with pytest.raises(ValueError, match="needs recent_diff"):
        levels.fit_recent_scale(fit.numpy())


# ---------------------------------------------------------------------------------------- learner
SMALL = {"batch_size": 8, "buffer_size": 64, "lr": 1e-3, "network": "structured"}
SMALL |= {"encoder_channels": (4,), "encoder_patches": (3,), "encoder_hidden": (8,)}


def _sample(seed: int) -> ReplaySample:
    rng = np.random.default_rng(seed)
    t_idx = rng.integers(0, 39, 8)
    return ReplaySample(
        t_idx_B=t_idx,
        account_BK=rng.standard_normal((8, K), dtype=np.float32),
        action_B=rng.integers(0, 3, 8),
        reward_B=rng.standard_normal(8).astype(np.float32),
        discount_B=np.full(8, 0.9, dtype=np.float32),
        next_t_idx_B=t_idx + 1,
        next_account_BK=rng.standard_normal((8, K), dtype=np.float32),
        weight_B=np.ones(8, dtype=np.float32),
        tree_idx_B=np.arange(8),
    )


def test_learner_fits_both_networks_and_drops_blocks_only_in_updates() -> None:
    config = LearnerConfig.model_validate({**SMALL, "block_norm": True, "block_dropout": 0.5, "seed": 1})
    source = ArrayStateSource(np.random.default_rng(0).standard_normal((40, WIDTH), dtype=np.float32) * 4 + 2)
    runs = []
    for _ in range(2):
        learner = DQNLearner(config, WIDTH, K, blocks=BLOCKS)
        learner.fit_input_norm(source.gather(np.arange(30)))
        for net in (learner.online, learner.target):
            assert float(net.body.encoder.input_norm.mean_F[30]) == pytest.approx(
                float(source.gather(np.arange(30))[:, 30].mean()), rel=1e-5
            )
        obs = np.concatenate([source.gather(np.arange(4)), np.zeros((4, K), dtype=np.float32)], axis=1)
        q1, q2 = learner.greedy_q(obs), learner.greedy_q(obs)
        np.testing.assert_array_equal(q1, q2)  # evaluation never drops
        runs.append([learner.update(_sample(i), source).loss for i in range(3)])
    assert runs[0] == runs[1]  # same seed, same dropout draws
    no_drop = DQNLearner(config.model_copy(update={"block_dropout": 0.0}), WIDTH, K, blocks=BLOCKS)
    no_drop.fit_input_norm(source.gather(np.arange(30)))
    assert [no_drop.update(_sample(i), source).loss for i in range(3)] != runs[0]
    with pytest.raises(ValueError, match="block_norm"):
        DQNLearner(LearnerConfig.model_validate(SMALL), WIDTH, K, blocks=BLOCKS).fit_input_norm(np.zeros((4, WIDTH)))


def test_learner_fits_the_recent_change_scales_of_both_networks_after_the_standardiser() -> None:
    fields = {**SMALL, "block_norm": True, "encoder_recent_rows": 2, "encoder_recent_diff": True, "seed": 1}
    learner = DQNLearner(LearnerConfig.model_validate(fields), WIDTH, K, blocks=BLOCKS)
    states = np.random.default_rng(0).standard_normal((40, WIDTH), dtype=np.float32) * 4 + 2
    learner.fit_input_norm(states)
    scales = [net.body.encoder.recent_scale for net in (learner.online, learner.target)]
    torch.testing.assert_close(scales[0], scales[1])
    # Changes between standardised rows of unit-variance columns: about sqrt(2) apart, so scales near 1/sqrt(2).
    assert 0.5 < float(scales[0].mean()) < 0.9
    assert "body.encoder.recent_scale" in learner.online.state_dict()  # saved with the network
    with pytest.raises(ValidationError, match="encoder_recent_diff"):
        LearnerConfig.model_validate({**SMALL, "block_norm": True, "encoder_recent_diff": True})


def test_every_buffer_of_a_new_network_is_initialised_before_any_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The networks are materialised from the meta device with ``to_empty``: a buffer reset_parameters leaves out
    # holds whatever the memory held (the recent-change scales did: NaN losses and other results run to run
    # in benchmarks that train without fitting). Poison the fresh memory to make such a buffer visible.
    original = torch.nn.Module.to_empty

    def poisoned(self: torch.nn.Module, **kwargs: Any) -> torch.nn.Module:
        out = original(self, **kwargs)
        with torch.no_grad():
            for tensor in [*out.parameters(), *out.buffers()]:
                tensor.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.nn.Module, "to_empty", poisoned)
    fields = {**SMALL, "block_norm": True, "encoder_recent_rows": 2, "encoder_recent_diff": True, "seed": 1}
    learner = DQNLearner(LearnerConfig.model_validate(fields), WIDTH, K, blocks=BLOCKS)
    for net in (learner.online, learner.target):
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            assert bool(torch.isfinite(tensor).all()), name
        assert bool((net.body.encoder.recent_scale == 1.0).all())
        norm = net.input_standardiser()
        assert norm is not None and bool((norm.mean_F == 0).all()) and bool((norm.inv_std_F == 1).all())


def test_learner_saved_without_the_new_options_still_loads() -> None:
    learner = DQNLearner(LearnerConfig.model_validate(SMALL), WIDTH, K, blocks=BLOCKS)
    state = learner.state_dict()
    for key in ("block_norm", "block_dropout", "encoder_recent_rows", "encoder_recent_diff"):
        del state["config"][key]
    DQNLearner(LearnerConfig.model_validate(SMALL), WIDTH, K, blocks=BLOCKS).load_state_dict(state)
    with pytest.raises(ValueError, match="block_dropout"):
        DQNLearner(
            LearnerConfig.model_validate({**SMALL, "block_dropout": 0.2}), WIDTH, K, blocks=BLOCKS
        ).load_state_dict(state)


@pytest.mark.parametrize("fields", [{"block_norm": True}, {"block_dropout": 0.1}, {"encoder_recent_rows": 5}])
def test_config_refuses_the_options_on_the_flat_network(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="structured"):
        LearnerConfig.model_validate({"network": "flat", **fields})
    with pytest.raises(ValidationError):
        LearnerConfig.model_validate({**SMALL, "block_dropout": 1.0})


# ---------------------------------------------------------------------------------------- acting on encoded chunks
def _acting_learner(**fields: Any) -> DQNLearner:
    config = LearnerConfig.model_validate({**SMALL, "block_norm": True, "encoder_recent_rows": 2, "seed": 3, **fields})
    learner = DQNLearner(config, WIDTH, K, blocks=BLOCKS)
    learner.fit_input_norm(np.random.default_rng(1).standard_normal((30, WIDTH), dtype=np.float32) * 3 + 1)
    return learner


@pytest.mark.parametrize(
    "fields", [{}, {"distributional": True}, {"exploration": "noisy"}, {"encoder_recent_diff": True}]
)
def test_encoded_chunks_give_the_greedy_actions_of_act_row_by_row(fields: dict[str, Any]) -> None:
    learner = _acting_learner(**fields)
    rng = np.random.default_rng(2)
    states = rng.standard_normal((64, WIDTH), dtype=np.float32) * 3 + 1
    obs = np.concatenate([states, rng.standard_normal((64, K), dtype=np.float32) * 3], axis=1)
    encoded = learner.encode_states(states)
    encoder = learner.online.body.encoder
    with torch.no_grad(), learner.evaluating():
        one_by_one = torch.cat([encoder.encode_state(torch.from_numpy(states[j : j + 1])) for j in range(64)])
    # A row's encoding does not depend on the chunk around it, up to the products' summation order.
    torch.testing.assert_close(encoded, one_by_one, rtol=1e-5, atol=1e-6)
    chunked = np.concatenate([learner.act_encoded(encoded[j : j + 1], obs[j : j + 1]) for j in range(64)])
    plain = np.concatenate([learner.act(obs[j : j + 1], 0, greedy=True) for j in range(64)])
    np.testing.assert_array_equal(chunked, plain)
    assert len(set(plain.tolist())) > 1  # the accounts move the actions: the head really reads them
    assert learner.online.training  # acting greedily left the training mode as it was


def test_evaluating_switches_to_eval_mode_once_and_restores_the_mode() -> None:
    learner = _acting_learner()
    assert learner.online.training
    with learner.evaluating():
        assert not learner.online.training
        with learner.evaluating():
            assert not learner.online.training
        assert not learner.online.training  # the inner block found eval mode and left it
    assert learner.online.training
    learner.online.eval()
    with learner.evaluating():
        assert not learner.online.training
    assert not learner.online.training


def test_a_flat_network_has_no_encoded_acting() -> None:
    learner = DQNLearner(LearnerConfig.model_validate({"batch_size": 8, "buffer_size": 64, "hidden": (8,)}), WIDTH, K)
    assert not learner.encodes_states and _acting_learner().encodes_states
    with pytest.raises(ValueError, match="structured encoder"):
        learner.encode_states(np.zeros((2, WIDTH), dtype=np.float32))
