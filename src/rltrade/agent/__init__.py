"""rltrade.agent layer."""
