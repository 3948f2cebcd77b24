"""Small PNG plots for asset metadata (matplotlib Agg; no display needed)."""

from __future__ import annotations

import polars as pl

from lake_assets.figures import new_figure, png_bytes
from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, TS


def price_and_gaps_png(bars: pl.DataFrame, max_instruments: int = 4, max_points: int = 4000) -> bytes:
    """Close price per instrument (normalised to 1 at the start) with gap bars marked in red."""
    fig = new_figure(figsize=(8, 3), dpi=80)
    ax = fig.subplots()
    for inst in bars[INSTRUMENT].unique(maintain_order=True).to_list()[:max_instruments]:
        sub = bars.filter(pl.col(INSTRUMENT) == inst).sort(TS)
        step = max(1, sub.height // max_points)
        thin = sub.gather_every(step)
        first = sub[CLOSE].drop_nulls().first()
        norm = thin[CLOSE] / first if first else thin[CLOSE]
        ax.plot(thin[TS].to_list(), norm.to_list(), lw=0.8, label=inst)
        gaps = sub.filter(pl.col(IS_GAP))
        if gaps.height:
            ax.scatter(gaps[TS].to_list(), [1.0] * gaps.height, s=6, c="red", marker="|")
    ax.set_title("close (normalised) · red ticks: gap bars", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    return png_bytes(fig)
