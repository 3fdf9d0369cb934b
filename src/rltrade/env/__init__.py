"""rltrade.env layer."""
