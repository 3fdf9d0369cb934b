"""Larry Williams' recursive market-structure pivots (SPEC §2.2): definition and public API.

Definition (n = 2 neighbours and 5 levels by default; bars are usually 1m):

- **Level 0.** Bar i is a swing high when ``high[i]`` is strictly above the highs of the n bars on each
  side, ``high[i-n .. i+n]`` except itself; a swing low when ``low[i]`` is strictly below the lows of the n
  bars on each side. The first and last n bars of the series are never level-0 pivots (they lack n
  neighbours on one side).
- **Level k+1.** The same rule over the sequence of level-k highs (prices = their highs, neighbours = the
  n previous and n next level-k highs in that sequence, whatever the bars between), and separately over the
  level-k lows. Every level-(k+1) pivot is therefore also a level-k pivot.
- **Confirmation (visibility).** A level-0 pivot at bar i is visible from ``open_us[i+n] + tf_us``, the
  close of its n-th right-hand bar, the first moment every bar that decides it has closed. A level-(k+1)
  pivot is visible from the confirmation time of its n-th right-hand level-k neighbour. Confirmation
  times are strictly increasing along each level-kind sequence, so "the last confirmed pivot" is also the
  latest in bar order. Every pivot carries its bar index, time (the bar's open time), price, and
  ``confirm_us``.

Ties and special bars (all follow from strict inequality; nothing else is special-cased):

- *Equal neighbours kill the pivot.* A run of equal highs (a flat top) yields no swing high for any bar
  of the run whose equal twin lies within n bars, e.g. with n = 2 the highs ``0 1 3 3 1 0 0`` have no
  swing high. Two equal highs more than n bars apart do not see each other and can both be pivots. The same
  applies at higher levels to equal pivot prices within n places of each other in the level-k sequence.
- *Outside bars* (high above and low below their neighbours) can be a swing high and a swing low at once;
  highs and lows are separate sequences, so the bar enters both. Where the features need to order a high
  and a low on the same bar, the bar's close decides (see :mod:`rltrade.features.pivots_features`).
- *Inside bars* are ordinary neighbours: they are not skipped, and having a neighbour that is an inside
  bar does not by itself make a pivot.
- *Gaps in time* (missing bars) are not filled: neighbours are counted in bars present, and confirmation
  uses the actual open time of the n-th right-hand bar.

Three implementations that must agree: :func:`compute_pivots` (vectorised batch), :class:`PivotTracker`
(streaming, O(1) per bar) and :func:`rltrade.features.pivots_reference.reference_pivots` (plain loops,
the test oracle). Features: :func:`pivot_features` (batch, any query times) and
:meth:`PivotTracker.features` (now); columns in :data:`PIVOT_FEATURE_NAMES`.
"""

from rltrade.features.pivots_batch import (
    Pivot,
    PivotArrays,
    PivotInputError,
    PivotKind,
    PivotSet,
    compute_pivots,
)
from rltrade.features.pivots_features import (
    FEATURES_PER_LEVEL,
    PIVOT_FEATURE_NAMES,
    pivot_feature_names,
    pivot_features,
)
from rltrade.features.pivots_stream import PivotTracker

__all__ = [
    "FEATURES_PER_LEVEL",
    "PIVOT_FEATURE_NAMES",
    "Pivot",
    "PivotArrays",
    "PivotInputError",
    "PivotKind",
    "PivotSet",
    "PivotTracker",
    "compute_pivots",
    "pivot_feature_names",
    "pivot_features",
]
