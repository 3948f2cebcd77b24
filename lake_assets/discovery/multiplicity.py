"""False-discovery-rate control over grouped hypotheses, vectorised over groups.

`two_stage_fdr` (spec method `bb`, the default) is the Benjamini-Bogomolov (2014, JRSS-B "Selective inference on
multiple families of hypotheses") procedure at level q over the spec's groups:
  1. each group's Simes p-value  p_g = min_k p_(k) m_g / k  (the smallest within-group BH adjusted value);
  2. BH across the G tested groups at level q selects R groups;
  3. BH inside each selected group at level q R / G.
Guarantees (p-values independent across groups, PRDS inside a group): the FDR over groups (share of selected groups
without any true effect) <= q, and the expected average false-discovery proportion over the selected groups <= q.
The FDR of the pooled promoted list is not a theorem for this procedure; its realised value is measured by the
simulation in tests/discovery/test_validity.py and `benchmarks/bench_discovery.py --validity` (mixtures of null
and real effects across instruments, horizons and states).
The q-value returned for a row is the smallest level at which the two-stage procedure rejects it,
  q_i = min over group thresholds t_j >= q_g(i) of max(t_j, q_within_i G / R(t_j)),
so `q_value <= alpha` reproduces the procedure run at alpha exactly (every selected group rejects at least one row).

`grouped_fdr` (methods `bh` / `by`) is plain BH / BY separately inside each group: no control across groups (with
~170 groups a null data set still produces discoveries); kept for comparison and as stage 3 above.
The arithmetic mirrors statsmodels' `fdrcorrection` operation for operation (p / (k/m), reverse running minimum,
clip at 1), so q-values are bit-identical to `multipletests(method="fdr_bh" | "fdr_by")` run group by group.
Rows without a p-value (untested hypotheses) get no q-value and do not count towards m.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

FDR_METHODS = ("bb", "bh", "by")


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


def _group_ids(frame: pl.DataFrame, group_by: Sequence[str]) -> np.ndarray:
    """Dense group number per row (sorted by the group keys; nulls are a group of their own)."""
    if not group_by:
        return np.zeros(frame.height, dtype=np.int64)
    return frame.select(pl.struct(list(group_by)).rank("dense")).to_series().to_numpy().astype(np.int64) - 1


def two_stage_fdr(frame: pl.DataFrame, p_col: str = "p_value", group_by: Sequence[str] = ()) -> pl.DataFrame:
    """Benjamini-Bogomolov two-stage adjusted values (see the module docstring), one row per input row:
    `q_value` (the row's adjusted value), `group_pvalue` (the group's Simes p), `group_q_value` (its BH value across
    groups) and `fdr_groups_tested` (G). Rows without a p-value get nulls."""
    within = grouped_fdr(frame, p_col, group_by, "bh").to_numpy().astype(np.float64)
    gid = _group_ids(frame, group_by)
    tested = np.isfinite(within)
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    simes = np.full(n_groups, np.inf)
    np.minimum.at(simes, gid[tested], within[tested])  # the smallest BH value of a group is its Simes p-value
    has = np.isfinite(simes)
    g_tested = np.flatnonzero(has)
    big_g = len(g_tested)
    q_group = np.full(n_groups, np.nan)
    if big_g:
        sp = simes[g_tested]
        order = np.argsort(sp, kind="stable")
        raw = sp[order] * big_g / np.arange(1, big_g + 1)
        adj = np.minimum(np.minimum.accumulate(raw[::-1])[::-1], 1.0)
        q_group[g_tested[order]] = adj
    q = np.full(frame.height, np.nan)
    if big_g and tested.any():
        u = np.unique(q_group[g_tested])  # distinct group thresholds, ascending
        r = np.searchsorted(np.sort(q_group[g_tested]), u, side="right").astype(np.float64)  # R at each threshold
        ur = u * r  # increasing: the crossover of t_j and c / R_j is found by one search
        c = within[tested] * big_g
        j0 = np.searchsorted(u, q_group[gid[tested]], side="left")
        js = np.maximum(j0, np.searchsorted(ur, c, side="left"))
        n_u = len(u)
        at_js = np.where(js < n_u, u[np.minimum(js, n_u - 1)], np.inf)
        prev = js - 1
        before = np.where(prev >= j0, c / r[np.maximum(prev, 0)], np.inf)
        q[tested] = np.minimum(np.minimum(at_js, before), 1.0)
    per_row = np.where(tested | has[gid], gid, -1) if len(gid) else gid
    g_p = np.where(per_row >= 0, simes[np.maximum(per_row, 0)], np.nan) if len(gid) else np.zeros(0)
    g_q = np.where(per_row >= 0, q_group[np.maximum(per_row, 0)], np.nan) if len(gid) else np.zeros(0)
    return pl.DataFrame(
        {
            "q_value": pl.Series(q, dtype=pl.Float64).fill_nan(None),
            "group_pvalue": pl.Series(np.where(np.isfinite(g_p), np.minimum(g_p, 1.0), np.nan)).fill_nan(None),
            "group_q_value": pl.Series(g_q, dtype=pl.Float64).fill_nan(None),
            "fdr_groups_tested": pl.Series([big_g] * frame.height, dtype=pl.Int64),
        }
    )


def fdr_adjust(
    frame: pl.DataFrame, p_col: str, group_by: Sequence[str], method: Literal["bb", "bh", "by"]
) -> pl.DataFrame:
    """The spec's FDR method: the `two_stage_fdr` columns for `bb`, the same columns for per-group `bh` / `by`
    (group columns null)."""
    if method == "bb":
        return two_stage_fdr(frame, p_col, group_by)
    q = grouped_fdr(frame, p_col, group_by, method)
    return pl.DataFrame(
        {
            "q_value": q,
            "group_pvalue": pl.Series([None] * frame.height, dtype=pl.Float64),
            "group_q_value": pl.Series([None] * frame.height, dtype=pl.Float64),
            "fdr_groups_tested": pl.Series([None] * frame.height, dtype=pl.Int64),
        }
    )
