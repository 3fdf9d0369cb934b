"""Q-networks: noisy layers, the reused-gradient first layer, dueling/C51 heads, the structured encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rltrade.agent.encoder import (
    BlockSpec,
    PatchStack,
    StructuredEncoder,
    full_layout_blocks,
    structured_q_network,
)
from rltrade.agent.networks import FlatBody, QNetwork, ReusedGradLinear, flat_q_network, parameter_count
from rltrade.agent.noisy import NoisyLinear


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------- noisy layer
def test_noisy_linear_applies_factorised_noise_and_means_in_eval() -> None:
    layer = NoisyLinear(5, 3, sigma0=0.5)
    layer.reset_parameters(_gen(0))
    assert torch.all(layer.weight_sigma == 0.5 / np.sqrt(5))
    layer.reset_noise(_gen(1))
    x = torch.randn(4, 5, generator=_gen(2))
    weight, bias = layer.effective_weight()
    torch.testing.assert_close(layer(x), x @ weight.T + bias)
    # The weight noise is the outer product f(ε_out) ⊗ f(ε_in) with f(x) = sgn(x)·√|x|.
    noise = (weight - layer.weight_mu) / layer.weight_sigma
    assert torch.linalg.matrix_rank(noise.detach()) == 1
    raw = torch.randn(5, generator=_gen(1))
    torch.testing.assert_close(layer.eps_in, raw.sign() * raw.abs().sqrt())
    layer.eval()
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)


def test_noisy_linear_noise_is_drawn_only_from_the_given_generator() -> None:
    a, b = NoisyLinear(4, 2), NoisyLinear(4, 2)
    a.reset_parameters(_gen(0))
    b.reset_parameters(_gen(0))
    global_state = torch.random.get_rng_state()
    a.reset_noise(_gen(5))
    b.reset_noise(_gen(5))
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert torch.equal(a.eps_in, b.eps_in) and torch.equal(a.eps_out, b.eps_out)
    x = torch.ones(1, 4)
    before = a(x)
    assert torch.equal(a(x), before)  # no resampling inside forward
    a.reset_noise(_gen(6))
    assert not torch.equal(a(x), before)


def test_noisy_linear_gradients_reach_means_and_scales() -> None:
    layer = NoisyLinear(3, 2)
    layer.reset_parameters(_gen(0))
    layer.reset_noise(_gen(1))
    layer(torch.ones(2, 3)).sum().backward()
    for p in (layer.weight_mu, layer.weight_sigma, layer.bias_mu, layer.bias_sigma):
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0


# ---------------------------------------------------------------------------------------- reused grad
def _twin_layers() -> tuple[ReusedGradLinear, nn.Linear]:
    fast, ref = ReusedGradLinear(6, 4), nn.Linear(6, 4)
    with torch.no_grad():
        for p in (*fast.parameters(), *ref.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape).sin())
        ref.load_state_dict(fast.state_dict())
    return fast, ref


def test_reused_grad_linear_matches_autograd_and_reuses_its_buffer() -> None:
    fast, ref = _twin_layers()
    x = torch.randn(5, 6, generator=_gen(0))
    pointers = set()
    for step in range(3):
        g = torch.randn(5, 4, generator=_gen(step + 1))
        fast.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        fast(x).backward(g)
        ref(x).backward(g)
        assert fast.weight.grad is not None and ref.weight.grad is not None
        torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=0, atol=0)
        torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=0, atol=0)
        pointers.add(fast.weight.grad.data_ptr())
    assert len(pointers) == 1  # one buffer across steps, no fresh allocation


def test_reused_grad_linear_on_column_blocks_equals_linear_on_the_concatenation() -> None:
    fast, ref = _twin_layers()
    x_ref = torch.randn(5, 6, generator=_gen(0), requires_grad=True)
    left = x_ref.detach()[:, :4].clone().requires_grad_(True)
    right = x_ref.detach()[:, 4:].clone().requires_grad_(True)
    for _ in range(2):  # two backward passes without zeroing: gradients add up
        (fast(left, right) ** 2).sum().backward()
        (ref(x_ref) ** 2).sum().backward()
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad)
    assert left.grad is not None and right.grad is not None and x_ref.grad is not None
    torch.testing.assert_close(torch.cat([left.grad, right.grad], dim=1), x_ref.grad)
    with torch.no_grad():
        torch.testing.assert_close(fast(left, right), ref(x_ref))
    with pytest.raises(ValueError, match="6 columns"):
        fast(left)


# ---------------------------------------------------------------------------------------- Q heads
@pytest.mark.parametrize("dueling", [True, False])
@pytest.mark.parametrize("n_atoms", [1, 11])
@pytest.mark.parametrize("noisy", [True, False])
def test_flat_network_shapes_and_q_values(dueling: bool, n_atoms: int, noisy: bool) -> None:
    net = flat_q_network(
        5, 2, _gen(), hidden=(16, 8), n_actions=3, dueling=dueling, noisy=noisy, n_atoms=n_atoms, v_min=-2, v_max=3
    )
    state, account = torch.randn(4, 5, generator=_gen(1)), torch.randn(4, 2, generator=_gen(2))
    out = net(state, account)
    q_BA = net.q_values(state, account)
    assert q_BA.shape == (4, 3)
    if n_atoms == 1:
        assert out.shape == (4, 3)
    else:
        assert out.shape == (4, 3, n_atoms)
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(4, 3))
        torch.testing.assert_close(q_BA, (out.exp() * torch.linspace(-2, 3, n_atoms)).sum(-1))
    assert net.has_noise == noisy
    assert isinstance(net.body, FlatBody)
    assert not isinstance(net.body.linear, NoisyLinear)  # the wide input layer never carries noise


def test_dueling_head_combines_value_and_mean_centred_advantage() -> None:
    net = flat_q_network(5, 0, _gen(), hidden=(8, 8), n_actions=4, dueling=True)
    obs = (torch.randn(3, 5, generator=_gen(1)), torch.zeros(3, 0))
    h = net.head.hidden(net.body(*obs))
    assert net.head.value is not None
    value_B, adv_BA = net.head.value(h)[:, 0], net.head.advantage(h)
    torch.testing.assert_close(net(*obs), value_B[:, None] + adv_BA - adv_BA.mean(1, keepdim=True))
    torch.testing.assert_close(net(*obs).mean(1), value_B)


def test_networks_are_initialised_from_the_generator_only() -> None:
    global_state = torch.random.get_rng_state()
    a = flat_q_network(7, 2, _gen(3), hidden=(8, 4))
    b = flat_q_network(7, 2, _gen(3), hidden=(8, 4))
    c = flat_q_network(7, 2, _gen(4), hidden=(8, 4))
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert isinstance(a.body, FlatBody) and isinstance(c.body, FlatBody)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.body.linear.weight, c.body.linear.weight)
    # Default nn.Linear scale: U(-1/√fan_in, 1/√fan_in).
    assert float(a.body.linear.weight.detach().abs().max()) <= 1 / np.sqrt(9)


def test_network_validates_sizes() -> None:
    with pytest.raises(ValueError, match="at least 2 actions"):
        flat_q_network(4, 0, _gen(), hidden=(8,), n_actions=1)
    with pytest.raises(ValueError, match="v_min < v_max"):
        flat_q_network(4, 0, _gen(), hidden=(8,), n_atoms=5, v_min=1.0, v_max=1.0)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        flat_q_network(4, 0, _gen(), hidden=())


# ---------------------------------------------------------------------------------------- encoder
def test_block_spec_rejects_inconsistent_blocks() -> None:
    with pytest.raises(ValueError, match="holds 6 values"):
        BlockSpec("a", (2, 3), 0, 5, "bars")
    with pytest.raises(ValueError, match="kind must be"):
        BlockSpec("a", (4,), 0, 4, "image")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows, channels"):
        BlockSpec("a", (2, 2, 2), 0, 8, "ticks")
    with pytest.raises(ValueError, match="start < stop"):
        BlockSpec("a", (0,), 3, 3, "flat")


def test_encoder_rejects_bad_layouts() -> None:
    a = BlockSpec("a", (4, 2), 0, 8, "bars")
    with pytest.raises(ValueError, match="overlap"):
        StructuredEncoder([a, BlockSpec("b", (3,), 7, 10, "flat")], 12, 0)
    with pytest.raises(ValueError, match="past the state width"):
        StructuredEncoder([a], 7, 2)
    with pytest.raises(ValueError, match="unique"):
        StructuredEncoder([a, BlockSpec("a", (2,), 8, 10, "flat")], 10, 0)


@pytest.mark.parametrize("rows", [12, 13, 7])
def test_patch_stack_is_a_strided_convolution(rows: int) -> None:
    stack = PatchStack(rows, 3, channels=(5, 4), patches=(2, 3))
    gen = _gen(0)
    for lin in stack.stages:
        assert isinstance(lin, nn.Linear)
        nn.init.normal_(lin.weight, generator=gen)
        nn.init.normal_(lin.bias, generator=gen)
    x_NWC = torch.randn(2, rows, 3, generator=_gen(1))
    # Oracle: conv1d over [N, C, W] with kernel = stride, zero padding before the oldest row.
    h = x_NWC.transpose(1, 2)
    for k, lin in zip(stack.patches, stack.stages, strict=True):
        assert isinstance(lin, nn.Linear)
        c_in = h.shape[1]
        h = F.pad(h, ((-h.shape[2]) % k, 0))
        weight = lin.weight.view(lin.out_features, k, c_in).permute(0, 2, 1)
        h = F.relu(F.conv1d(h, weight, lin.bias, stride=k))
    expected = h.transpose(1, 2).reshape(2, -1)
    torch.testing.assert_close(stack(x_NWC), expected)
    assert stack.out_dim == expected.shape[1]


def test_patch_stack_reads_a_strided_view_of_back_to_back_windows_like_their_copy() -> None:
    # Two 6-row windows inside wider state rows: the stack reads the strided view in place (batched
    # product) and must give the values and weight gradients of the same windows copied out.
    stack = PatchStack(6, 3, channels=(4, 5), patches=(3, 2))
    assert stack.stackable
    state = torch.randn(4, 50, generator=_gen(0))
    view_NRC = state[:, 7:43].unflatten(1, (12, 3))
    assert not view_NRC.is_contiguous()
    copy_NRC = view_NRC.contiguous()
    out_view, out_copy = stack(view_NRC), stack(copy_NRC)
    torch.testing.assert_close(out_view, out_copy)
    grads = []
    for out in (out_view, out_copy):
        stack.zero_grad()
        (out * torch.arange(out.shape[1])).sum().backward()
        grads.append([p.grad.clone() for p in stack.parameters() if p.grad is not None])
    for g_view, g_copy in zip(*grads, strict=True):
        torch.testing.assert_close(g_view, g_copy)
    # Each window alone gives its half of the features.
    torch.testing.assert_close(out_view[:, : stack.out_dim], stack(copy_NRC[:, :6]))


def _layout() -> tuple[list[BlockSpec], int]:
    blocks = [
        BlockSpec("ticks", (6, 2), 0, 12, "ticks"),
        BlockSpec("bars_a", (6, 3), 12, 30, "bars"),
        BlockSpec("flags", (2,), 30, 32, "flat"),
        BlockSpec("bars_b", (6, 3), 32, 50, "bars"),
    ]
    return blocks, 52  # indices 50, 51: covered by no block


def test_encoder_reads_each_block_alone_and_passes_flat_values_through() -> None:
    blocks, width = _layout()
    enc = StructuredEncoder(blocks, width, 3, channels=(4,), patches=(3,))
    state, account = torch.randn(3, width, generator=_gen(0)), torch.randn(3, 3, generator=_gen(1))
    out = enc(state, account)
    assert out.shape == (3, enc.out_dim)
    assert enc.out_dim == 2 * 4 + 2 * (2 * 4) + 2 + 2 + 3
    # Pass-through: the flags block, the uncovered state indices and the account, unchanged.
    torch.testing.assert_close(out[:, -7:], torch.cat([state[:, 30:32], state[:, 50:52], account], dim=1))
    # Perturbing one window changes only that window's features.
    bumped = state.clone()
    bumped[:, 32:50] += 1.0
    changed = (enc(bumped, account) - out).abs().amax(dim=0) > 0
    bars_b_features = torch.zeros(enc.out_dim, dtype=torch.bool)
    bars_start = 8  # after the ticks group (2 patches × 4 channels)
    bars_b_features[bars_start + 8 : bars_start + 16] = True
    assert torch.equal(changed & ~bars_b_features, torch.zeros_like(changed))
    assert changed.any()


def test_encoder_shares_weights_across_windows_of_one_shape() -> None:
    blocks, width = _layout()
    enc = StructuredEncoder(blocks, width, 0, channels=(4,), patches=(3,))
    assert len(enc.stacks) == 2  # one for the ticks shape, one shared by both bar windows
    state, no_account = torch.randn(2, width, generator=_gen(0)), torch.zeros(2, 0)
    swapped = state.clone()
    swapped[:, 12:30], swapped[:, 32:50] = state[:, 32:50], state[:, 12:30]
    out, out_swapped = enc(state, no_account), enc(swapped, no_account)
    torch.testing.assert_close(out_swapped[:, 8:16], out[:, 16:24])
    torch.testing.assert_close(out_swapped[:, 16:24], out[:, 8:16])


def test_structured_network_is_far_smaller_than_the_flat_one() -> None:
    blocks = full_layout_blocks()
    width = blocks[-1].stop
    flat = flat_q_network(width, 8, _gen())
    structured = structured_q_network(blocks, width, 8, _gen())
    assert isinstance(structured, QNetwork)
    assert parameter_count(flat) > 30 * parameter_count(structured)
    state, account = torch.randn(2, width, generator=_gen(1)), torch.zeros(2, 8)
    assert structured(state, account).shape == (2, 3)
    with pytest.raises(ValueError, match="width"):
        structured(state[:, :-1], account)
