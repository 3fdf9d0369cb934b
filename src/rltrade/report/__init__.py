"""rltrade.report layer."""
