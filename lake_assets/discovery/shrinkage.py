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
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from lake_assets.discovery.hypotheses import EVENT_TYPE, FAMILY, STATE_COL
from lake_assets.discovery.spec_model import STATE_ALL

SHRINK_COLUMNS = (
    "global_effect_bps", "family_raw_bps", "family_shrunk_bps", "family_weight", "event_raw_bps", "event_shrunk_bps",
    "event_weight", "raw_effect_bps", "shrunk_effect_bps", "state_weight",
)  # fmt: skip


def _pool(df: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    n = pl.col("n").cast(pl.Float64)
    total = n.sum()
    return df.group_by(keys).agg(
        (n * pl.col("mean_bps")).sum().truediv(total).alias(f"{prefix}_x"),
        ((n * pl.col("se_bps")) ** 2).sum().truediv(total**2).alias(f"{prefix}_v"),
        total.alias(f"{prefix}_n"),
    )


def _tau2(df: pl.DataFrame, cell: list[str], child: str, parent: str) -> pl.DataFrame:
    """Per cell: positive-part moment estimate of the between-child variance around the parent."""
    informative = df.filter(
        (pl.col(f"{child}_n") < pl.col(f"{parent}_n"))
        & pl.col(f"{child}_x").is_not_null()
        & pl.col(f"{parent}_x").is_not_null()  # fmt: skip
    )
    dev = (pl.col(f"{child}_x") - pl.col(f"{parent}_x")) ** 2
    noise = pl.col(f"{child}_v") - pl.col(f"{parent}_v")
    return informative.group_by(cell).agg(((dev.mean() - noise.mean()).clip(lower_bound=0.0)).alias(f"{child}_tau2"))


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
    cell = list(cell_by)
    fam_keys = [*cell, FAMILY]
    ev_keys = [*fam_keys, EVENT_TYPE]
    usable = (pl.col("n") >= 2) & (pl.col("se_bps") > 0) & pl.col("mean_bps").is_finite()
    df = hyp.with_row_index("_rid").with_columns(_usable=usable.fill_null(False))
    is_base = pl.col(STATE_COL) == STATE_ALL
    # events without unconditional rows are pooled from all their rows instead
    df = df.with_columns(_has_base=(is_base & pl.col("_usable")).any().over(ev_keys))
    base = df.filter(pl.col("_usable") & (is_base | ~pl.col("_has_base")))

    glob = _pool(base, cell, "global")
    fam = _pool(base, fam_keys, "family").join(glob, on=cell, how="left")
    fam = fam.join(_tau2(fam, cell, "family", "global"), on=cell, how="left").with_columns(
        family_weight=_weight("family")
    )
    fam = fam.with_columns(
        family_shrunk=pl.col("family_weight") * pl.col("family_x") + (1 - pl.col("family_weight")) * pl.col("global_x")
    )
    ev = _pool(base, ev_keys, "event").join(fam, on=fam_keys, how="left")
    ev = ev.join(_tau2(ev, fam_keys, "event", "family"), on=fam_keys, how="left").with_columns(
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
    leaves = leaves.join(_tau2(leaves, ev_keys, "state", "event"), on=ev_keys, how="left").with_columns(
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
