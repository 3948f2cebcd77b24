"""PNG plots of backtest results for the research report and asset metadata (matplotlib Agg, no display).

Every function takes plain polars frames (the lake's `equity`, `metrics` and discovery tables) and returns PNG bytes,
so the Dagster assets, the report files and notebooks draw the same pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from lake_assets.figures import new_figure, png_bytes
from lake_assets.vocabulary import TS

STRATEGY, BOOK = "strategy", "book"


def _series_label(strategy: str, book: str) -> str:
    return f"{strategy} [{book}]"


def _books(equity: pl.DataFrame, max_books: int) -> list[str]:
    return equity[BOOK].unique(maintain_order=True).to_list()[:max_books] if equity.height else []


def _per_book_png(
    equity: pl.DataFrame,
    draw: Callable[[Any, pl.DataFrame, str], None],
    title: str,
    panel_height: float,
    legend_loc: str,
    max_lines: int,
    max_books: int,
    max_points: int,
    baseline: float | None = None,
) -> bytes:
    """One panel per book (markets have different calendars), one thinned series per strategy, drawn by `draw`."""
    books = _books(equity, max_books) or ["(none)"]
    fig = new_figure(figsize=(9, panel_height * len(books)), dpi=80)
    axes = fig.subplots(len(books), 1, squeeze=False)[:, 0]
    for ax, book in zip(axes, books, strict=True):
        sub = equity.filter(pl.col(BOOK) == book) if equity.height else equity
        for strat in sub[STRATEGY].unique(maintain_order=True).to_list()[:max_lines] if sub.height else []:
            s = sub.filter(pl.col(STRATEGY) == strat).sort(TS)
            draw(ax, s.gather_every(max(1, s.height // max_points)), strat)
        if baseline is not None:
            ax.axhline(baseline, color="0.5", lw=0.5)
        ax.set_title(f"{title} · book {book}", fontsize=9)
        ax.tick_params(labelsize=7)
        if sub.height:
            ax.legend(fontsize=6, loc=legend_loc)
    return png_bytes(fig)


def equity_curves_png(equity: pl.DataFrame, max_lines: int = 8, max_books: int = 4, max_points: int = 2000) -> bytes:
    """Equity normalised to 1 at the start, one panel per book."""

    def draw(ax: Any, thin: pl.DataFrame, strat: str) -> None:
        ax.plot(thin[TS].to_list(), (thin["equity"] / float(thin["equity"][0])).to_list(), lw=0.9, label=strat)

    return _per_book_png(
        equity, draw, "equity (normalised)", 2.6, "upper left", max_lines, max_books, max_points, baseline=1.0
    )


REGIME_COLORS = {"trend_low": "#c6dbef", "trend_mid": "#6baed6", "trend_high": "#2171b5", "chop_low": "#fdd0a2",
                 "chop_mid": "#fd8d3c", "chop_high": "#d94801"}  # fmt: skip


def equity_regimes_png(equity: pl.DataFrame, regimes: pl.DataFrame, max_lines: int = 4, max_books: int = 4,
                       max_points: int = 2000) -> bytes:
    """Equity (normalised) per book over its lead instrument's regime (background colour per regime label;
    `regimes`: book, ts, regime)."""

    def draw(ax: Any, thin: pl.DataFrame, strat: str) -> None:
        ax.plot(thin[TS].to_list(), (thin["equity"] / float(thin["equity"][0])).to_list(), lw=0.9, label=strat)
        book = thin[BOOK][0]
        if getattr(ax, "_regimes_drawn", False) or regimes.is_empty():
            return
        ax._regimes_drawn = True
        reg = (thin.select(TS).join_asof(regimes.filter(pl.col(BOOK) == book).select(TS, "regime").sort(TS), on=TS)
               if regimes.height else thin.select(TS, pl.lit(None, pl.String).alias("regime")))  # fmt: skip
        x, labels = reg[TS].to_list(), reg["regime"].to_list()
        for label, color in REGIME_COLORS.items():
            where = [lab == label for lab in labels]
            if any(where):
                ax.fill_between(x, 0, 1, where=where, step="post", color=color, alpha=0.35, lw=0,
                                transform=ax.get_xaxis_transform(), label=label)  # fmt: skip

    return _per_book_png(equity, draw, "equity over regimes", 2.6, "upper left", max_lines, max_books, max_points,
                         baseline=1.0)  # fmt: skip


def drawdowns_png(equity: pl.DataFrame, max_lines: int = 8, max_books: int = 4, max_points: int = 2000) -> bytes:
    """Drawdown below the running peak (fraction), one panel per book."""

    def draw(ax: Any, thin: pl.DataFrame, strat: str) -> None:
        ax.fill_between(thin[TS].to_list(), thin["drawdown"].to_list(), 0.0, alpha=0.25, label=strat)

    return _per_book_png(equity, draw, "drawdown", 2.2, "lower left", max_lines, max_books, max_points)


def monthly_returns(equity: pl.DataFrame) -> pl.DataFrame:
    """strategy, book, month (YYYY-MM), return: compounded from the last equity of each month (first month from
    the first bar's equity)."""
    if equity.is_empty():
        return pl.DataFrame(schema={STRATEGY: pl.String, BOOK: pl.String, "month": pl.String, "return": pl.Float64})
    last = (
        equity.sort(TS)
        .with_columns(pl.col(TS).dt.strftime("%Y-%m").alias("month"))
        .group_by(STRATEGY, BOOK, "month", maintain_order=True)
        .agg(pl.col("equity").first().alias("first"), pl.col("equity").last().alias("last"))
        .sort(STRATEGY, BOOK, "month")
    )
    return last.with_columns(
        (pl.col("last") / pl.col("last").shift(1).over(STRATEGY, BOOK).fill_null(pl.col("first")) - 1.0).alias("return")
    ).select(STRATEGY, BOOK, "month", "return")


def monthly_heatmap_png(equity: pl.DataFrame, max_rows: int = 16) -> bytes:
    """Strategy x month returns (%), diverging colours centred on zero, values written in the cells."""
    mr = monthly_returns(equity)
    labels = (
        mr.select(STRATEGY, BOOK).unique(maintain_order=True).head(max_rows).rows() if mr.height else []
    )  # fmt: skip
    months = sorted(mr["month"].unique().to_list()) if mr.height else []
    grid = np.full((max(1, len(labels)), max(1, len(months))), np.nan)
    lookup = {(r[0], r[1], r[2]): r[3] for r in mr.iter_rows()}
    for a, (s, b) in enumerate(labels):
        for k, m in enumerate(months):
            v = lookup.get((s, b, m))
            grid[a, k] = np.nan if v is None else 100.0 * v
    fig = new_figure(figsize=(max(5, 0.9 * len(months) + 3), max(2.5, 0.35 * len(labels) + 1.5)), dpi=80)
    ax = fig.subplots()
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(months)), months, fontsize=7, rotation=45)
    ax.set_yticks(range(len(labels)), [_series_label(s, b) for s, b in labels], fontsize=7)
    for a in range(len(labels)):
        for k in range(len(months)):
            if np.isfinite(grid[a, k]):
                ax.text(k, a, f"{grid[a, k]:.1f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="monthly return (%)")
    ax.set_title("monthly returns (%)", fontsize=9)
    return png_bytes(fig)


def funnel_labels(funnel: pl.DataFrame) -> list[str]:
    """Bar labels top-down: the stage as a survival condition ("+ fdr" = survived fdr and every stage above)."""
    stages = funnel["stage"].to_list()
    return [s if i == 0 else f"+ {s}" for i, s in enumerate(stages)]


def funnel_png(funnel: pl.DataFrame) -> bytes:
    """Discovery funnel: rows surviving each stage AND every stage above it (log scale); the number after each bar
    is that cumulative count, with the count passing the stage's own test alone in brackets."""
    cum = [max(int(v), 0) for v in funnel["cumulative"].to_list()]
    if any(b > a for a, b in zip(cum, cum[1:], strict=False)):
        raise ValueError(f"funnel: cumulative survivors must not increase down the stages, got {cum}")
    fig = new_figure(figsize=(7, 0.3 * max(4, funnel.height) + 1), dpi=80)
    ax = fig.subplots()
    labels = funnel_labels(funnel)[::-1]
    values = cum[::-1]
    alone = funnel["passed"].to_list()[::-1] if "passed" in funnel.columns else [None] * len(values)
    ax.barh(range(len(values)), [v if v > 0 else 0.8 for v in values], color="tab:blue")
    ax.set_yticks(range(len(values)), labels)
    for y, (v, a) in enumerate(zip(values, alone, strict=True)):
        extra = f"  [alone {a}]" if a is not None and a != v else ""
        ax.text(max(v, 1), y, f" {v}{extra}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative survivors (passed this stage and every stage above)", fontsize=7)
    ax.set_title("discovery funnel (cumulative survivors)", fontsize=9)
    ax.tick_params(labelsize=7)
    return png_bytes(fig)
