"""Market data: schemas, sources (dump files, ccxt, synthetic), store, resampling, alignment, splits."""
