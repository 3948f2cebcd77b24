"""Statistics shared by research layers: Sharpe/PSR/DSR and backtest-overfitting diagnostics (PBO, PSI)."""

from lake_assets.stats.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_ratio,
)

__all__ = [
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "return_moments",
    "sharpe_ratio",
]
