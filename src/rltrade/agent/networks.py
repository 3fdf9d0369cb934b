"""Q-networks: a body that turns an observation into features, and a (dueling, noisy, C51) Q head.

Glossary::

    observation  market state [F] (from a StateSource) and account [K]: mathematically the network sees
                 their concatenation [F + K]; it takes them as two tensors so that no [B, F + K] copy
                 of a 62 KB-per-row batch is ever made (the first layer multiplies each part by its
                 columns of one weight matrix)
    body       (state, account) → features: the flat MLP's first layer, or the structured encoder + its
               first layer
    head       features → hidden layers → Q; dueling: Q = V + (A − mean_a A) (Wang et al. 2016)
    C51        distributional head (Bellemare et al. 2017): per action, a categorical distribution over
               ``n_atoms`` fixed returns ``support_N`` spaced evenly in [v_min, v_max]; Q = Σ p·z
    noisy      head layers are ``NoisyLinear`` (Fortunato et al. 2017); the body's first layer is not:
               on a 15,588-wide input a noisy layer would double 16 M parameters for little gain

``QNetwork.forward(state_BF, account_BK)`` returns ``q_BA`` for a scalar head and ``log_probs_BAN``
(log-softmax over atoms) for a C51 head; ``q_values`` always returns ``q_BA``.

Every parameter is initialised from an explicit ``torch.Generator`` (``reset_parameters``): networks
are built on the meta device and materialised with ``build_on``, so construction never touches
torch's global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltrade.agent.block_norm import InputStandardiser
from rltrade.agent.noisy import NoisyLinear


@torch.no_grad()
def init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """Apply torch's default ``nn.Linear`` initialisation (Kaiming-uniform, a=√5), drawn from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class QHead(nn.Module):
    """Features [B, D] → hidden ReLU layers → Q values (scalar or C51, dueling or not).

    Parameters
    ----------
    in_dim : int
        Width D of the features.
    hidden : Sequence[int]
        Widths of the hidden layers (may be empty).
    n_actions : int
        A.
    dueling : bool
        Separate value and advantage streams, combined as V + A − mean(A).
    noisy : bool
        Use ``NoisyLinear`` for every layer of the head.
    sigma0 : float
        Initial noise scale of the noisy layers.
    n_atoms : int
        1 for a scalar Q head, N > 1 for a C51 head.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        n_actions: int,
        *,
        dueling: bool,
        noisy: bool,
        sigma0: float,
        n_atoms: int,
    ) -> None:
        super().__init__()
        if n_actions < 2:
            raise ValueError(f"a Q head needs at least 2 actions, got {n_actions}")
        if n_atoms < 1:
            raise ValueError(f"n_atoms must be ≥ 1, got {n_atoms}")

        def linear(i: int, o: int) -> nn.Module:
            return NoisyLinear(i, o, sigma0=sigma0) if noisy else nn.Linear(i, o)

        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.n_actions = n_actions
        self.n_atoms = n_atoms
        self.dueling = dueling
        self.advantage = linear(width, n_actions * n_atoms)
        self.value = linear(width, n_atoms) if dueling else None

    def forward(self, features_BD: Tensor) -> Tensor:
        """Return logits [B, A, N] (for N = 1 these are the Q values)."""
        h_BH = self.hidden(features_BD)
        adv_BAN: Tensor = self.advantage(h_BH).view(-1, self.n_actions, self.n_atoms)
        if self.value is None:
            return adv_BAN
        value_B1N: Tensor = self.value(h_BH).unsqueeze(1)
        return value_B1N + adv_BAN - adv_BAN.mean(dim=1, keepdim=True)


class QNetwork(nn.Module):
    """A body ((state, account) → features) and a ``QHead``; scalar or C51 output.

    Parameters
    ----------
    body : nn.Module
        Module mapping state [B, F] and account [B, K] to features [B, D].
    body_dim : int
        D.
    hidden, n_actions, dueling, noisy, sigma0, n_atoms
        See ``QHead``.
    v_min, v_max : float
        The C51 support's bounds (ignored for n_atoms = 1).
    """

    support_N: Tensor

    def __init__(
        self,
        body: nn.Module,
        body_dim: int,
        *,
        hidden: Sequence[int],
        n_actions: int,
        dueling: bool,
        noisy: bool = False,
        sigma0: float = 0.5,
        n_atoms: int = 1,
        v_min: float = -10.0,
        v_max: float = 10.0,
    ) -> None:
        super().__init__()
        if n_atoms > 1 and not v_min < v_max:
            raise ValueError(f"C51 support needs v_min < v_max, got [{v_min}, {v_max}]")
        self.body = body
        self.head = QHead(body_dim, hidden, n_actions, dueling=dueling, noisy=noisy, sigma0=sigma0, n_atoms=n_atoms)
        self.n_actions = n_actions
        self.n_atoms = n_atoms
        self.v_min = v_min
        self.v_max = v_max
        self.register_buffer("support_N", torch.empty(n_atoms))

    @property
    def distributional(self) -> bool:
        """Whether the head is C51 (a distribution over atoms per action)."""
        return self.n_atoms > 1

    def forward(self, state_BF: Tensor, account_BK: Tensor, *, standardised: bool = False) -> Tensor:
        """``q_BA`` for a scalar head; ``log_probs_BAN`` (log-softmax over atoms) for C51.

        ``standardised``: the states already went through the body's input standardiser
        (:meth:`input_standardiser`'s ``standardise_``), so the body skips it.
        """
        if standardised:
            return self.output_from_features(self.body(state_BF, account_BK, standardised=True))
        return self.output_from_features(self.body(state_BF, account_BK))

    def input_standardiser(self) -> InputStandardiser | None:
        """Return the body's input standardiser (a structured encoder's ``block_norm``), or None when it has none."""
        encoder = getattr(self.body, "encoder", None)
        norm = getattr(encoder, "input_norm", None)
        return norm if isinstance(norm, InputStandardiser) else None

    def output_from_features(self, features_BD: Tensor) -> Tensor:
        """:meth:`forward`'s output from the body's features (the head and, for C51, the log-softmax)."""
        logits_BAN: Tensor = self.head(features_BD)
        if self.n_atoms == 1:
            return logits_BAN.squeeze(-1)
        return F.log_softmax(logits_BAN, dim=-1)

    def q_from_output(self, out: Tensor) -> Tensor:
        """Q values [B, A] from ``forward``'s output."""
        if self.n_atoms == 1:
            return out
        return (out.exp() * self.support_N).sum(dim=-1)

    def q_values(self, state_BF: Tensor, account_BK: Tensor, *, standardised: bool = False) -> Tensor:
        """Return the Q values ``[B, A]`` at (state, account): the expectation over atoms for C51."""
        return self.q_from_output(self(state_BF, account_BK, standardised=standardised))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """(Re)initialise every parameter and buffer from ``generator`` in module order (fitted statistics: identity).

        Every buffer must be set here: :func:`build_on` materialises the network with ``to_empty``, so a buffer
        left out would hold whatever the memory held.
        """
        for module in self.modules():
            if isinstance(module, NoisyLinear):
                module.reset_parameters(generator)
            elif isinstance(module, nn.Linear):
                init_linear(module, generator)
            elif callable(reset := getattr(module, "reset_statistics", None)):
                reset()  # fitted buffers (block normalisation's statistics, the recent changes' scales): identity
        if self.n_atoms > 1:
            self.support_N.copy_(torch.linspace(self.v_min, self.v_max, self.n_atoms))
        else:
            self.support_N.zero_()

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator) -> None:
        """Resample the noise of every ``NoisyLinear`` (no-op without noisy layers)."""
        for module in self.modules():
            if isinstance(module, NoisyLinear):
                module.reset_noise(generator)

    @property
    def has_noise(self) -> bool:
        """Whether any layer is a noisy linear layer."""
        return any(isinstance(m, NoisyLinear) for m in self.modules())


def _linear_parts(weight_OI: Tensor, bias_O: Tensor, parts_BI: Sequence[Tensor]) -> Tensor:
    """``[x_1 | x_2 | …] Wᵀ + b`` without concatenating: each block times its columns of ``W``."""
    width = parts_BI[0].shape[1]
    out_BO = torch.addmm(bias_O, parts_BI[0], weight_OI[:, :width].t())
    for part in parts_BI[1:]:
        out_BO.addmm_(part, weight_OI[:, width : width + part.shape[1]].t())
        width += part.shape[1]
    return out_BO


class _ReusedGradLinearFn(torch.autograd.Function):
    """``_linear_parts`` whose backward writes the parameter gradients itself."""

    @staticmethod
    def forward(ctx: Any, layer: ReusedGradLinear, weight_OI: Tensor, bias_O: Tensor, *parts_BI: Tensor) -> Tensor:
        ctx.save_for_backward(weight_OI, *parts_BI)
        ctx.layer = layer
        return _linear_parts(weight_OI, bias_O, parts_BI)

    @staticmethod
    def backward(ctx: Any, grad_BO: Tensor) -> tuple[Tensor | None, ...]:
        weight_OI, *parts_BI = ctx.saved_tensors
        ctx.layer.accumulate_grad(grad_BO, parts_BI)
        grads: list[Tensor | None] = [None, None, None]
        start = 0
        for i, part in enumerate(parts_BI):
            width = part.shape[1]
            needs = ctx.needs_input_grad[3 + i]
            grads.append(grad_BO @ weight_OI[:, start : start + width] if needs else None)
            start += width
        return tuple(grads)


class ReusedGradLinear(nn.Linear):
    """``nn.Linear`` over column blocks of its input, with one weight-gradient buffer reused across steps.

    ``layer(x_1, x_2)`` equals ``nn.Linear``'s ``layer(torch.cat([x_1, x_2], dim=1))`` without making the
    concatenation: each block is multiplied by its columns of the weight.

    Why the reused buffer: autograd allocates a fresh ``[out, in]`` gradient every backward. For the
    flat network's first layer that is 64 MB, served by fresh ``mmap`` pages whose first-touch page faults
    cost about as much as the gradient product itself on a CPU (see
    ``benchmarks/bench_agent_updates.py``). Keeping ``zero_grad(set_to_none=False)`` does not help:
    autograd still allocates the new gradient, then adds it. Here the backward writes ``grad_outᵀ x``
    straight into a kept buffer when ``.grad`` is None (after ``zero_grad(set_to_none=True)``), or adds
    it in place into an existing ``.grad``, so accumulation semantics are autograd's. Do not hold a
    reference to ``.grad`` across backward passes: the next one overwrites the same memory.
    """

    _grad_weight: Tensor | None = None
    _grad_bias: Tensor | None = None

    def forward(self, *parts_BI: Tensor) -> Tensor:
        """Return ``[x_1 | x_2 | …] Wᵀ + b`` of the column blocks ``parts_BI`` (``[B, I_k]`` each)."""
        if sum(p.shape[-1] for p in parts_BI) != self.in_features or any(p.ndim != 2 for p in parts_BI):
            shapes = [tuple(p.shape) for p in parts_BI]
            raise ValueError(f"ReusedGradLinear expects 2-D inputs of {self.in_features} columns in all, got {shapes}")
        if self.bias is None:
            raise ValueError("ReusedGradLinear needs a bias")
        if torch.is_autocast_enabled(parts_BI[0].device.type):
            # Mixed precision: autocast's own linear (the kept float32 buffers cannot take its gradients).
            return F.linear(torch.cat(parts_BI, dim=1) if len(parts_BI) > 1 else parts_BI[0], self.weight, self.bias)
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return _linear_parts(self.weight, self.bias, parts_BI)
        # torch leaves Function.apply unannotated (it forwards to the subclass's forward()).
        out: Tensor = _ReusedGradLinearFn.apply(self, self.weight, self.bias, *parts_BI)  # type: ignore[no-untyped-call]
        return out

    @torch.no_grad()
    def accumulate_grad(self, grad_BO: Tensor, parts_BI: Sequence[Tensor]) -> None:
        """Add ``grad_BOᵀ [x_1 | x_2 | …]`` and the bias gradient to ``.grad``, reusing kept buffers."""
        if self.bias is None:
            raise ValueError("ReusedGradLinear needs a bias")
        grad_weight = self.weight.grad
        fresh = grad_weight is None
        if grad_weight is None:
            if self._grad_weight is None or self._grad_weight.shape != self.weight.shape:
                self._grad_weight = torch.empty_like(self.weight)
            grad_weight = self.weight.grad = self._grad_weight
        start = 0
        for part in parts_BI:
            columns = grad_weight[:, start : start + part.shape[1]]
            columns.addmm_(grad_BO.t(), part, beta=0.0 if fresh else 1.0)
            start += part.shape[1]
        if self.bias.grad is None:
            if self._grad_bias is None or self._grad_bias.shape != self.bias.shape:
                self._grad_bias = torch.empty_like(self.bias)
            torch.sum(grad_BO, dim=0, out=self._grad_bias)
            self.bias.grad = self._grad_bias
        else:
            self.bias.grad.add_(grad_BO.sum(dim=0))


class FlatBody(nn.Module):
    """The original design's first layer on the whole observation: (state, account) → Linear → ReLU."""

    def __init__(self, state_dim: int, account_dim: int, width: int) -> None:
        super().__init__()
        if state_dim < 1 or account_dim < 0 or width < 1:
            raise ValueError(f"flat body needs positive sizes, got {state_dim} + {account_dim} → {width}")
        self.state_dim, self.account_dim = state_dim, account_dim
        self.linear = ReusedGradLinear(state_dim + account_dim, width)

    def forward(self, state_BF: Tensor, account_BK: Tensor) -> Tensor:
        """Return the ReLU of the linear layer over the concatenated (state, account), computed block by block."""
        parts = (state_BF, account_BK) if self.account_dim else (state_BF,)
        return F.relu(self.linear(*parts), inplace=True)


def build_on(
    factory: Callable[[], QNetwork], generator: torch.Generator, device: torch.device | str = "cpu"
) -> QNetwork:
    """Build ``factory()`` on the meta device, materialise it on ``device`` and initialise it from ``generator``.

    torch's global RNG is never used and no throw-away initialisation is paid.
    """
    with torch.device("meta"):
        net = factory()
    net = net.to_empty(device=device)
    net.reset_parameters(generator)
    return net


def flat_q_network(
    state_dim: int,
    account_dim: int,
    generator: torch.Generator,
    *,
    hidden: Sequence[int] = (1024, 512),
    n_actions: int = 3,
    dueling: bool = True,
    noisy: bool = False,
    sigma0: float = 0.5,
    n_atoms: int = 1,
    v_min: float = -10.0,
    v_max: float = 10.0,
    device: torch.device | str = "cpu",
) -> QNetwork:
    """Build the flat MLP of the original design: obs → 1024 → 512 → (value, advantage) heads by default.

    ``hidden[0]`` is the body's width, ``hidden[1:]`` the head's hidden layers.
    """
    if len(hidden) < 1:
        raise ValueError("the flat network needs at least one hidden layer (hidden=(1024, 512) by default)")

    def factory() -> QNetwork:
        return QNetwork(
            FlatBody(state_dim, account_dim, hidden[0]),
            hidden[0],
            hidden=hidden[1:],
            n_actions=n_actions,
            dueling=dueling,
            noisy=noisy,
            sigma0=sigma0,
            n_atoms=n_atoms,
            v_min=v_min,
            v_max=v_max,
        )

    return build_on(factory, generator, device)


def parameter_count(module: nn.Module) -> int:
    """Return the number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
