"""Discovery summaries for asset metadata and the research report: gate funnel, top candidates, volcano plot."""

from __future__ import annotations

import numpy as np
import polars as pl

from lake_assets.discovery.spec_model import GATE_NAMES
from lake_assets.figures import new_figure, png_bytes
from lake_assets.markdown import md_table


def funnel_counts(
    candidates: pl.DataFrame, bridge: pl.DataFrame | None = None, n_blueprints: int | None = None
) -> pl.DataFrame:
    """The discovery funnel, one row per stage in order: `passed` = rows passing that stage's own test alone,
    `cumulative` = rows surviving that stage and every stage before it (never increases down the funnel).

    Stages: hypotheses, each gate in spec order (the snooping gates spa / stepm last), promoted, then, when given,
    bridge_pass (promoted rows that also pass the holdout bridge) and blueprints. The fallback-only track is a side
    branch, not a funnel stage: it is reported in `fallback_only` on the promoted row.
    """
    stages: list[tuple[str, int, int]] = [("hypotheses", candidates.height, candidates.height)]
    cumulative = pl.lit(True)
    for g in GATE_NAMES:
        col = f"gate_{g}"
        if col not in candidates.columns:
            continue
        cumulative = cumulative & pl.col(col)
        alone = int(candidates[col].sum())
        stages.append((g, alone, int(candidates.select(cumulative.sum()).item())))
    promoted = int(candidates["promoted"].sum()) if "promoted" in candidates.columns else stages[-1][2]
    stages.append(("promoted", promoted, min(promoted, stages[-1][2])))
    if bridge is not None:
        k = int(bridge["bridge_pass"].sum()) if bridge.height else 0
        if bridge.height and "promoted" in bridge.columns:  # rows the bridge evaluated that are promoted now
            k = int(bridge.filter(pl.col("promoted"))["bridge_pass"].sum())
        stages.append(("bridge_pass", k, min(k, stages[-1][2])))
    if n_blueprints is not None:
        stages.append(("blueprints", n_blueprints, min(n_blueprints, stages[-1][2])))
    fallback = int((candidates["promotion_track"] == "fallback_only").sum()) if "promotion_track" in candidates else 0
    return pl.DataFrame(stages, schema={"stage": pl.String, "passed": pl.Int64, "cumulative": pl.Int64},
                        orient="row").with_columns(
        fallback_only=pl.when(pl.col("stage") == "promoted").then(pl.lit(fallback, dtype=pl.Int64))
    )  # fmt: skip


def top_candidates_markdown(candidates: pl.DataFrame, k: int = 20) -> str:
    """A Markdown table of the best `k` rows (promoted first, then by q-value and shrunk effect)."""
    cols = ["hypothesis_id", "n", "raw_effect_bps", "shrunk_effect_bps", "shrunk_after_cost_bps", "q_value",
            "promotion_track", "fail_reasons"]  # fmt: skip
    top = candidates.sort(
        ["promoted", "q_value", "shrunk_effect_bps"], descending=[True, False, True], nulls_last=True
    ).head(k)
    return md_table(top, n=None, digits=4, columns=cols, empty="") + "\n"


def volcano_png(candidates: pl.DataFrame, max_q: float = 0.05) -> bytes:
    """Shrunk effect (bps) against -log10(q), promoted rows highlighted; PNG bytes (matplotlib Agg)."""
    df = candidates.filter(pl.col("q_value").is_not_null())
    x = df["shrunk_effect_bps"].to_numpy()
    y = -np.log10(np.clip(df["q_value"].to_numpy(), 1e-300, 1.0))
    promoted = df["promoted"].to_numpy() if "promoted" in df.columns else np.zeros(df.height, dtype=bool)
    fig = new_figure(figsize=(7, 5), dpi=100)
    ax = fig.subplots()
    ax.scatter(x[~promoted], y[~promoted], s=8, c="0.6", alpha=0.6, label="not promoted")
    ax.scatter(x[promoted], y[promoted], s=14, c="tab:red", label="promoted (standard)")
    ax.axhline(-np.log10(max_q), color="tab:blue", lw=0.8, ls="--", label=f"q = {max_q:g}")
    ax.axvline(0.0, color="0.3", lw=0.6)
    ax.set_xlabel("shrunk effect (bps)")
    ax.set_ylabel("-log10(q)")
    ax.set_title(f"Phase-2 candidates ({df.height} tested, {int(promoted.sum())} promoted)")
    ax.legend(loc="upper left", fontsize=8)
    return png_bytes(fig, tight=False)
