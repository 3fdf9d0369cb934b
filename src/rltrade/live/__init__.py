"""rltrade.live layer."""
