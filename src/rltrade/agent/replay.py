"""Prioritized experience replay that stores bytes per transition, not state vectors.

Proportional prioritization (Schaul et al. 2016, "Prioritized Experience Replay", §3.3):

- priority ``p_i = (|δ_i| + ε)^α``; sampling probability ``P(i) = p_i / Σ_j p_j``; a new transition
  enters at the largest priority seen so far, so it is replayed at least once soon.
- stratified sampling: the total is cut into ``B`` equal segments and one value is drawn uniformly
  in each, then located in the sum tree (``SumTree.find_prefix_sum``).
- importance weights ``w_i = (N·P(i))^-β / max_j (N·P(j))^-β = (p_i / p_min)^-β``: the largest weight
  is 1 and the minimum priority comes from the tree's parallel min tree.

A transition stores the *time index* of its state and of its n-step next state (a ``StateSource``
gathers the 15,588-feature vectors on demand), the small account vector of both, the action, the
n-step return and the bootstrap discount (0 after termination, so "done" needs no field). With
``account_dim = 8`` that is 81 bytes of record, plus about 38 of priority bookkeeping (two float64
trees of size ``2·2^⌈log2 N⌉`` and a float32 |δ|+ε per slot): about 119 MB (113 MiB) for a million
transitions, against 62 GB for state vectors (``benchmarks/bench_replay_memory.py`` measures it).

``prioritized=False`` gives the plain uniform replay of DQN (no trees, i.i.d. uniform slots, unit
weights) for the PER on/off ablation.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psutil
import torch

from rltrade.agent.batches import ReplaySample, Transitions
from rltrade.agent.sumtree import SumTree

_STATE_VERSION: Final = 1
_MAX_T_IDX: Final = int(np.iinfo(np.int32).max)


class ReplayMemoryWarning(UserWarning):
    """The requested replay capacity does not fit in the RAM available now."""


class ReplayStateError(ValueError):
    """A replay state dict does not fit this buffer (other capacity, layout or version)."""


def record_dtype(account_dim: int) -> np.dtype[Any]:
    """Describe the packed per-transition record (no padding: its itemsize is the bytes per transition).

    Dtypes, on purpose:
    - time indices int32: rows of the base clock; 2^31 one-second steps are 68 years (a month is 2.6 M).
      ``add`` refuses larger ones rather than wrapping. Returned widened to int64.
    - account float32, not float16: it is a handful of numbers, so half precision would save only
      ``4·K`` bytes, while float16 is exact for integers only up to 2048 (time in trade in seconds),
      overflows at 65,504 and keeps ~3 significant digits of PnL. float32 is what the env produced,
      so the learner sees exactly the account the policy acted on.
    - action uint8 (the default has 3 actions; 256 is far beyond any discrete action set here).
    - n-step return and discount float32, the dtype the learner computes in.
    """
    if account_dim < 0:
        raise ValueError(f"account_dim must be ≥ 0, got {account_dim}")
    return np.dtype(
        [
            ("t_idx", np.int32),
            ("next_t_idx", np.int32),
            ("action", np.uint8),
            ("reward", np.float32),
            ("discount", np.float32),
            ("account", np.float32, (account_dim,)),
            ("next_account", np.float32, (account_dim,)),
        ],
        align=False,
    )


class PrioritizedReplay:
    """Ring buffer of n-step transitions with proportional prioritized (or uniform) sampling.

    Sample, compute TD errors, then ``update_priorities`` with the sample's ``tree_idx_B`` before
    adding more transitions: a slot overwritten in between would get the priority of the old one.
    """

    def __init__(
        self,
        capacity: int,
        account_dim: int,
        *,
        alpha: float = 0.6,
        eps: float = 1e-6,
        rng: np.random.Generator,
        prioritized: bool = True,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be ≥ 1, got {capacity}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"replay alpha must lie in [0, 1], got {alpha}")
        if not np.float32(eps) > 0.0:
            raise ValueError(f"replay eps must be > 0 in float32 (it keeps every priority positive), got {eps}")
        self.capacity, self.account_dim = int(capacity), int(account_dim)
        self.prioritized = bool(prioritized)
        self.eps = float(eps)
        self._alpha = float(alpha)
        self._rng = rng
        self._dtype = record_dtype(self.account_dim)
        _warn_if_too_big(self.capacity, self._dtype.itemsize, self.prioritized)
        self._data = np.zeros(self.capacity, dtype=self._dtype)
        self._size = 0
        self._ptr = 0  # next slot to write
        # Per slot |δ|+ε as float32: priorities are recomputed from it when α changes.
        self._td_eps = np.zeros(self.capacity if self.prioritized else 0, dtype=np.float32)
        self._tree = SumTree(self.capacity) if self.prioritized else None
        self._max_td_eps = 1.0  # largest |δ|+ε seen; new transitions enter at its priority

    # ----------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        """Return the number of transitions stored."""
        return self._size

    @property
    def alpha(self) -> float:
        """The priority exponent α."""
        return self._alpha

    def nbytes(self) -> int:
        """Bytes of all preallocated storage: records, trees and per-slot |δ|+ε."""
        tree = 0 if self._tree is None else self._tree.nbytes
        return int(self._data.nbytes + self._td_eps.nbytes + tree)

    def bytes_per_transition(self) -> float:
        """``nbytes() / capacity``."""
        return self.nbytes() / self.capacity

    def priorities(self) -> np.ndarray:
        """Return the current priorities ``(|δ|+ε)^α`` of the stored transitions, by slot (float64 ``[len]``)."""
        if self._tree is None:
            return np.ones(self._size)
        return self._tree.get(np.arange(self._size))

    # ----------------------------------------------------------------------------------- writing
    def add(self, batch: Transitions) -> np.ndarray:
        """Store a batch of transitions at the maximum priority; return their slots (int64).

        The buffer is a ring: once full, the oldest transitions are overwritten first. A batch longer
        than the capacity keeps only its last ``capacity`` transitions, as adding them one by one would.
        """
        columns = self._validate(batch)
        n = int(columns["t_idx"].shape[0])
        skip = max(0, n - self.capacity)
        slots = (self._ptr + skip + np.arange(n - skip)) % self.capacity
        for field, column in columns.items():
            self._data[field][slots] = column[skip:]
        if self._tree is not None:
            self._td_eps[slots] = self._max_td_eps
            self._tree.update(slots, self._priority(self._td_eps[slots]))
        self._ptr = (self._ptr + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        return slots.astype(np.int64)

    def update_priorities(self, tree_idx_B: npt.ArrayLike, td_abs_B: npt.ArrayLike) -> None:
        """Set the priorities of sampled slots to ``(|δ| + ε)^α``; repeated slots: the last one wins.

        A no-op in uniform mode (after the same checks, so a bad call fails in both modes).
        """
        idx = np.asarray(tree_idx_B)
        td = np.asarray(td_abs_B, dtype=np.float64)
        if idx.ndim != 1 or td.shape != idx.shape:
            raise ValueError(f"update_priorities: need two 1-D arrays of one length, got {idx.shape}, {td.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"update_priorities: tree_idx_B must be integers, got {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            raise IndexError(
                f"update_priorities: slots must lie in [0, {self._size}) (the filled part), "
                f"got range [{idx.min()}, {idx.max()}]"
            )
        if not (np.all(np.isfinite(td)) and np.all(td >= 0.0)):
            bad = int(np.flatnonzero(~(np.isfinite(td) & (td >= 0.0)))[0])
            raise ValueError(
                f"update_priorities: |TD error| {td[bad]!r} at position {bad} is not a finite number ≥ 0 "
                "(a NaN here usually means the loss diverged)"
            )
        if self._tree is None or idx.size == 0:
            return
        td_eps = (td + self.eps).astype(np.float32)
        uniq, first_in_reversed = np.unique(idx[::-1], return_index=True)
        self._td_eps[uniq] = td_eps[idx.size - 1 - first_in_reversed]
        self._tree.update(uniq, self._priority(self._td_eps[uniq]))
        self._max_td_eps = max(self._max_td_eps, float(td_eps.max()))

    def set_alpha(self, alpha: float) -> None:
        """Change α (annealing): every stored priority becomes ``(|δ|+ε)^α_new`` exactly."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"replay alpha must lie in [0, 1], got {alpha}")
        if alpha == self._alpha:
            return
        self._alpha = float(alpha)
        if self._tree is not None:
            self._tree.rebuild(self._priority(self._td_eps[: self._size]))

    # ----------------------------------------------------------------------------------- sampling
    def sample(self, batch_size: int, beta: float) -> ReplaySample:
        """Draw ``batch_size`` transitions (with replacement) and their importance weights."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer; add transitions first")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if self._tree is None:
            slots = self._rng.integers(0, self._size, size=batch_size)
            weight = np.ones(batch_size, dtype=np.float32)
        else:
            total = self._tree.total()
            u = (np.arange(batch_size) + self._rng.random(batch_size)) * (total / batch_size)
            u = np.minimum(u, np.nextafter(total, 0.0))  # rounding must not reach the total
            # Written slots are a prefix [0, size), so clipping repairs a rounding overshoot exactly.
            slots = np.minimum(self._tree.find_prefix_sum(u), self._size - 1)
            weight = ((self._tree.get(slots) / self._tree.min()) ** (-beta)).astype(np.float32)
        rec = self._data[slots]
        return ReplaySample(
            t_idx_B=rec["t_idx"].astype(np.int64),
            account_BK=np.ascontiguousarray(rec["account"]),
            action_B=rec["action"].astype(np.int64),
            reward_B=np.ascontiguousarray(rec["reward"]),
            discount_B=np.ascontiguousarray(rec["discount"]),
            next_t_idx_B=rec["next_t_idx"].astype(np.int64),
            next_account_BK=np.ascontiguousarray(rec["next_account"]),
            weight_B=weight,
            tree_idx_B=slots.astype(np.int64),
        )

    # ----------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Contents, counters and generator state as tensors, numbers and one string.

        Only the filled part is saved. Tensors (not numpy arrays) because ``torch.load(weights_only=True)``
        refuses numpy arrays; the generator state is a JSON string because it holds 128-bit integers
        (PCG64) or arrays (other bit generators). Trees are rebuilt from |δ|+ε on load, bit for bit.
        """
        n = self._size
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "capacity": self.capacity,
            "account_dim": self.account_dim,
            "prioritized": self.prioritized,
            "alpha": self._alpha,
            "eps": self.eps,
            "size": n,
            "ptr": self._ptr,
            "max_td_eps": self._max_td_eps,
            "td_eps": torch.from_numpy(self._td_eps[:n].copy()),
            "rng": generator_state(self._rng),
        }
        for field in self._dtype.names or ():
            state[f"data.{field}"] = torch.from_numpy(np.array(self._data[field][:n], order="C"))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` into a buffer built with the same capacity, layout and mode.

        Restores the generator too, so sampling continues exactly where the saved buffer stood.
        """
        expected = {
            "version": _STATE_VERSION,
            "capacity": self.capacity,
            "account_dim": self.account_dim,
            "prioritized": self.prioritized,
        }
        found = {key: state.get(key) for key in expected}
        if found != expected:
            raise ReplayStateError(
                f"replay state was saved with {found}, this buffer has {expected}; "
                "build the buffer with the saved run's capacity and account layout"
            )
        n = int(state["size"])
        if not 0 <= n <= self.capacity:
            raise ReplayStateError(f"replay state: size {n} outside [0, {self.capacity}]")
        data = np.zeros(self.capacity, dtype=self._dtype)
        for field in self._dtype.names or ():
            column = _as_numpy(state[f"data.{field}"])
            if column.shape != (n, *self._dtype[field].shape):
                raise ReplayStateError(f"replay state: field {field!r} has shape {column.shape}, expected size {n}")
            data[field][:n] = column
        td_eps = _as_numpy(state["td_eps"]).astype(np.float32)
        if td_eps.shape != ((n,) if self.prioritized else (0,)):
            raise ReplayStateError(f"replay state: td_eps has shape {td_eps.shape}, expected ({n},)")
        restore_generator(self._rng, state["rng"])
        self._data, self._size, self._ptr = data, n, int(state["ptr"])
        self._alpha, self.eps = float(state["alpha"]), float(state["eps"])
        self._max_td_eps = float(state["max_td_eps"])
        if self._tree is not None:
            self._td_eps[:] = 0.0
            self._td_eps[:n] = td_eps
            self._tree.rebuild(self._priority(td_eps))

    # ----------------------------------------------------------------------------------- helpers
    def _priority(self, td_eps: np.ndarray) -> np.ndarray:
        return td_eps.astype(np.float64) ** self._alpha

    def _validate(self, batch: Transitions) -> dict[str, np.ndarray]:
        """Check a batch and return its columns keyed by record field (accounts as float32)."""
        t_idx = np.asarray(batch.t_idx_B)
        if t_idx.ndim != 1:
            raise ValueError(f"add: t_idx_B must be 1-D, got shape {t_idx.shape}")
        n = int(t_idx.shape[0])
        columns = {
            "t_idx": t_idx,
            "next_t_idx": np.asarray(batch.next_t_idx_B),
            "action": np.asarray(batch.action_B),
            "reward": np.asarray(batch.reward_B, dtype=np.float32),
            "discount": np.asarray(batch.discount_B, dtype=np.float32),
            "account": np.asarray(batch.account_BK, dtype=np.float32),
            "next_account": np.asarray(batch.next_account_BK, dtype=np.float32),
        }
        for field, column in columns.items():
            expected = (n, *self._dtype[field].shape)
            if column.shape != expected:
                raise ValueError(f"add: {field} has shape {column.shape}, expected {expected}")
            if column.dtype.kind == "f" and not np.all(np.isfinite(column)):
                raise ValueError(f"add: {field} holds non-finite values (row {_first_bad_row(column)})")
        if n == 0:
            return columns
        for field in ("t_idx", "next_t_idx"):
            column = columns[field]
            if not np.issubdtype(column.dtype, np.integer):
                raise TypeError(f"add: {field} must be integers, got {column.dtype}")
            if column.min() < 0 or column.max() > _MAX_T_IDX:
                raise ValueError(
                    f"add: {field} range [{column.min()}, {column.max()}] outside [0, 2^31): time indices "
                    "are base-clock rows stored as int32; split the period into shorter datasets"
                )
        action = columns["action"]
        if not np.issubdtype(action.dtype, np.integer) or action.min() < 0 or action.max() > 255:
            raise ValueError(
                f"add: actions must be integers in [0, 255] (stored as uint8), got {action.dtype} "
                f"in [{action.min()}, {action.max()}]"
            )
        discount = columns["discount"]
        if discount.min() < 0.0 or discount.max() > 1.0:
            raise ValueError(
                f"add: discount must lie in [0, 1] (γ^m, or 0 after termination), got "
                f"[{discount.min()}, {discount.max()}]"
            )
        return columns


def generator_state(rng: np.random.Generator) -> str:
    """Encode the generator's bit-generator state as a JSON string (exact for 128-bit ints and arrays)."""

    def encode(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
        if isinstance(obj, np.integer):
            return int(obj)
        raise TypeError(f"cannot encode {type(obj).__name__} in a generator state")

    return json.dumps(rng.bit_generator.state, default=encode, sort_keys=True)


def restore_generator(rng: np.random.Generator, state: str) -> None:
    """Put ``rng`` back into a state saved by ``generator_state`` (same bit generator type)."""

    def decode(obj: dict[str, Any]) -> Any:
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return obj

    decoded = json.loads(state, object_hook=decode)
    kind = type(rng.bit_generator).__name__
    if decoded.get("bit_generator") != kind:
        raise ReplayStateError(
            f"generator state is for {decoded.get('bit_generator')!r}, the generator given is {kind!r}"
        )
    rng.bit_generator.state = decoded


def _warn_if_too_big(capacity: int, record_bytes: int, prioritized: bool) -> None:
    leaves = 1 << (capacity - 1).bit_length()
    need = capacity * record_bytes + (capacity * 4 + 2 * 2 * leaves * 8 if prioritized else 0)
    available = psutil.virtual_memory().available
    if need > available:
        warnings.warn(
            f"replay buffer of capacity {capacity:,} needs {need / 2**30:.2f} GiB but only "
            f"{available / 2**30:.2f} GiB of RAM is available; lower the capacity or free memory",
            ReplayMemoryWarning,
            stacklevel=3,
        )


def _as_numpy(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _first_bad_row(arr: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1))[0])
