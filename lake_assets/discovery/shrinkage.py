"""Hierarchical empirical-Bayes (James-Stein) shrinkage of hypothesis effects: global -> family -> event -> state.

Each level's raw effect is the sample-size-weighted mean of the unconditional ("all") rows below it, with squared
standard error sum((n_i se_i)^2) / N^2. The between-group variance tau^2 of a level is estimated by the method of
moments from how far children sit from their parent: because every child's samples are a subset of its parent's,
Var(x_child - x_parent) = se_child^2 - se_parent^2 when there is no real heterogeneity, so

    tau^2 = max(0, mean[(x_child - x_parent)^2] - mean[se_child^2 - se_parent^2])   (positive-part James-Stein)

estimated within its parent (events within their family, states and instruments within their event; families
within the cell timeframe x horizon x template, so different return scales are never mixed): a tau^2 pooled over
the whole cell would let many null events swamp the one real effect among them and shrink it to nothing. A child's
pooling weight is w = tau^2 / (tau^2 + se_child^2) and its shrunk effect is w x_child + (1 - w) shrunk_parent,
applied top-down. Children identical to their parent (a sole child) carry no information about tau^2 and are left
out of its estimate; a level with no informative child keeps w = 1 (it is its parent).

Deterministic to the bit: every sum runs in numpy over rows sorted by group and hypothesis key, so neither the input's
row order nor polars' group and join order (which vary between calls and with the thread count) changes a result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from lake_assets.discovery.hypotheses import EVENT_TYPE, FAMILY, HYPOTHESIS_KEYS, STATE_COL
from lake_assets.discovery.spec_model import STATE_ALL

SHRINK_COLUMNS = (
    "global_effect_bps", "family_raw_bps", "family_shrunk_bps", "family_weight", "event_raw_bps", "event_shrunk_bps",
    "event_weight", "raw_effect_bps", "shrunk_effect_bps", "state_weight",
)  # fmt: skip


def _groups(df: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, np.ndarray]:
    """(one row of `keys` per group, each group's first row) of `df`, which is sorted by `keys` (nulls equal)."""
    if df.height == 0:
        return df.select(keys), np.zeros(0, dtype=np.int64)
    new = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys])
    # the first row always starts a group (a null key equals its null shift, so it may not be flagged)
    starts = np.unique(np.r_[0, np.flatnonzero(df.select(new).to_series().to_numpy())])
    return df.select(keys)[starts], starts


def _segment_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-group sums of `values` over contiguous groups, in row order (single-threaded numpy: the same rows in
    the same order always give the same bits, whatever the thread count)."""
    return np.add.reduceat(values, starts) if len(starts) else np.zeros(0)


def _pool(df: pl.DataFrame, keys: list[str], order: list[str], prefix: str) -> pl.DataFrame:
    """Sample-size-weighted mean and its variance per group of `keys`, summed over rows sorted by `order`
    (`keys` first, then a unique row key): the float sums never depend on the input's or polars' row order."""
    df = df.sort(order, nulls_last=True, maintain_order=True)
    groups, starts = _groups(df, keys)
    n = df["n"].cast(pl.Float64).to_numpy()
    x = df["mean_bps"].cast(pl.Float64).to_numpy()
    se = df["se_bps"].cast(pl.Float64).to_numpy()
    total = _segment_sum(n, starts)
    return groups.with_columns(
        pl.Series(f"{prefix}_x", _segment_sum(n * x, starts) / total, dtype=pl.Float64),
        pl.Series(f"{prefix}_v", _segment_sum((n * se) ** 2, starts) / total**2, dtype=pl.Float64),
        pl.Series(f"{prefix}_n", total, dtype=pl.Float64),
    )


def _tau2(df: pl.DataFrame, cell: list[str], order: list[str], child: str, parent: str) -> pl.DataFrame:
    """Per cell: positive-part moment estimate of the between-child variance around the parent (rows summed in
    `order`, which starts with `cell`)."""
    informative = df.filter(
        (pl.col(f"{child}_n") < pl.col(f"{parent}_n"))
        & pl.col(f"{child}_x").is_not_null()
        & pl.col(f"{parent}_x").is_not_null()  # fmt: skip
    ).sort(order, nulls_last=True, maintain_order=True)
    groups, starts = _groups(informative, cell)
    dev = ((informative[f"{child}_x"] - informative[f"{parent}_x"]) ** 2).to_numpy()
    noise = (informative[f"{child}_v"] - informative[f"{parent}_v"]).to_numpy()
    count = np.diff(np.r_[starts, informative.height]).astype(np.float64)
    tau2 = _segment_sum(dev, starts) / count - _segment_sum(noise, starts) / count
    return groups.with_columns(pl.Series(f"{child}_tau2", np.maximum(tau2, 0.0), dtype=pl.Float64))


def _weight(child: str) -> pl.Expr:
    tau2, v = pl.col(f"{child}_tau2"), pl.col(f"{child}_v")
    w = pl.when(tau2.is_null()).then(1.0).when(tau2 + v > 0).then(tau2 / (tau2 + v)).otherwise(1.0)
    return pl.when(pl.col(f"{child}_x").is_null()).then(0.0).otherwise(w)


def shrink_hierarchical(
    hyp: pl.DataFrame, cell_by: Sequence[str] = ("timeframe", "horizon", "template")
) -> pl.DataFrame:
    """Add raw and shrunk effects plus the pooling weight at every level (see module docstring) to each row.

    Rows without a usable estimate (n < 2 or no positive standard error) take their event's shrunk effect with
    state weight 0 and are not used to estimate anything.
    """
    cell = list(cell_by) or ["_cell"]
    fam_keys = [*cell, FAMILY]
    ev_keys = [*fam_keys, EVENT_TYPE]
    usable = (pl.col("n") >= 2) & (pl.col("se_bps") > 0) & pl.col("mean_bps").is_finite()
    df = hyp.with_row_index("_rid").with_columns(_usable=usable.fill_null(False), _cell=pl.lit(0))
    # every sum runs over rows in one canonical order: the group keys, then the hypothesis key (unique per row;
    # the input row only breaks ties between duplicates), so neither the input's row order nor polars' group and
    # join order (which vary between calls and with the thread count) can change a bit of the result
    row_key = [*(c for c in HYPOTHESIS_KEYS if c in df.columns), "_rid"]

    def order(keys: list[str]) -> list[str]:
        return [*keys, *(c for c in row_key if c not in keys)]

    is_base = pl.col(STATE_COL) == STATE_ALL
    # events without unconditional rows are pooled from all their rows instead
    df = df.with_columns(_has_base=(is_base & pl.col("_usable")).any().over(ev_keys))
    base = df.filter(pl.col("_usable") & (is_base | ~pl.col("_has_base")))

    glob = _pool(base, cell, order(cell), "global")
    fam = _pool(base, fam_keys, order(fam_keys), "family").join(glob, on=cell, how="left")
    fam = fam.join(_tau2(fam, cell, fam_keys, "family", "global"), on=cell, how="left").with_columns(
        family_weight=_weight("family")
    )
    fam = fam.with_columns(
        family_shrunk=pl.col("family_weight") * pl.col("family_x") + (1 - pl.col("family_weight")) * pl.col("global_x")
    )
    ev = _pool(base, ev_keys, order(ev_keys), "event").join(fam, on=fam_keys, how="left")
    ev = ev.join(_tau2(ev, fam_keys, ev_keys, "event", "family"), on=fam_keys, how="left").with_columns(
        event_weight=_weight("event")
    )
    ev = ev.with_columns(
        event_shrunk=pl.col("event_weight") * pl.col("event_x") + (1 - pl.col("event_weight")) * pl.col("family_shrunk")
    )
    leaves = df.join(ev, on=ev_keys, how="left").with_columns(
        state_x=pl.when(pl.col("_usable")).then(pl.col("mean_bps")),
        state_v=pl.when(pl.col("_usable")).then(pl.col("se_bps") ** 2),
        state_n=pl.col("n").cast(pl.Float64),
    )
    leaves = leaves.join(_tau2(leaves, ev_keys, order(ev_keys), "state", "event"), on=ev_keys, how="left").with_columns(
        state_weight=_weight("state")
    )
    out = leaves.with_columns(
        global_effect_bps=pl.col("global_x"),
        family_raw_bps=pl.col("family_x"),
        family_shrunk_bps=pl.col("family_shrunk"),
        event_raw_bps=pl.col("event_x"),
        event_shrunk_bps=pl.col("event_shrunk"),
        raw_effect_bps=pl.col("mean_bps"),
        shrunk_effect_bps=pl.col("state_weight") * pl.col("state_x").fill_null(0.0)
        + (1 - pl.col("state_weight")) * pl.col("event_shrunk"),
    ).sort("_rid")
    return out.select(*hyp.columns, *SHRINK_COLUMNS)
