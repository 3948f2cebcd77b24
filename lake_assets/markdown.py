"""Frames as small Markdown tables, for asset metadata in the UI, check samples and the research report."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import polars as pl

__all__ = ["md_cell", "md_table"]


def md_cell(value: Any, digits: int = 6, null: str = "") -> str:
    """One cell: floats to `digits` significant digits (NaN blank), times in ISO form, `|` escaped."""
    if value is None:
        return null
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).replace("|", "\\|")


def md_table(
    df: pl.DataFrame,
    n: int | None = 10,
    digits: int = 6,
    *,
    columns: Iterable[str] | None = None,
    empty: str = "_no rows_",
    null: str = "",
) -> str:
    """The first `n` rows (all: None) of `columns` (those the frame has; default all) as a Markdown table."""
    if columns is not None:
        df = df.select([c for c in columns if c in df.columns])
    if df.is_empty():
        return empty
    head = df if n is None else df.head(n)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    lines += ["| " + " | ".join(md_cell(v, digits, null) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)
