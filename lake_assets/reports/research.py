"""The research report: what discovery found, how each strategy and blueprint backtested, and whether the
walk-forward believes it. Pure: frames in, Markdown + JSON + PNG bytes out; `write_report` puts them in a folder.

Inputs are the lake tables the backtest layer writes (`metrics`, `equity`, `walkforward`, `walkforward_folds`) and,
when present, discovery's candidates, bridge evaluation and blueprints (the funnel).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from lake_assets import tables
from lake_assets.backtests.regimes import REGIME, label_regimes, load_regimes
from lake_assets.markdown import md_table
from lake_assets.reports.plots import (
    drawdowns_png,
    equity_curves_png,
    equity_regimes_png,
    funnel_png,
    monthly_heatmap_png,
)
from lake_assets.storage.lake import Lake
from lake_assets.tables import RUN_HISTORY
from lake_assets.workbench.status import strategy_status

STRATEGY, BOOK = "strategy", "book"
METRIC_COLS = ("strategy", "kind", "book", "instruments", "execution", "total_return", "cagr", "sharpe", "sortino",
               "max_drawdown", "calmar", "n_trades", "win_rate", "profit_factor", "exposure", "fees_paid",
               "funding_paid", "identity_ok")  # fmt: skip
WORKBENCH_COLS = ("run_id", "mode", "instruments", "blend", "indicators", "tune_method", "n_trials", "total_return",
                  "sharpe", "max_drawdown", "n_trades", "oos_sharpe", "dsr")  # fmt: skip
STATUS_COLS = ("strategy", "source", "status", "last_backtest", "sharpe", "error")
WF_COLS = ("strategy", "book", "applicable", "n_folds", "oos_sharpe", "oos_total_return", "oos_max_drawdown", "pbo",
           "psr", "dsr", "max_psi", "reason")  # fmt: skip
LEADERBOARD_COLS = ("rank", "variant", "balanced_accuracy", "fast_sharpe", "sharpe", "total_return", "n_trades",
                    "score", "kept", "n_trials")  # fmt: skip


@dataclass
class ReportInputs:
    metrics: pl.DataFrame
    equity: pl.DataFrame
    walkforward: pl.DataFrame = field(default_factory=pl.DataFrame)
    folds: pl.DataFrame = field(default_factory=pl.DataFrame)
    candidates: pl.DataFrame = field(default_factory=pl.DataFrame)
    bridge: pl.DataFrame = field(default_factory=pl.DataFrame)
    blueprints: pl.DataFrame = field(default_factory=pl.DataFrame)
    workbench: pl.DataFrame = field(default_factory=pl.DataFrame)  # run_history: workbench runs
    status: pl.DataFrame = field(default_factory=pl.DataFrame)  # strategy_status: every strategy source
    metrics_by_regime: pl.DataFrame = field(default_factory=pl.DataFrame)
    regimes: pl.DataFrame = field(default_factory=pl.DataFrame)  # book, ts, regime (the book's lead instrument)
    leaderboard: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass
class Report:
    markdown: str
    data: dict[str, Any]
    pngs: dict[str, bytes]


def gather(store: Lake, strategies: Iterable[str] | None = None) -> ReportInputs:
    """Read the report's inputs from the lake; with `strategies`, keep only those (current) strategy keys."""
    keep = set(strategies) if strategies is not None else None

    def read(group: str, asset: str) -> pl.DataFrame:
        df = store.read_all(group, asset)
        if keep is not None and df.height and STRATEGY in df.columns:
            df = df.filter(pl.col(STRATEGY).is_in(sorted(keep)))
        return df

    by_regime = read("backtests", "metrics_by_regime")
    return ReportInputs(
        metrics_by_regime=by_regime,
        regimes=_book_regimes(store, by_regime),
        metrics=read("backtests", "metrics"),
        equity=read("backtests", "equity"),
        walkforward=read("backtests", "walkforward"),
        folds=read("backtests", "walkforward_folds"),
        candidates=store.read_all("discovery", "phase2_candidates"),
        bridge=store.read_all("discovery", "bridge_evaluation"),
        blueprints=store.read_all("discovery", "strategy_blueprints"),
        workbench=store.read_all(RUN_HISTORY.group, RUN_HISTORY.name),
        status=strategy_status(store),
        leaderboard=store.read_all("models", "model_leaderboard"),
    )


def _book_regimes(store: Lake, by_regime: pl.DataFrame) -> pl.DataFrame:
    """book, ts, regime: each book's lead instrument's regime labels (for the equity-over-regimes plot)."""
    if by_regime.is_empty() or "lead_instrument" not in by_regime.columns:
        return pl.DataFrame()
    spec = load_regimes()
    parts = []
    for book, lead in by_regime.select(BOOK, "lead_instrument").unique(maintain_order=True).iter_rows():
        feats = store.reader.instrument(tables.FEATURES, lead)
        if feats.height:
            parts.append(label_regimes(feats, spec).select("ts", REGIME).with_columns(pl.lit(book).alias(BOOK)))
    return pl.concat(parts) if parts else pl.DataFrame()


def _md(df: pl.DataFrame, cols: Iterable[str] | None = None, n: int = 30, digits: int = 4) -> str:
    return md_table(df, n, digits, columns=cols, empty="_none_")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _records(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in df.to_dicts()] if df.height else []


def funnel(inputs: ReportInputs) -> pl.DataFrame | None:
    """Discovery funnel (hypotheses -> gates -> bridge -> blueprints) when discovery has run."""
    from lake_assets.discovery.reporting import funnel_counts

    c = inputs.candidates
    if c.is_empty() or not all(f"gate_{g}" in c.columns for g in ("sample", "fdr")):
        return None
    try:
        return funnel_counts(c, inputs.bridge if inputs.bridge.height else None, inputs.blueprints.height)
    except (KeyError, pl.exceptions.ColumnNotFoundError):
        return None


def build_report(inputs: ReportInputs, *, title: str = "qlake research report", run_id: str | None = None) -> Report:
    """Markdown (ranked metrics, walk-forward verdicts, funnel, plots), a JSON twin and the PNGs."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    m = inputs.metrics.sort("sharpe", descending=True, nulls_last=True) if inputs.metrics.height else inputs.metrics
    wf = inputs.walkforward
    f = funnel(inputs)
    pngs = {
        "equity_curves.png": equity_curves_png(_ranked_equity(inputs.equity, m)),
        "drawdowns.png": drawdowns_png(_ranked_equity(inputs.equity, m)),
        "monthly_returns.png": monthly_heatmap_png(_ranked_equity(inputs.equity, m)),
    }
    if inputs.metrics_by_regime.height:
        pngs["equity_regimes.png"] = equity_regimes_png(_ranked_equity(inputs.equity, m, top=4), inputs.regimes)
    if f is not None:
        pngs["discovery_funnel.png"] = funnel_png(f)
    n_strat = m[STRATEGY].n_unique() if m.height else 0
    failing_identity = m.filter(~pl.col("identity_ok")) if m.height and "identity_ok" in m.columns else m.clear()
    survivors = (
        wf.filter(pl.col("applicable") & (pl.col("dsr") > 0.95) & (pl.col("pbo").is_null() | (pl.col("pbo") < 0.5)))
        if wf.height
        else wf
    )
    lines = [
        f"# {title}",
        "",
        f"Created {created}" + (f" · run `{run_id}`" if run_id else ""),
        "",
        "## Summary",
        "",
        f"- strategies backtested: **{n_strat}** ({m.height} books)",
        f"- accounting identity failures: **{failing_identity.height}**",
        f"- walk-forward survivors (DSR > 0.95 and PBO < 0.5): **{survivors.height}** of "
        f"{wf.filter(pl.col('applicable')).height if wf.height else 0} evaluated",
    ]
    if f is not None:
        lines.append(f"- discovery: {int(f['cumulative'][0])} hypotheses -> {int(f['cumulative'][-1])} at the last "
                     f"stage ({f['stage'][-1]})")  # fmt: skip
    lines += ["", "## Backtests (realistic costs, ranked by Sharpe)", "", _md(m, METRIC_COLS), ""]
    lines += ["![equity curves](equity_curves.png)", "", "![drawdowns](drawdowns.png)", "",
              "![monthly returns](monthly_returns.png)", ""]  # fmt: skip
    if inputs.metrics_by_regime.height:
        lines += ["## Metrics per regime", "",
                  "Each book's bar returns and trades (at entry) by the regime of its lead instrument "
                  "(spec/regimes.yaml: trend/chop x low/mid/high volatility).", "",
                  _md(inputs.metrics_by_regime.sort(STRATEGY, BOOK, REGIME),
                      ("strategy", "book", "regime", "bars", "total_return", "sharpe", "n_trades", "trade_pnl"), n=60),
                  "", "![equity over regimes](equity_regimes.png)", ""]  # fmt: skip
    lines += ["## Walk-forward (out-of-sample)", "",
              "Rolling train/test windows, parameters re-optimised in-sample; PBO by CSCV, DSR deflated by the "
              "number of trials, PSI drift between train and test features.", "", _md(wf, WF_COLS), ""]  # fmt: skip
    if f is not None:
        lines += ["## Discovery funnel", "", _md(f), "", "![discovery funnel](discovery_funnel.png)", ""]
    if inputs.workbench.height:
        wb = inputs.workbench.sort("run_id")
        lines += ["## Workbench runs", "",
                  "Research workbench runs (`qlake run`, the workbench_run job; files in <data root>/runs/<run_id>/): "
                  "blended indicator signals through the same engine and costs; tuned runs report the Sharpe on the "
                  "test window after tuning (oos_sharpe) and the deflated Sharpe for the trials tried (dsr); options "
                  "runs are priced by Black-Scholes.", "", _md(wb, WORKBENCH_COLS), ""]  # fmt: skip
    if inputs.status.height:
        lines += ["## Strategy status", "",
                  "Every strategy source (JSON specs, blueprints, workbench runs): `current` when its last backtest "
                  "was computed from the strategy as it is now, `stale` when the strategy (or a run's inputs) "
                  "changed since, `never run`, or `invalid` with the validation error (also `qlake strategies` and "
                  "the strategy_status view).", "",
                  _md(inputs.status, STATUS_COLS, n=60), ""]  # fmt: skip
    if inputs.blueprints.height:
        cols = [c for c in ("blueprint_id", "event_type", "instrument", "template", "direction")
                if c in inputs.blueprints.columns]  # fmt: skip
        lines += ["## Blueprints", "", _md(inputs.blueprints, cols), ""]
    board = inputs.leaderboard
    if board.height:
        kept = board.filter(pl.col("kept"))
        lines += ["## Models", "",
                  f"{board.height} model variants ranked by 0.4 x OOS balanced accuracy + 0.6 x min(realistic OOS "
                  f"Sharpe / 3, 1) (purged walk-forward test folds only); **{kept.height}** kept (score >= 0.6) "
                  "and traded above as `model.<variant>` strategies.", "",
                  _md(board, LEADERBOARD_COLS), ""]  # fmt: skip
    data = {
        "title": title,
        "created": created,
        "run_id": run_id,
        "metrics": _records(m),
        "walkforward": _records(wf),
        "walkforward_folds": _records(inputs.folds),
        "metrics_by_regime": _records(inputs.metrics_by_regime),
        "funnel": _records(f) if f is not None else None,
        "blueprints": _records(inputs.blueprints.select(cols)) if inputs.blueprints.height else [],
        "workbench_runs": _records(inputs.workbench.sort("run_id")) if inputs.workbench.height else [],
        "strategy_status": _records(inputs.status),
        "plots": sorted(pngs),
        "models": _records(inputs.leaderboard.select(LEADERBOARD_COLS)) if inputs.leaderboard.height else [],
    }
    return Report("\n".join(lines) + "\n", data, pngs)


def _ranked_equity(equity: pl.DataFrame, ranked_metrics: pl.DataFrame, top: int = 8) -> pl.DataFrame:
    """Equity rows of the `top` books by Sharpe, in rank order (plots show the best first)."""
    if equity.is_empty() or ranked_metrics.is_empty():
        return equity
    order = ranked_metrics.select(STRATEGY, BOOK).head(top).with_row_index("_rank")
    return equity.join(order, on=[STRATEGY, BOOK], how="inner").sort("_rank", "ts").drop("_rank")


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """report.md, report.json and the PNGs into `out_dir`, each written atomically (temp file + os.replace)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        **report.pngs,
        "report.json": json.dumps(report.data, indent=2, default=str).encode(),
        "report.md": report.markdown.encode(),  # last: `qlake report` looks for report.md, so it appears complete
    }
    paths = {}
    for name, payload in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.replace(tmp, out_dir / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        paths[name] = out_dir / name
    return paths


def inline_images(markdown: str, pngs: Mapping[str, bytes]) -> str:
    """The report's Markdown with its relative PNG links replaced by data URIs, for viewers (the Dagster UI) that
    show the text without the folder it links into."""
    import base64

    for name, png in pngs.items():
        markdown = markdown.replace(f"]({name})", f"](data:image/png;base64,{base64.b64encode(png).decode()})")
    return markdown
