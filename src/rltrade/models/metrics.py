"""Classification metrics of the CNNs' down / flat / up predictions (shared by training and evaluation).

* ``accuracy``: share of labelled windows whose arg-max class is the true class.
* ``balanced_accuracy``: mean over the classes present of the per-class recall (1/3 for any constant
  or uninformed guess; robust to a dominant flat class).
* ``log_loss``: mean ``-log p(true class)``, probabilities clipped to [1e-7, 1]; ``log 3 ≈ 1.099`` is the
  uniform guess.
* ``direction_accuracy``: on windows whose true class is down or up, the share where the predicted
  direction, ``sign(P(up) − P(down))``, matches (a tie counts as wrong). 0.5 is a coin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rltrade.models.labels import DOWN, N_CLASSES, UP

PROB_FLOOR = 1e-7


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one set of predictions (see the module docstring)."""

    n: int
    accuracy: float
    balanced_accuracy: float
    log_loss: float
    direction_accuracy: float
    n_directional: int

    def to_dict(self) -> dict[str, float | int]:
        """Return the metrics as a JSON-ready dict."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "log_loss": self.log_loss,
            "direction_accuracy": self.direction_accuracy,
            "n_directional": self.n_directional,
        }


def class_metrics(probs_B3: npt.ArrayLike, labels_B: npt.ArrayLike) -> ClassMetrics:
    """Metrics of class probabilities ``probs_B3`` against labels in {0, 1, 2} (rows labelled -1 ignored)."""
    p = np.asarray(probs_B3, dtype=np.float64)
    y = np.asarray(labels_B, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != N_CLASSES or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [B, {N_CLASSES}] and labels [B]; got {p.shape} and {y.shape}")
    keep = y >= 0
    p, y = p[keep], y[keep]
    n = int(y.shape[0])
    if n == 0:
        nan = float("nan")
        return ClassMetrics(0, nan, nan, nan, nan, 0)
    pred = p.argmax(axis=1)
    recalls = [float(np.mean(pred[y == c] == c)) for c in range(N_CLASSES) if np.any(y == c)]
    log_loss = float(-np.mean(np.log(np.clip(p[np.arange(n), y], PROB_FLOOR, 1.0))))
    directional = (y == DOWN) | (y == UP)
    edge = p[directional, UP] - p[directional, DOWN]
    truth = np.where(y[directional] == UP, 1.0, -1.0)
    n_dir = int(directional.sum())
    direction = float(np.mean(np.sign(edge) == truth)) if n_dir else float("nan")
    return ClassMetrics(n, float(np.mean(pred == y)), float(np.mean(recalls)), log_loss, direction, n_dir)
