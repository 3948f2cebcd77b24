-- One row per strategy x book: realistic backtest metrics next to the walk-forward verdict (OOS Sharpe, PBO, DSR).
-- Both Sharpe ratios are annualised the same way (sqrt of bars per year of the book's timeframe), so sharpe and
-- oos_sharpe of one strategy compare directly.
CREATE OR REPLACE VIEW strategy_leaderboard AS
SELECT
    m.strategy, m.kind, m.book, m.instruments, m.execution,
    m.total_return, m.sharpe, m.max_drawdown, m.n_trades, m.win_rate, m.fees_paid, m.funding_paid, m.identity_ok,
    w.applicable AS wf_applicable, w.n_folds AS wf_folds, w.oos_sharpe, w.oos_total_return, w.pbo, w.psr, w.dsr,
    w.max_psi, w.reason AS wf_reason,
    coalesce(w.dsr > 0.95 AND (w.pbo IS NULL OR w.pbo < 0.5), false) AS wf_survivor
FROM metrics m
LEFT JOIN walkforward w USING (strategy, book)
ORDER BY m.sharpe DESC NULLS LAST;
-- columns not named as in metrics / walkforward (the others take the data dictionary's comments)
COMMENT ON COLUMN strategy_leaderboard.wf_applicable IS 'walkforward.applicable: walk-forward could run';
COMMENT ON COLUMN strategy_leaderboard.wf_folds IS 'walkforward.n_folds: walk-forward folds [count]';
COMMENT ON COLUMN strategy_leaderboard.wf_reason IS 'walkforward.reason: why not applicable, or how it was evaluated';
COMMENT ON COLUMN strategy_leaderboard.wf_survivor IS 'survives walk-forward: dsr > 0.95 and (pbo null or < 0.5)';
