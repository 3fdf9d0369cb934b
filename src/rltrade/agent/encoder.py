"""Structured encoder: small per-block encoders over the tick and bar windows, so a CPU trains fast.

The flat MLP spends ~16 M multiply-adds per state on its first layer alone (15,588 inputs × 1024).
The structured encoder reads the state's layout instead and spends ~30× fewer (~0.5 M):

    bars blocks   [W, C] windows (ETH 1s/1m/1h/1d, BTC): one ``PatchStack`` per window shape, its weights
                  shared by every window of that shape (the block's position in the output tells
                  the timeframes apart)
    ticks blocks  [N, C] trade lists: a ``PatchStack`` of their own
    flat blocks   (CNN hidden/predictions, pivots, regime, flags), every state index no block covers and
                  the account features pass through unchanged

A ``PatchStack`` is a stack of 1D convolutions whose stride equals their kernel ("patchify"): stage s
cuts the sequence into non-overlapping patches of ``patches[s]`` rows and maps each patch linearly to
``channels[s]`` features, then ReLU. Written as reshape + one matrix product it is exactly
``conv1d(kernel=k, stride=k)`` without im2col; with the default patches a 300-row window shrinks
300 → 30 → 3 rows of 16 then 32 channels.
Windows are stored row-major ``[W, C]`` (flat index ``w·C + c``); when W is not a multiple of a
stage's patch, the window is zero-padded before row 0 (the oldest row), so the newest rows always
form one full patch.

Three options, all off by default (``agent.block_norm``, ``agent.block_dropout`` and
``agent.encoder_recent_rows``):

* **input standardisation**: an :class:`~rltrade.agent.block_norm.InputStandardiser` in front of the
  blocks, fitted once on training-range states (per channel for windows, per column for flat blocks);
* **block dropout**: while the learner's update runs the online network (:func:`block_dropout`), each
  block's encoded features (a window's ``PatchStack`` output, a flat block's values) are zeroed with
  probability p per sample, the kept ones scaled by 1 / (1 − p) as in ``nn.Dropout``; draws come from
  the generator the context passes. Acting, evaluation, target values and eval mode never drop;
* **recent rows**: the newest R rows of every tick and bar window also pass through unpatched, beside its
  ``PatchStack`` features (``R × C`` more columns per window, counted as part of the window's block for
  dropout). The stack compresses each 10-row patch into 16 channels and then mixes it with 90 older rows;
  the skip path keeps the freshest rows (a 5-second lead, the last minute's bar) at full resolution.
  With ``agent.encoder_recent_diff`` the skip path passes the R row-to-row *changes* of the newest R + 1
  rows instead (a bar window's price rows are log prices relative to the window's last close, so their
  changes are the bars' log returns), each column scaled to unit standard deviation on the same
  training states as the standardiser and clipped to ±10: levels relative to the last close are running
  sums of the returns, strongly correlated from one row to the next, which a linear layer learns from
  slowly; their changes are nearly uncorrelated.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rltrade.agent.block_norm import InputStandardiser
from rltrade.agent.networks import QNetwork, build_on

BlockKind = Literal["bars", "ticks", "flat"]
RECENT_CLIP = 10.0
"""Scaled recent-row changes (``recent_diff``) are clipped to ±this, like the standardiser's values."""


@dataclass(frozen=True)
class BlockSpec:
    """One block of the observation vector: ``obs[start:stop]`` viewed as ``shape`` (row-major).

    ``kind`` says how the encoder reads it: ``bars`` and ``ticks`` are ``(rows, channels)`` windows,
    ``flat`` blocks pass through.
    """

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int
    kind: BlockKind

    def __post_init__(self) -> None:
        """Check the kind, that ``0 <= start < stop``, that the shape fills the slice, and that windows are 2-D."""
        size = 1
        for s in self.shape:
            size *= s
        if self.kind not in ("bars", "ticks", "flat"):
            raise ValueError(f"block {self.name!r}: kind must be 'bars', 'ticks' or 'flat', got {self.kind!r}")
        if not 0 <= self.start < self.stop:
            raise ValueError(f"block {self.name!r}: need 0 ≤ start < stop, got [{self.start}, {self.stop})")
        if any(s < 1 for s in self.shape) or size != self.stop - self.start:
            raise ValueError(
                f"block {self.name!r}: shape {self.shape} holds {size} values but the slice "
                f"[{self.start}, {self.stop}) holds {self.stop - self.start}"
            )
        if self.kind != "flat" and len(self.shape) != 2:
            raise ValueError(f"block {self.name!r}: a {self.kind} block has shape (rows, channels), got {self.shape}")

    @property
    def size(self) -> int:
        """The number of state columns the block spans."""
        return self.stop - self.start


class PatchStack(nn.Module):
    """Non-overlapping 1D convolutions over [rows, channels] windows: [N, G·W, C] → [N, G·out_dim].

    ``G`` windows may come back to back along the rows when no stage pads (W a multiple of the
    product of the patches): patches then never straddle two windows, and the input can be a strided
    view of the state batch, read in place instead of copied.

    Parameters
    ----------
    rows : int
        W, the window length.
    in_channels : int
        C.
    channels : Sequence[int]
        Output channels of each stage.
    patches : Sequence[int]
        Patch length (= kernel = stride) of each stage.
    """

    def __init__(self, rows: int, in_channels: int, channels: Sequence[int], patches: Sequence[int]) -> None:
        super().__init__()
        if len(channels) != len(patches) or not channels:
            raise ValueError(
                f"channels {tuple(channels)} and patches {tuple(patches)} must be non-empty and equally long"
            )
        if any(p < 1 for p in patches) or any(c < 1 for c in channels):
            raise ValueError(f"patches {tuple(patches)} and channels {tuple(channels)} must be positive")
        self.pads: list[int] = []
        self.stages = nn.ModuleList()  # of nn.Linear
        length, width = rows, in_channels
        for k, c in zip(patches, channels, strict=True):
            pad = (-length) % k
            self.pads.append(pad)
            length = (length + pad) // k
            self.stages.append(nn.Linear(k * width, c))
            width = c
        self.rows = rows
        self.patches = tuple(patches)
        self.out_rows = length
        self.out_dim = length * width
        self.stackable = not any(self.pads)
        """True when windows can be passed back to back (no stage pads)."""

    def forward(self, x_NRC: Tensor) -> Tensor:
        """Map windows ``[N, G·W, C]`` (G back-to-back windows of W rows) to features ``[N, G·out_dim]``."""
        n, r = x_NRC.shape[0], x_NRC.shape[1]
        windows = r // self.rows
        if r != self.rows and not (self.stackable and r == windows * self.rows):
            raise ValueError(
                f"PatchStack over {self.rows}-row windows got {r} rows; back-to-back windows need a "
                f"multiple of {self.rows} and patches {self.patches} that divide the window without padding"
            )
        h = x_NRC
        for pad, k, module in zip(self.pads, self.patches, self.stages, strict=True):
            stage = cast(nn.Linear, module)
            if pad:
                h = F.pad(h, (0, 0, pad, 0))
            if h.is_contiguous():
                # 2-D addmm and an in-place ReLU: ~25 % faster than nn.Linear on 3-D input + ReLU here.
                patches_PK = h.view(-1, k * h.shape[2])
                h = torch.addmm(stage.bias, patches_PK, stage.weight.t()).relu_().view(n, -1, stage.out_features)
            else:
                # A strided view of the state batch (each sample's rows contiguous): its patches are a view
                # [N, P, k·C] too, multiplied in place by a batched product; folding it into 2-D for addmm
                # would copy every window first (~40 % of the stack's forward time at the full layout).
                patches_NPK = h.reshape(n, -1, k * h.shape[2])
                weight_NKO = stage.weight.t().expand(n, -1, -1)
                h = torch.baddbmm(stage.bias, patches_NPK, weight_NKO).relu_()
        return h.reshape(n, windows * self.out_dim)


@dataclass(frozen=True)
class _WindowGroup:
    """Windows of one (kind, shape) read by one shared ``PatchStack``."""

    key: str
    rows: int
    cols: int
    starts: tuple[int, ...]
    contiguous: bool


def _ordered_blocks(blocks: Sequence[BlockSpec], state_dim: int) -> list[BlockSpec]:
    """``blocks`` by start; ``ValueError`` when two overlap, one ends past ``state_dim`` or names repeat."""
    ordered = sorted(blocks, key=lambda b: b.start)
    for a, b in itertools.pairwise(ordered):
        if b.start < a.stop:
            raise ValueError(f"blocks {a.name!r} [{a.start}, {a.stop}) and {b.name!r} [{b.start}, {b.stop}) overlap")
    if ordered and ordered[-1].stop > state_dim:
        last = ordered[-1]
        raise ValueError(f"block {last.name!r} ends at {last.stop}, past the state width {state_dim}")
    names = [b.name for b in blocks]
    if len(set(names)) != len(names):
        raise ValueError(f"block names must be unique, got {names}")
    return ordered


class StructuredEncoder(nn.Module):
    """State [B, state_dim] and account [B, K] → features [B, out_dim] by block.

    Parameters
    ----------
    blocks : Sequence[BlockSpec]
        The state's layout; blocks may not overlap and must lie inside ``state_dim``.
    state_dim : int
        Width F of the market state.
    account_dim : int
        Width K of the account vector (passed through).
    channels, patches : Sequence[int]
        The ``PatchStack`` stages used for every window shape.
    input_norm : bool
        Standardise the state columns first (an ``InputStandardiser``, identity until fitted).
    block_dropout : float
        Probability p in [0, 1) of zeroing one block's features for one sample while dropping is on
        (training mode, in a thread that entered :func:`block_dropout`).
    recent_rows : int
        R ≥ 0: the newest ``min(R, W)`` rows of each window also pass through unpatched (0: none).
    recent_diff : bool
        Pass the changes between the newest ``min(R, W − 1) + 1`` rows instead, scaled per column by
        :meth:`fit_recent_scale` (needs ``recent_rows`` and ``input_norm``).
    """

    recent_scale: Tensor

    def __init__(
        self,
        blocks: Sequence[BlockSpec],
        state_dim: int,
        account_dim: int,
        *,
        channels: Sequence[int] = (16, 32),
        patches: Sequence[int] = (10, 10),
        input_norm: bool = False,
        block_dropout: float = 0.0,
        recent_rows: int = 0,
        recent_diff: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= block_dropout < 1.0:
            raise ValueError(f"block_dropout must be in [0, 1), got {block_dropout}")
        if recent_rows < 0:
            raise ValueError(f"recent_rows must be ≥ 0, got {recent_rows}")
        if recent_diff and not (recent_rows > 0 and input_norm):
            raise ValueError("recent_diff needs recent_rows > 0 and input_norm (its scales are fitted with it)")
        ordered = _ordered_blocks(blocks, state_dim)

        windows: dict[tuple[str, tuple[int, ...]], list[BlockSpec]] = {}
        covered: list[tuple[int, int]] = []
        for b in ordered:
            if b.kind == "flat":
                continue
            windows.setdefault((b.kind, b.shape), []).append(b)
            covered.append((b.start, b.stop))
        block_id = {b.name: i for i, b in enumerate(ordered)}
        # Which block each output column belongs to (len(blocks): in none, never dropped).
        column_block: list[int] = []
        self.groups: list[_WindowGroup] = []
        self.stacks = nn.ModuleDict()
        out_dim = 0
        for (kind, shape), members in windows.items():
            key = f"{kind}_{shape[0]}x{shape[1]}"
            starts = tuple(m.start for m in members)
            contiguous = all(m.stop == n.start for m, n in itertools.pairwise(members))
            self.groups.append(_WindowGroup(key, shape[0], shape[1], starts, contiguous))
            stack = PatchStack(shape[0], shape[1], channels, patches)
            self.stacks[key] = stack
            out_dim += len(members) * stack.out_dim
            for m in members:
                column_block += [block_id[m.name]] * stack.out_dim
        # The newest rows of every window, after all the stacks' features (same group order).
        self.recent_rows, self.recent_diff = int(recent_rows), bool(recent_diff)
        recent_width = 0
        for group, members in zip(self.groups, windows.values(), strict=True):
            recent = self._recent_count(group) * group.cols
            out_dim += len(members) * recent
            recent_width += len(members) * recent
            for m in members:
                column_block += [block_id[m.name]] * recent
        if self.recent_diff:
            self.register_buffer("recent_scale", torch.ones(recent_width))
        # Every state index that is not in a window passes through, merged into as few slices as possible.
        self.flat_ranges: list[tuple[int, int]] = []
        owner = np.full(state_dim, len(ordered), dtype=np.int64)
        for b in ordered:
            owner[b.start : b.stop] = block_id[b.name]
        cursor = 0
        for start, stop in [*covered, (state_dim, state_dim)]:
            if start > cursor:
                self.flat_ranges.append((cursor, start))
                out_dim += start - cursor
                column_block += owner[cursor:start].tolist()
            cursor = stop
        column_block += [len(ordered)] * account_dim
        self.state_dim, self.account_dim = state_dim, account_dim
        self.out_dim = out_dim + account_dim
        self.n_blocks = len(ordered)
        self.block_dropout = float(block_dropout)
        self._column_block = tuple(column_block)
        self._column_block_on: dict[torch.device, Tensor] = {}
        self.input_norm = InputStandardiser(state_dim) if input_norm else None

    def forward(self, state_BF: Tensor, account_BK: Tensor, *, standardised: bool = False) -> Tensor:
        """Encode the state block by block and append the account: ``[B, out_dim]``.

        Each window group goes through its ``PatchStack``; the columns outside any block pass through.
        ``standardised``: ``state_BF`` already went through this encoder's standardiser (the learner
        standardises its gathered batches in place, once for both networks: ``InputStandardiser.standardise_``).
        """
        if state_BF.shape[-1] != self.state_dim or account_BK.shape[-1] != self.account_dim:
            raise ValueError(
                f"encoder expects states of width {self.state_dim} and accounts of width {self.account_dim}, "
                f"got {state_BF.shape[-1]} and {account_BK.shape[-1]}"
            )
        b = state_BF.shape[0]
        parts = self._state_parts(state_BF, standardised=standardised)
        parts.append(account_BK)
        out_BD = torch.cat(parts, dim=1)
        if self.training and self.block_dropout > 0.0 and self.dropout_generator is not None:
            out_BD = out_BD * self._dropout_mask(b, out_BD.device, out_BD.dtype)
        return out_BD

    def encode_state(self, state_BF: Tensor) -> Tensor:
        """Return the state's columns of :meth:`forward`'s output, ``[B, out_dim − account_dim]``, without dropout.

        For acting on many states whose accounts come one at a time (a backtest): each row depends on its
        own state only, so a chunk is encoded in one pass and each step appends its account
        (:meth:`StructuredBody.forward_encoded`).
        """
        if state_BF.ndim != 2 or state_BF.shape[-1] != self.state_dim:
            raise ValueError(f"encoder expects states of width {self.state_dim}, got shape {tuple(state_BF.shape)}")
        return torch.cat(self._state_parts(state_BF), dim=1)

    def _state_parts(self, state_BF: Tensor, *, standardised: bool = False) -> list[Tensor]:
        """Return the encoded blocks of ``state_BF``, in output order (the account goes after them)."""
        b = state_BF.shape[0]
        if self.input_norm is not None and not standardised:
            state_BF = self.input_norm(state_BF)
        parts: list[Tensor] = []
        for group in self.groups:
            g, size = len(group.starts), group.rows * group.cols
            stack = self.stacks[group.key]
            if group.contiguous and stack.stackable:
                # [B, G·W, C]: a strided view of the state batch; the first stage reads it in place.
                first = group.starts[0]
                parts.append(stack(state_BF[:, first : first + g * size].unflatten(1, (g * group.rows, group.cols))))
                continue
            if group.contiguous:
                windows = state_BF[:, group.starts[0] : group.starts[0] + g * size]
            else:
                windows = torch.cat([state_BF[:, s : s + size] for s in group.starts], dim=1)
            # [B, G·W·C] → [B·G, W, C]: windows of one sample stay adjacent, so the output reshapes back.
            parts.append(stack(windows.reshape(b * g, group.rows, group.cols)).reshape(b, -1))
        if self.recent_rows:
            recent = [self._recent(state_BF, group) for group in self.groups]
            if self.recent_diff and recent:
                recent = [(torch.cat(recent, dim=1) * self.recent_scale).clamp_(-RECENT_CLIP, RECENT_CLIP)]
            parts += recent
        parts += [state_BF[:, start:stop] for start, stop in self.flat_ranges]
        return parts

    @torch.no_grad()
    def reset_statistics(self) -> None:
        """Back to unit scales for the recent changes (``recent_diff``; called by ``QNetwork.reset_parameters``)."""
        if self.recent_diff:
            self.recent_scale.fill_(1.0)

    @torch.no_grad()
    def fit_recent_scale(self, states_NF: npt.ArrayLike, *, min_std: float = 1e-6, chunk: int = 512) -> None:
        """Scale each recent-change column to unit standard deviation over ``states_NF`` (``recent_diff``).

        ``states_NF`` must be training-range states (the standardiser's, fitted first: the changes are taken
        between standardised rows); a column whose standard deviation is below ``min_std`` keeps scale 1.
        """
        if not self.recent_diff:
            raise ValueError("fit_recent_scale needs recent_diff")
        x = torch.as_tensor(np.asarray(states_NF, dtype=np.float32))
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] != self.state_dim:
            raise ValueError(f"need at least 2 states of width {self.state_dim}, got shape {tuple(x.shape)}")
        if not self.groups:
            return  # a layout without windows (``basic``): nothing to scale
        total = torch.zeros_like(self.recent_scale, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for c0 in range(0, x.shape[0], chunk):
            part = x[c0 : c0 + chunk].to(self.recent_scale.device)
            if self.input_norm is not None:
                part = self.input_norm(part)
            d = torch.cat([self._recent(part, group) for group in self.groups], dim=1).double()
            total += d.sum(dim=0)
            squares += (d * d).sum(dim=0)
        n = x.shape[0]
        std = (squares / n - (total / n) ** 2).clamp_min(0.0).sqrt()
        self.recent_scale.copy_(torch.where(std >= min_std, 1.0 / std, torch.ones_like(std)).float())

    def _recent_count(self, group: _WindowGroup) -> int:
        """Rows (or, with ``recent_diff``, row-to-row changes) of each of ``group``'s windows on the skip path."""
        return min(self.recent_rows, group.rows - 1 if self.recent_diff else group.rows)

    @property
    def dropout_generator(self) -> torch.Generator | None:
        """The generator of the block-dropout draws in the calling thread: set only inside :func:`block_dropout`."""
        return _dropout_generators().get(self)

    def _recent(self, state_BF: Tensor, group: _WindowGroup) -> Tensor:
        """``[B, G·R·C]``: the newest R rows of each of the group's windows, oldest first (a copy).

        With ``recent_diff``: the R changes between the newest R + 1 rows (unscaled).
        """
        if self.recent_diff:
            r, size = self._recent_count(group) + 1, group.rows * group.cols
            tail = (group.rows - r) * group.cols
            if group.contiguous:  # a strided view of the state batch: the changes are taken in place, no copy
                g, first = len(group.starts), group.starts[0]
                rows_BGRC = state_BF[:, first : first + g * size].unflatten(1, (g, group.rows, group.cols))[:, :, -r:]
            else:
                rows_BGS = torch.stack([state_BF[:, s + tail : s + size] for s in group.starts], dim=1)
                rows_BGRC = rows_BGS.unflatten(2, (r, group.cols))
            changes: Tensor = rows_BGRC[:, :, 1:] - rows_BGRC[:, :, :-1]
            return changes.reshape(state_BF.shape[0], -1)
        r, size = min(self.recent_rows, group.rows), group.rows * group.cols
        tail = (group.rows - r) * group.cols
        if group.contiguous:
            g, first = len(group.starts), group.starts[0]
            windows_BGS: Tensor = state_BF[:, first : first + g * size].unflatten(1, (g, size))
            return windows_BGS[:, :, tail:].reshape(state_BF.shape[0], -1)
        return torch.cat([state_BF[:, s + tail : s + size] for s in group.starts], dim=1)

    def _dropout_mask(self, b: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``[B, out_dim]``: per sample, each block's columns 0 (probability p) or 1 / (1 − p); others 1."""
        columns = self._column_block_on.get(device)
        if columns is None:
            columns = self._column_block_on[device] = torch.tensor(self._column_block, device=device)
        p = self.block_dropout
        draws_BN = torch.rand(b, self.n_blocks, generator=self.dropout_generator, device=device)
        keep_BN = (draws_BN >= p).to(dtype) / (1.0 - p)
        keep_BN1 = torch.cat([keep_BN, torch.ones(b, 1, device=device, dtype=dtype)], dim=1)
        return keep_BN1.index_select(1, columns)  # the same values as keep_BN1[:, columns], ~6x faster on a CPU


_DROPOUT = threading.local()
"""Per thread, the encoders whose block dropout is on and their generators (``generators``: a dict)."""


def _dropout_generators() -> dict[StructuredEncoder, torch.Generator]:
    """Return the calling thread's ``{encoder: generator}`` of :func:`block_dropout` (empty outside it)."""
    generators: dict[StructuredEncoder, torch.Generator] | None = getattr(_DROPOUT, "generators", None)
    if generators is None:
        generators = _DROPOUT.generators = {}
    return generators


@contextmanager
def block_dropout(network: nn.Module, generator: torch.Generator) -> Iterator[None]:
    """Turn on block dropout in every ``StructuredEncoder`` of ``network`` (training mode), drawn from ``generator``.

    Outside the context no encoder drops anything, whatever its mode. The switch is per thread: while the
    learner's update runs the online network with dropout on one thread, a forward pass of the same
    network on another thread (the next-state half of the update, ``agent.overlap_update``) drops nothing.
    """
    generators = _dropout_generators()
    encoders = [m for m in network.modules() if isinstance(m, StructuredEncoder)]
    before = {enc: generators.get(enc) for enc in encoders}
    generators.update(dict.fromkeys(encoders, generator))
    try:
        yield
    finally:
        for enc, previous in before.items():
            if previous is None:
                del generators[enc]
            else:
                generators[enc] = previous


class StructuredBody(nn.Module):
    """``StructuredEncoder`` → Linear(width) → ReLU."""

    def __init__(self, encoder: StructuredEncoder, width: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.linear = nn.Linear(encoder.out_dim, width)

    def forward(self, state_BF: Tensor, account_BK: Tensor, *, standardised: bool = False) -> Tensor:
        """Return the ReLU of the linear layer over the encoded state and account (``standardised``: the encoder's)."""
        return F.relu(self.linear(self.encoder(state_BF, account_BK, standardised=standardised)), inplace=True)

    def forward_encoded(self, encoded_BD: Tensor, account_BK: Tensor) -> Tensor:
        """:meth:`forward` from ``encoder.encode_state``'s output (eval mode: no block dropout to apply)."""
        return F.relu(self.linear(torch.cat([encoded_BD, account_BK], dim=1)), inplace=True)


def structured_q_network(
    blocks: Sequence[BlockSpec],
    state_dim: int,
    account_dim: int,
    generator: torch.Generator,
    *,
    channels: Sequence[int] = (16, 32),
    patches: Sequence[int] = (10, 10),
    hidden: Sequence[int] = (128, 128),
    input_norm: bool = False,
    block_dropout: float = 0.0,
    recent_rows: int = 0,
    recent_diff: bool = False,
    n_actions: int = 3,
    dueling: bool = True,
    noisy: bool = False,
    sigma0: float = 0.5,
    n_atoms: int = 1,
    v_min: float = -10.0,
    v_max: float = 10.0,
    device: torch.device | str = "cpu",
) -> QNetwork:
    """Build a network with encoder → Linear(hidden[0]) → ReLU as the body, then a ``QHead`` with ``hidden[1:]``.

    ``input_norm``, ``block_dropout``, ``recent_rows`` and ``recent_diff``: see :class:`StructuredEncoder`.
    """
    if len(hidden) < 1:
        raise ValueError("the structured network needs at least one hidden layer after the encoder")

    def factory() -> QNetwork:
        encoder = StructuredEncoder(
            blocks,
            state_dim,
            account_dim,
            channels=channels,
            patches=patches,
            input_norm=input_norm,
            block_dropout=block_dropout,
            recent_rows=recent_rows,
            recent_diff=recent_diff,
        )
        return QNetwork(
            StructuredBody(encoder, hidden[0]),
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


def full_layout_blocks(flags: int = 16) -> tuple[BlockSpec, ...]:
    """Return a representative copy of SPEC §2.4's default layout (for benchmarks and tests).

    Ticks 300×10, ETH 1s/1m/1h/1d and BTC 1s bars 300×8, CNN hidden 4×128, CNN predictions 4×4,
    pivots 5×10, regime 10, and ``flags`` flag values: 15,588 + ``flags`` values.
    """
    specs: list[tuple[str, tuple[int, ...], BlockKind]] = [
        ("eth_ticks", (300, 10), "ticks"),
        ("eth_1s", (300, 8), "bars"),
        ("eth_1m", (300, 8), "bars"),
        ("eth_1h", (300, 8), "bars"),
        ("eth_1d", (300, 8), "bars"),
        ("btc_1s", (300, 8), "bars"),
        ("cnn_hidden", (4, 128), "flat"),
        ("cnn_predictions", (4, 4), "flat"),
        ("pivots", (5, 10), "flat"),
        ("regime", (10,), "flat"),
        ("flags", (flags,), "flat"),
    ]
    out: list[BlockSpec] = []
    cursor = 0
    for name, shape, kind in specs:
        size = 1
        for s in shape:
            size *= s
        out.append(BlockSpec(name, shape, cursor, cursor + size, kind))
        cursor += size
    return tuple(out)
