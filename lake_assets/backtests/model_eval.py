"""Model predictions as trading signals: the leaderboard's two backtests, its ranking score, and kept models as
`strategy` partitions (`model.<variant>`).

A variant's OOS predictions (model_predictions: one row per test-fold bar) carry the position the model implies,
known at the bar's close: +1 long, -1 short, 0 flat. A bar of the OOS span without a prediction (a gap, a row the
training set excluded) is flat. Signals: +1 -> long entry, -1 -> short entry (an opposite entry reverses), 0 ->
exit both sides.

- fast screen: vectorbt `Portfolio.from_signals` per instrument on its closes (fill at the signal bar's close, all
  cash, 0.01% slippage, no fee), the instruments' values summed;
- realistic: qlake's engine (`engine.run_signals`): one shared-cash book, each instrument 1/n of equity, fill at
  the next open, 0.04% fee + 0.05% slippage, funding for perps, the default risk limits at 1x leverage.
Both Sharpes are annualised like every Sharpe of the lake (x sqrt(bars per year of the frequency)). The score is
`w_ba x balanced_accuracy + w_sharpe x min(realistic Sharpe / cap, 1)` (0.4, 0.6, 3 by default), on OOS folds only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from lake_assets import tables
from lake_assets.backtests.blueprint_signals import PERIODS_PER_YEAR
from lake_assets.backtests.engine import SIGNAL_COLUMNS, BacktestResult, EngineConfig, run_signals
from lake_assets.backtests.metrics import bar_returns, compute_metrics
from lake_assets.backtests.risk import RiskLimits, Sizing
from lake_assets.backtests.schema import STRATEGY, SizeType
from lake_assets.backtests.strategies import MODEL_PREFIX
from lake_assets.models.spec_model import LeaderboardSpec, split_variant_key
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import BARS_SCHEMA, CLOSE, FUNDING_RATE, INSTRUMENT, IS_GAP, TS, TS_DTYPE, Market

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = SIGNAL_COLUMNS
BAR_TABLES = {"5m": tables.BARS, "1h": tables.BARS_1H, "1d": tables.BARS_1D}
INIT_CASH = 100_000.0


def model_key(variant: str) -> str:
    return f"{MODEL_PREFIX}{variant}"


# --- signals ------------------------------------------------------------------------------------------------------


def oos_bars(store: Lake, predictions: pl.DataFrame, frequency: str) -> pl.DataFrame:
    """The bars at `frequency` of the predictions' instruments over their OOS span (first prediction onwards)."""
    frames = []
    for inst, first in predictions.group_by(INSTRUMENT).agg(pl.col(TS).min()).sort(INSTRUMENT).iter_rows():
        bars = store.reader.instrument(BAR_TABLES[frequency], inst)
        if bars.height:
            frames.append(bars.filter(pl.col(TS) >= first))
    if not frames:
        return pl.DataFrame(schema=BARS_SCHEMA)
    return pl.concat(frames, how="diagonal_relaxed").select(BARS_SCHEMA.names()).sort(INSTRUMENT, TS)


def signals_of(predictions: pl.DataFrame, bars: pl.DataFrame) -> pl.DataFrame:
    """ts, instrument and the four signal columns on every bar of `bars` (flat where there is no prediction)."""
    pos = predictions.select(pl.col(TS).cast(TS_DTYPE), INSTRUMENT, pl.col("position").cast(pl.Int8))
    sig = bars.select(pl.col(TS).cast(TS_DTYPE), INSTRUMENT, IS_GAP).join(pos, on=[TS, INSTRUMENT], how="left")
    p = pl.when(pl.col(IS_GAP).fill_null(False)).then(0).otherwise(pl.col("position").fill_null(0))
    return sig.select(
        TS, INSTRUMENT,
        (p == 1).alias(LONG_ENTRY), (p == 0).alias(LONG_EXIT), (p == -1).alias(SHORT_ENTRY), (p == 0).alias(SHORT_EXIT),
    )  # fmt: skip


def annualised_sharpe(values: np.ndarray, periods_per_year: float) -> float:
    r = bar_returns(values)
    r = r[np.isfinite(r)]
    if r.shape[0] < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r) / sd * math.sqrt(periods_per_year)) if sd > 0 else math.nan


# --- the two backtests ----------------------------------------------------------------------------------------------


def fast_screen(signals: pl.DataFrame, bars: pl.DataFrame, slippage: float, periods_per_year: float,
                fees: float = 0.0) -> dict[str, float]:  # fmt: skip
    """vectorbt `Portfolio.from_signals` per instrument (close fills, all cash, `slippage`), values summed on the
    union of the instruments' bars: Sharpe (annualised), total return."""
    import pandas as pd
    import vectorbt as vbt

    values = []
    for (inst,), part in bars.sort(INSTRUMENT, TS).group_by(INSTRUMENT, maintain_order=True):
        s = signals.filter(pl.col(INSTRUMENT) == inst).sort(TS)
        close = part[CLOSE].fill_nan(None).forward_fill().backward_fill().to_numpy()
        flags = {c: pd.Series(s[c].to_numpy()) for c in SIGNAL_COLUMNS}
        pf = vbt.Portfolio.from_signals(
            pd.Series(close), entries=flags[LONG_ENTRY], exits=flags[LONG_EXIT], short_entries=flags[SHORT_ENTRY],
            short_exits=flags[SHORT_EXIT], size=np.inf, fees=fees, slippage=slippage, init_cash=INIT_CASH,
        )  # fmt: skip
        values.append(pl.DataFrame({TS: part[TS], f"v_{inst}": np.asarray(pf.value())}))
    if not values:
        return {"sharpe": math.nan, "total_return": math.nan}
    grid = pl.concat([v.select(TS) for v in values]).unique().sort(TS)
    for v in values:
        grid = grid.join(v, on=TS, how="left")
    total = grid.select(pl.all().exclude(TS).forward_fill().fill_null(INIT_CASH)).sum_horizontal().to_numpy()
    curve = np.r_[INIT_CASH * len(values), total]
    return {"sharpe": annualised_sharpe(curve, periods_per_year), "total_return": float(curve[-1] / curve[0] - 1)}


def realistic_config(spec: LeaderboardSpec) -> EngineConfig:
    return EngineConfig(init_cash=INIT_CASH, maker_fee=spec.realistic_fee, taker_fee=spec.realistic_fee,
                        slippage=spec.realistic_slippage, risk=RiskLimits(max_leverage=1.0))  # fmt: skip


def perp_funding(store: Lake, instruments: Sequence[str]) -> pl.DataFrame | None:
    """Funding of the instruments that are perps (None without any)."""
    from lake_assets.specs import universe

    perps = [i for i in instruments if i in universe().ids and universe().get(i).market == Market.PERP]
    cols = [TS, INSTRUMENT, FUNDING_RATE]
    frames = [f for i in perps if (f := store.reader.instrument(tables.RAW_FUNDING, i, columns=cols)).height]
    if not frames:
        return None
    return pl.concat(frames).select(TS, INSTRUMENT, FUNDING_RATE).unique([TS, INSTRUMENT]).sort(INSTRUMENT, TS)


def realistic(signals: pl.DataFrame, bars: pl.DataFrame, config: EngineConfig, funding: pl.DataFrame | None,
              strategy: str, sizing: Sizing | None = None) -> BacktestResult:  # fmt: skip
    """qlake's engine on the signals: one shared-cash book, each instrument 1/n of equity unless `sizing`."""
    n = max(1, bars[INSTRUMENT].n_unique())
    sizing = sizing or Sizing(SizeType.EQUITY_PERCENT, 1.0 / n)
    sig = signals.with_columns(pl.lit(strategy).alias(STRATEGY))
    return run_signals(bars, sig.select(TS, INSTRUMENT, STRATEGY, *SIGNAL_COLUMNS), config, sizing=sizing,
                       funding=funding)  # fmt: skip


# --- the leaderboard ------------------------------------------------------------------------------------------------


def score(balanced_accuracy: float, sharpe: float, spec: LeaderboardSpec) -> float:
    """w_ba x BA + w_sharpe x min(Sharpe / cap, 1); a NaN Sharpe (no trades, flat) counts as 0."""
    s = sharpe if math.isfinite(sharpe) else 0.0
    ba = balanced_accuracy if math.isfinite(balanced_accuracy) else 0.0
    return spec.w_balanced_accuracy * ba + spec.w_sharpe * min(s / spec.sharpe_cap, 1.0)


def model_hash(run: Mapping[str, Any], predictions: pl.DataFrame) -> str:
    """Content hash of a model strategy: its variant, study, best params and OOS positions."""
    digest = hashlib.sha256(f"{run['variant']}|{run['study_name']}|{run['best_params']}".encode())
    if predictions.height:
        digest.update(predictions.select(TS, INSTRUMENT, "position").hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def evaluate_variant(store: Lake, run: Mapping[str, Any], predictions: pl.DataFrame, spec: LeaderboardSpec
                     ) -> dict[str, Any]:  # fmt: skip
    """One leaderboard row (without rank) for a variant's run and OOS predictions."""
    variant = str(run["variant"])
    freq, scheme, fam = split_variant_key(variant)
    ppy = PERIODS_PER_YEAR[freq]
    row: dict[str, Any] = {"variant": variant, "frequency": freq, "label_scheme": scheme, "family": fam,
                           "balanced_accuracy": run["oos_balanced_accuracy"], "n_trials": run["n_trials"],
                           "model_path": run["model_path"], "spec_hash": model_hash(run, predictions)}  # fmt: skip
    bars = oos_bars(store, predictions, freq) if predictions.height else pl.DataFrame()
    if bars.is_empty():
        row.update(fast_sharpe=math.nan, sharpe=math.nan, total_return=math.nan, n_trades=0)
    else:
        sig = signals_of(predictions, bars)
        fast = fast_screen(sig, bars, spec.fast_slippage, ppy)
        res = realistic(sig, bars, realistic_config(spec), perp_funding(store, bars[INSTRUMENT].unique().to_list()),
                        model_key(variant))  # fmt: skip
        m = compute_metrics(res, ppy)
        row.update(fast_sharpe=fast["sharpe"], sharpe=m["sharpe"], total_return=m["total_return"],
                   n_trades=int(res.trades.height))  # fmt: skip
    ba = float(row["balanced_accuracy"]) if row["balanced_accuracy"] is not None else math.nan
    row["score"] = score(ba, float(row["sharpe"]), spec)
    row["kept"] = bool(row["score"] >= spec.keep_min_score)
    row["strategy"] = model_key(variant) if row["kept"] else None
    return row


def leaderboard(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    schema = tables.MODEL_LEADERBOARD.schema
    if not rows:
        return pl.DataFrame(schema=schema)
    df = pl.DataFrame([{k: r.get(k) for k in schema.names() if k != "rank"} for r in rows],
                      schema={k: v for k, v in schema.items() if k != "rank"})  # fmt: skip
    df = df.with_columns(pl.col(c).fill_nan(None) for c in ("balanced_accuracy", "fast_sharpe", "sharpe",
                                                             "total_return", "score"))  # fmt: skip
    df = df.sort(["score", "variant"], descending=[True, False], nulls_last=True).with_row_index("rank", offset=1)
    return df.with_columns(pl.col("rank").cast(pl.Int64)).select(schema.names())


def kept_models(store: Lake) -> dict[str, str]:
    """model.<variant> -> content hash of every model the latest leaderboard kept (the strategy catalog's part)."""
    t = tables.MODEL_LEADERBOARD
    try:
        df = store.read_all(t.group, t.name)
    except (OSError, ValueError):
        return {}
    if df.is_empty() or "kept" not in df.columns:
        return {}
    kept = df.filter(pl.col("kept").fill_null(False))
    return {model_key(v): h for v, h in kept.select("variant", "spec_hash").iter_rows()}


def model_predictions(store: Lake, variant: str) -> pl.DataFrame:
    t = tables.MODEL_PREDICTIONS
    return store.reader.partition(t, {"variant": variant})


def leaderboard_plot(board: pl.DataFrame, keep_min_score: float = 0.6) -> bytes:
    """Score by variant (kept models highlighted), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * board.height + 1)))
    if board.height:
        b = board.sort("score", descending=False, nulls_last=False).fill_null(0.0)
        colors = ["tab:green" if k else "tab:gray" for k in b["kept"].to_list()]
        ax.barh(b["variant"].to_list(), b["score"].to_list(), color=colors)
        ax.axvline(keep_min_score, color="tab:red", lw=1, ls="--", label=f"keep >= {keep_min_score:g}")
        ax.legend(loc="lower right")
    ax.set_xlabel("score = 0.4 x balanced accuracy + 0.6 x min(Sharpe / 3, 1)")
    ax.set_title("model leaderboard (OOS folds, realistic Sharpe)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
