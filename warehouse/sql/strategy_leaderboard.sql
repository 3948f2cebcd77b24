-- One row per strategy x book: realistic backtest metrics next to the walk-forward verdict (OOS Sharpe, PBO, DSR).
CREATE OR REPLACE VIEW strategy_leaderboard AS
SELECT
    m.strategy, m.kind, m.book, m.instruments, m.execution,
    m.total_return, m.sharpe, m.max_drawdown, m.n_trades, m.win_rate, m.fees_paid, m.funding_paid, m.identity_ok,
    w.applicable AS wf_applicable, w.n_folds AS wf_folds, w.oos_sharpe, w.oos_total_return, w.pbo, w.psr, w.dsr,
    w.max_psi, w.reason AS wf_reason,
    coalesce(w.dsr > 0.95 AND (w.pbo IS NULL OR w.pbo < 0.5), false) AS wf_survivor
FROM backtest_metrics m
LEFT JOIN walkforward w USING (strategy, book)
ORDER BY m.sharpe DESC NULLS LAST;
