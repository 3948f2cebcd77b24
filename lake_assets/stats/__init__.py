"""Statistics shared by research layers: Sharpe/PSR/DSR and backtest-overfitting diagnostics (PBO, PSI)."""

from lake_assets.stats.overfitting import (
    PBOResult,
    probability_of_backtest_overfitting,
    psi,
    psi_categorical,
    psi_status,
    psi_table,
)
from lake_assets.stats.sharpe import (
    deflated_sharpe_for_search,
    deflated_sharpe_from_returns,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
    search_trials,
    sharpe_ratio,
)

__all__ = [
    "PBOResult",
    "deflated_sharpe_for_search",
    "deflated_sharpe_from_returns",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "psi",
    "psi_categorical",
    "psi_status",
    "psi_table",
    "return_moments",
    "search_trials",
    "sharpe_ratio",
]
