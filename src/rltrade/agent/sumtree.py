"""Array-backed sum tree (with a parallel min tree) for proportional prioritized replay.

The tree is a binary heap in one float64 array of size ``2 * P``, where ``P`` is the smallest power of
two ≥ ``capacity``: node 1 is the root, node ``i`` has children ``2i`` and ``2i + 1``, and the leaves
(the priorities) sit at ``[P, 2P)``; index 0 is unused. Leaves past ``capacity`` stay empty forever.

Every internal node is always recomputed as ``left + right`` from its children (never adjusted by a
delta), so the whole tree is a pure function of its leaves: rebuilding from the leaves gives the same
bits as any history of updates that produced them. ``state_dict`` relies on that.

All operations are vectorised over a batch with numpy: an update touches ``B`` leaves and then walks
the ``log2 P`` levels above them, a prefix-sum search descends the levels for ``B`` values at once
(the scheme of tianshou's ``SegmentTree``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class SumTree:
    """Sums and minimum of ``capacity`` non-negative priorities, with batched updates and searches.

    Leaves never written count as 0 in the sum and are ignored by ``min()``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be ≥ 1, got {capacity}")
        self._capacity = int(capacity)
        self._leaf0 = 1 << (self._capacity - 1).bit_length()  # P: first leaf's node index
        self._depth = self._leaf0.bit_length() - 1  # levels between the root and the leaves
        self._sum = np.zeros(2 * self._leaf0, dtype=np.float64)
        # +inf marks "never written", so unwritten leaves never become the minimum.
        self._min = np.full(2 * self._leaf0, np.inf, dtype=np.float64)

    @property
    def capacity(self) -> int:
        """The number of leaves (priorities) the tree can hold."""
        return self._capacity

    @property
    def nbytes(self) -> int:
        """Bytes held by the two tree arrays."""
        return int(self._sum.nbytes + self._min.nbytes)

    def total(self) -> float:
        """Sum of all priorities (the root)."""
        return float(self._sum[1])

    def min(self) -> float:
        """Smallest priority among the leaves written so far; ``inf`` if none was written."""
        return float(self._min[1])

    def get(self, idx_B: npt.ArrayLike) -> np.ndarray:
        """Priorities at leaf indices ``idx_B`` (float64 copy; 0 for leaves never written)."""
        idx = self._check_idx(idx_B)
        priorities: np.ndarray = self._sum[idx + self._leaf0]
        return priorities

    def update(self, idx_B: npt.ArrayLike, priority_B: npt.ArrayLike) -> None:
        """Set ``priority[idx_B[i]] = priority_B[i]`` for all ``i``; ``priority_B`` may be a scalar.

        Duplicate indices behave like the same updates applied one after another: the last write
        wins. (numpy leaves the order of repeated fancy-index assignments unspecified, so the last
        occurrence of each index is selected explicitly.)
        """
        idx = self._check_idx(idx_B)
        prio = np.broadcast_to(np.asarray(priority_B, dtype=np.float64), idx.shape)
        if idx.size == 0:
            return
        if not np.all(np.isfinite(prio)) or np.any(prio < 0.0):
            bad = int(np.flatnonzero(~np.isfinite(prio) | (prio < 0.0))[0])
            raise ValueError(
                f"SumTree.update: priority {prio[bad]!r} at position {bad} (leaf {idx[bad]}) is not a "
                "finite number ≥ 0; priorities must come from finite |TD errors|"
            )
        uniq, first_in_reversed = np.unique(idx[::-1], return_index=True)
        last = idx.size - 1 - first_in_reversed
        nodes = uniq + self._leaf0
        self._sum[nodes] = prio[last]
        self._min[nodes] = prio[last]
        self._refresh_ancestors(nodes)

    def rebuild(self, priorities_N: npt.ArrayLike) -> None:
        """Replace all leaves: the first ``N`` get ``priorities_N``, the rest become unwritten."""
        prio = np.asarray(priorities_N, dtype=np.float64)
        if prio.ndim != 1 or prio.size > self._capacity:
            raise ValueError(
                f"SumTree.rebuild: need a 1-D array of at most {self._capacity} priorities, got shape {prio.shape}"
            )
        if not np.all(np.isfinite(prio)) or np.any(prio < 0.0):
            raise ValueError("SumTree.rebuild: priorities must be finite and ≥ 0")
        n, p0 = prio.size, self._leaf0
        self._sum[p0:] = 0.0
        self._min[p0:] = np.inf
        self._sum[p0 : p0 + n] = prio
        self._min[p0 : p0 + n] = prio
        lo = p0
        while lo > 1:  # one level at a time, bottom-up: the same sums `update` computes
            hi, lo = lo, lo // 2
            self._sum[lo:hi] = self._sum[2 * lo : 2 * hi : 2] + self._sum[2 * lo + 1 : 2 * hi : 2]
            self._min[lo:hi] = np.minimum(self._min[2 * lo : 2 * hi : 2], self._min[2 * lo + 1 : 2 * hi : 2])

    def find_prefix_sum(self, values_B: npt.ArrayLike) -> np.ndarray:
        """For each value ``v`` in ``[0, total())``, the leaf ``i`` with ``cum[i-1] ≤ v < cum[i]``.

        ``cum[i]`` is the sum of priorities ``0..i``, so each leaf owns a half-open interval as wide
        as its priority and a leaf of priority 0 is never returned. The descent goes right whenever
        ``v ≥ left sum``. Floating-point rounding can, very rarely, carry a value just below
        ``total()`` past the last positive leaf; the result is clipped to ``capacity - 1`` and a caller
        whose written leaves are a prefix ``[0, n)`` should clip to ``n - 1`` (the correct answer).
        Returns int64 leaf indices.
        """
        v = np.array(values_B, dtype=np.float64, ndmin=1)
        if v.ndim != 1:
            raise ValueError(f"find_prefix_sum: values must be 1-D, got shape {v.shape}")
        total = self.total()
        if v.size and not (np.all(np.isfinite(v)) and v.min() >= 0.0 and v.max() < total):
            raise ValueError(
                f"find_prefix_sum: values must lie in [0, total={total!r}); got range [{v.min()!r}, {v.max()!r}]"
            )
        node = np.ones(v.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * node
            left_sum = self._sum[left]
            go_right = v >= left_sum
            v = np.where(go_right, v - left_sum, v)
            node = left + go_right
        return np.minimum(node - self._leaf0, self._capacity - 1)

    def _check_idx(self, idx_B: npt.ArrayLike) -> np.ndarray:
        idx = np.asarray(idx_B)
        if idx.ndim > 1:
            raise ValueError(f"SumTree: indices must be a scalar or 1-D, got shape {idx.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"SumTree: indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._capacity):
            raise IndexError(
                f"SumTree: leaf indices must lie in [0, {self._capacity}), got range [{idx.min()}, {idx.max()}]"
            )
        return idx

    def _refresh_ancestors(self, nodes: np.ndarray) -> None:
        # All leaves share one depth, so each step lifts the whole batch one level. Repeated parents
        # are written several times with the same value, which is harmless.
        for _ in range(self._depth):
            nodes = nodes // 2
            left, right = 2 * nodes, 2 * nodes + 1
            self._sum[nodes] = self._sum[left] + self._sum[right]
            self._min[nodes] = np.minimum(self._min[left], self._min[right])
