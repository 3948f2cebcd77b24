"""Performance metrics, curves, regime breakdowns and accounting-identity checks for a `BacktestResult`.

Annualisation uses `periods_per_year` (bars per year: 252 for daily equities, 105,120 for 5m crypto) because the
engine is timeframe-agnostic. The identity checks are independent recomputations from the fills and funding
tables, so a bookkeeping bug in the kernel shows up as an error instead of cancelling out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from lake_assets.backtests.engine import BacktestResult
from lake_assets.vocabulary import CLOSE, INSTRUMENT, TS, TS_DTYPE

PERIODS_PER_YEAR = {"1d": 252.0, "1h": 24 * 365.0, "5m": 288 * 365.0, "1m": 1440 * 365.0}


def bar_returns(equity: np.ndarray) -> np.ndarray:
    prev = np.r_[np.nan, equity[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = equity / prev - 1.0
    return r[1:]


def compute_metrics(result: BacktestResult, periods_per_year: float = 252.0) -> dict[str, float]:
    """Headline metrics: returns, risk-adjusted ratios, drawdown, trade statistics, exposure, turnover, costs."""
    eq = result.equity["equity"].to_numpy()
    init = result.init_cash
    curve = np.r_[init, eq]
    r = bar_returns(curve)
    r = r[np.isfinite(r)]
    n = r.shape[0]
    total = curve[-1] / init - 1.0
    years = n / periods_per_year if n else math.nan
    cagr = (curve[-1] / init) ** (1.0 / years) - 1.0 if years and curve[-1] > 0 else math.nan
    sd = float(np.std(r, ddof=1)) if n > 1 else math.nan
    mean = float(np.mean(r)) if n else math.nan
    sharpe = mean / sd * math.sqrt(periods_per_year) if sd and sd > 0 else math.nan
    downside = np.minimum(r, 0.0)
    dd_sd = float(np.sqrt(np.mean(downside**2))) if n else math.nan
    sortino = mean / dd_sd * math.sqrt(periods_per_year) if dd_sd and dd_sd > 0 else math.nan
    peak = np.maximum.accumulate(curve)
    max_dd = float(np.max(1.0 - curve / peak))
    calmar = cagr / max_dd if max_dd > 0 and np.isfinite(cagr) else math.nan
    closed = result.trades.filter(pl.col("status") == "CLOSED")
    pnl = closed["pnl"].to_numpy()
    wins = pnl[pnl > 0].sum()
    losses = -pnl[pnl < 0].sum()
    exposure = float(np.mean(result.equity["gross_exposure"].to_numpy() > 0)) if result.equity.height else 0.0
    traded = float((result.fills["price"] * result.fills["size"]).sum()) if result.fills.height else 0.0
    mean_eq = float(np.mean(eq)) if eq.size else init
    return {
        "total_return": float(total),
        "cagr": float(cagr),
        "sharpe": float(sharpe),
        "sortino": float(sortino),
        "max_drawdown": max_dd,
        "calmar": float(calmar),
        "n_trades": float(closed.height),
        "win_rate": float(np.mean(pnl > 0)) if pnl.size else math.nan,
        "profit_factor": float(wins / losses) if losses > 0 else (math.inf if wins > 0 else math.nan),
        "avg_trade": float(np.mean(pnl)) if pnl.size else math.nan,
        "exposure": exposure,
        "turnover": traded / mean_eq / years if years and mean_eq > 0 else math.nan,
        "fees_paid": float(result.fills["fee"].sum()) if result.fills.height else 0.0,
        "funding_paid": float(result.funding_payments["payment"].sum()) if result.funding_payments.height else 0.0,
        "final_equity": float(curve[-1]),
    }


def equity_curves(result: BacktestResult) -> pl.DataFrame:
    """ts, equity, drawdown (fraction below the running peak, <= 0)."""
    return result.equity.select(TS, "equity", "drawdown")


def regime_breakdown(
    result: BacktestResult, regimes: pl.DataFrame, state_col: str, periods_per_year: float = 252.0
) -> pl.DataFrame:
    """Per regime state: bars, mean bar return, annualised Sharpe, total compounded return, and trades entered.

    `regimes` has ts and `state_col` (e.g. vol_regime); bar returns are attributed to the state at that bar."""
    eq = result.equity.select(TS, "equity").with_columns(
        ret=(pl.col("equity") / pl.col("equity").shift(1, fill_value=result.init_cash) - 1.0)
    )
    reg = regimes.select(pl.col(TS).cast(TS_DTYPE), state_col).unique(TS, keep="last")
    joined = eq.join(reg, on=TS, how="left")
    trades = result.trades.join(reg.rename({TS: "entry_ts"}), on="entry_ts", how="left")
    sqrt_p = math.sqrt(periods_per_year)
    out = (
        joined.group_by(state_col)
        .agg(
            bars=pl.len(),
            mean_return=pl.col("ret").mean(),
            sharpe=pl.col("ret").mean() / pl.col("ret").std() * sqrt_p,
            total_return=(pl.col("ret") + 1.0).product() - 1.0,
        )
        .join(
            trades.group_by(state_col).agg(n_trades=pl.len(), trade_pnl=pl.col("pnl").sum()),
            on=state_col,
            how="left",
        )
        .with_columns(pl.col("n_trades").fill_null(0), pl.col("trade_pnl").fill_null(0.0))
        .sort(state_col, nulls_last=True)
    )
    return out


def _bar_positions(bar_ts: pl.Series) -> Callable[[pl.Series], np.ndarray]:
    """Row of each timestamp in the equity clock (unique bar times). A timestamp off that clock is an error: a record
    at a time the equity curve never saw would break the identity."""
    clock = bar_ts.cast(TS_DTYPE).to_physical().to_numpy()
    order = np.argsort(clock, kind="stable")
    ordered = clock[order]

    def rows(ts: pl.Series) -> np.ndarray:
        t = ts.cast(TS_DTYPE).to_physical().to_numpy()
        if t.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        at = np.searchsorted(ordered, t)
        found = at < ordered.shape[0]
        found[found] = ordered[at[found]] == t[found]
        if not found.all():
            raise KeyError(f"{int((~found).sum())} of {t.shape[0]} record timestamp(s) are not on the equity clock")
        return order[at].astype(np.int64)

    return rows


def accounting_report(result: BacktestResult, bars: pl.DataFrame) -> dict[str, Any]:
    """Asset-check identities, recomputed independently from fills/funding/trades:

    1. final equity = initial + Σ trade gross PnL (closed + open marked at the last close) − fees − funding;
    2. cash + positions value = equity at every bar, with cash and positions rebuilt from the fills table.
    Returns the max absolute errors and `ok` (relative tolerance 1e-9 of initial cash)."""
    init = result.init_cash
    fees = float(result.fills["fee"].sum()) if result.fills.height else 0.0
    funding = float(result.funding_payments["payment"].sum()) if result.funding_payments.height else 0.0
    gross = float(result.trades["gross_pnl"].sum()) if result.trades.height else 0.0
    final_identity_err = abs(init + gross - fees - funding - result.final_equity)

    eq = result.equity
    n = eq.height
    ts = eq[TS]
    bar_of = _bar_positions(ts)
    dcash = np.zeros(n)
    f = result.fills
    sgn = np.where(f["side"].to_numpy() == "BUY", 1.0, -1.0)
    fb = bar_of(f[TS])
    np.add.at(dcash, fb, -(sgn * f["size"].to_numpy() * f["price"].to_numpy() + f["fee"].to_numpy()))
    fp = result.funding_payments
    if fp.height:
        pb = bar_of(fp[TS])
        np.add.at(dcash, pb, -fp["payment"].to_numpy())
    cash = init + np.cumsum(dcash)
    posval = np.zeros(n)
    closes = (
        pl.DataFrame({TS: ts})
        .join(bars.select(pl.col(TS).cast(TS_DTYPE), INSTRUMENT, CLOSE), on=TS, how="left")
        .pivot(on=INSTRUMENT, index=TS, values=CLOSE)
        .sort(TS)
    )
    for inst in f[INSTRUMENT].unique().to_list():
        sub = f.filter(pl.col(INSTRUMENT) == inst)
        dpos = np.zeros(n)
        s = np.where(sub["side"].to_numpy() == "BUY", 1.0, -1.0)
        np.add.at(dpos, bar_of(sub[TS]), s * sub["size"].to_numpy())
        position = np.cumsum(dpos)
        mark = closes[inst].fill_nan(None).forward_fill().to_numpy() if inst in closes.columns else np.full(n, np.nan)
        posval += np.where(position != 0, position * mark, 0.0)
    bar_err = np.abs(cash + posval - eq["equity"].to_numpy())
    cash_err = np.abs(cash - eq["cash"].to_numpy())
    max_bar = float(np.nanmax(bar_err)) if n else 0.0
    tol = 1e-9 * init
    return {
        "final_equity": result.final_equity,
        "initial_cash": init,
        "sum_trade_gross_pnl": gross,
        "fees": fees,
        "funding": funding,
        "final_identity_abs_error": final_identity_err,
        "max_abs_error_cash_plus_positions": max_bar,
        "max_abs_error_cash": float(np.nanmax(cash_err)) if n else 0.0,
        "ok": bool(final_identity_err <= tol and max_bar <= tol),
    }
