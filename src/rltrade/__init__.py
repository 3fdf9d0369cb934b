"""rltrade: causal, reproducible RL trading for ETH/USDT with BTC/USDT as reference."""

__version__ = "0.1.0"
