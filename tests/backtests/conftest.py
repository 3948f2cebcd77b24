"""Shared fixtures for the backtest tests; the numba cache must be set before vectorbt/numba compile anything."""

import os

os.environ.setdefault("NUMBA_CACHE_DIR", "/work/main/.numba_cache")
