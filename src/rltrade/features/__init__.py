"""rltrade.features layer."""
