"""Lookahead analysis of a strategy: re-run it on history truncated at cut points and require the same orders and
fills before each cut.

A strategy whose decision at bar t reads bars after t (a rule or model that peeks, a whole-sample statistic, a
centred window) changes its past when the future is removed. The full backtest's orders and fills before a cut must
equal those of a run that never saw the bars from the cut on; the last `margin_bars` bars before the cut are not
compared (an order placed there fills at a bar the truncated run does not have).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from lake_assets.vocabulary import TS

__all__ = ["LookaheadReport", "cut_times", "strategy_lookahead"]

# what a run returns for this check: book -> (orders, fills); `run(None)` is the full history, `run(t)` stops before t
Runner = Callable[[datetime | None], dict[str, tuple[pl.DataFrame, pl.DataFrame]]]
COMPARED = ("orders", "fills")


@dataclass
class LookaheadReport:
    identical: bool
    cuts: list[str] = field(default_factory=list)
    differing: list[dict[str, Any]] = field(default_factory=list)  # book, cut, table, first differing ts

    def metadata(self) -> dict[str, Any]:
        return {"identical": self.identical, "cuts": ", ".join(self.cuts),
                "differing": "; ".join(f"{d['book']} {d['table']} at {d['first_ts']} (cut {d['cut']})"
                                       for d in self.differing[:10]) or "none"}  # fmt: skip


def cut_times(ts: pl.Series, fractions: Sequence[float]) -> list[datetime]:
    """The bar times at `fractions` of the way through a sorted, de-duplicated series of bar times."""
    u = ts.unique().sort()
    return [u[min(len(u) - 1, max(1, int(len(u) * f)))] for f in fractions] if len(u) > 2 else []


def _before(frame: pl.DataFrame, t: datetime) -> pl.DataFrame:
    return frame.filter(pl.col(TS) < t).sort(TS, maintain_order=True) if frame.height else frame


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> Any:
    n = min(a.height, b.height)
    for i in range(n):
        if a.row(i) != b.row(i):
            return a[TS][i]
    return (a if a.height > n else b)[TS][n] if max(a.height, b.height) > n else None


def strategy_lookahead(
    run: Runner,
    full: dict[str, tuple[pl.DataFrame, pl.DataFrame]],
    bar_times: pl.Series,
    fractions: Sequence[float] = (0.7,),
    margin_bars: int = 2,
) -> LookaheadReport:
    """Compare `full` (the backtest's own book -> (orders, fills)) with `run(cut)` before each cut."""
    times = bar_times.unique().sort()
    report = LookaheadReport(identical=True)
    for cut in cut_times(times, fractions):
        report.cuts.append(str(cut))
        idx = times.search_sorted(cut)
        compare_until = times[max(0, int(idx) - margin_bars)]
        truncated = run(cut)
        for book, tables in full.items():
            other = truncated.get(book)
            for name, mine, theirs in zip(COMPARED, tables, other or (pl.DataFrame(), pl.DataFrame()), strict=True):
                a, b = _before(mine, compare_until), _before(theirs, compare_until)
                if b.width and a.width:
                    b = b.select(a.columns)
                if not (a.height == b.height == 0) and not a.equals(b):
                    report.identical = False
                    report.differing.append({"book": book, "table": name, "cut": str(cut),
                                             "first_ts": str(_first_difference(a, b))})  # fmt: skip
    return report
