"""rltrade.training layer."""
