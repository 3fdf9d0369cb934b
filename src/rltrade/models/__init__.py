"""rltrade.models layer."""
