"""Configuration of the per-timeframe CNNs: inputs, labels, architecture and training (SPEC §2.3).

``CnnConfig`` lives in :mod:`rltrade.config` (the ``cnn`` section of ``Config``); this module re-exports it
for the models layer.

Label defaults: the flat band is the 0.2 % round trip (taker fee 0.1 % each way), and each timeframe's
horizon is long enough that a move beyond it is common. On the real ETH/USDT data in
``shared/data/real`` the class frequencies (down / flat / up) are: 1m with 60 bars 0.33 / 0.34 / 0.33
(Aug 2024); 1h with 4 bars 0.40 / 0.18 / 0.42 (2018-2026); 1d with 1 bar 0.45 / 0.06 / 0.49; for 1s,
900 bars (15 min) ≈ the 1m month's 15-minute moves, 0.22 / 0.57 / 0.21 (the synthetic default market's
1 s day: 0.35 / 0.45 / 0.20).
"""

from __future__ import annotations

from rltrade.config import DEFAULT_HORIZONS, CnnConfig

__all__ = ["DEFAULT_HORIZONS", "CnnConfig"]
