"""Grouped false-discovery-rate control (Benjamini-Hochberg / Benjamini-Yekutieli), vectorised over groups.

The arithmetic mirrors statsmodels' `fdrcorrection` operation for operation (p / (k/m), reverse running minimum,
clip at 1), so q-values are bit-identical to `multipletests(method="fdr_bh" | "fdr_by")` run group by group.
Rows without a p-value (untested hypotheses) get no q-value and do not count towards m.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl


def _harmonic(m: int) -> float:
    return float(np.sum(1.0 / np.arange(1, m + 1)))  # same pairwise sum as statsmodels


def grouped_fdr(
    frame: pl.DataFrame,
    p_col: str = "p_value",
    group_by: Sequence[str] = (),
    method: Literal["bh", "by"] = "bh",
) -> pl.Series:
    """q-values for `frame[p_col]`, corrected separately inside each group of `group_by` (all rows if empty)."""
    if method not in ("bh", "by"):
        raise ValueError(f"FDR method must be 'bh' or 'by', got {method!r}")
    missing = [c for c in [p_col, *group_by] if c not in frame.columns]
    if missing:
        raise ValueError(f"grouped_fdr: missing column(s) {missing}")
    keys = list(group_by) or ["_all"]
    p = pl.col(p_col).cast(pl.Float64)
    tested = (
        frame.select(*group_by, p_col)
        .with_columns(_all=pl.lit(0))
        .with_row_index("_i")
        .filter(p.is_not_null() & p.is_not_nan())
        .sort([*keys, p_col])
    )
    if tested.filter((p < 0) | (p > 1)).height:
        raise ValueError(f"grouped_fdr: p-values in `{p_col}` must lie in [0, 1]")
    k = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(keys).cast(pl.Float64)
    m = pl.len().over(keys)
    tested = tested.with_columns(_k=k, _m=m)
    factor = pl.col("_k") / pl.col("_m").cast(pl.Float64)
    if method == "by":
        cms = {int(v): _harmonic(int(v)) for v in tested["_m"].unique().to_list()}
        factor = factor / pl.col("_m").replace_strict(cms, return_dtype=pl.Float64)
    tested = tested.with_columns(_raw=p / factor).with_columns(
        _q=pl.col("_raw").reverse().cum_min().reverse().over(keys).clip(upper_bound=1.0)
    )
    q = np.full(frame.height, np.nan)
    q[tested["_i"].to_numpy()] = tested["_q"].to_numpy()
    return pl.Series("q_value", q).fill_nan(None)
