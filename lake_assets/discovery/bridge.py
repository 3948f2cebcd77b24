"""`bridge_evaluation`: re-estimate each promoted candidate on the holdout window only, under cost stress.

A candidate passes the bridge when it has at least `min_holdout_samples` holdout trades, its holdout mean has the
sign of its discovery (shrunk) effect, and its holdout expectancy after 1x costs is >= 0. Failing candidates stay
in the frame with `bridge_pass = False` and the reasons; nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from lake_assets.discovery.hypotheses import RET_BPS, WINDOW, trade_samples
from lake_assets.discovery.snooping import CANDIDATE_KEYS, candidate_trades
from lake_assets.discovery.spec_model import DiscoverySpec, load_discovery_spec, require_current_spec


def stress_column(mult: float) -> str:
    return f"holdout_after_cost_bps_x{mult:g}".replace(".", "_")


def bridge_from_samples(candidates: pl.DataFrame, samples: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Bridge statistics for the promoted rows of `candidates` from the holdout rows of `samples`."""
    require_current_spec(candidates, spec, "phase2_candidates")
    cfg = spec.defaults.bridge
    promoted = candidates.filter(pl.col("promoted"))
    holdout = samples.filter(pl.col(WINDOW) == "holdout") if WINDOW in samples.columns else samples
    trades = candidate_trades(promoted, holdout, spec)
    stats = trades.group_by(*CANDIDATE_KEYS, maintain_order=True).agg(
        holdout_n=pl.len().cast(pl.Int64),
        holdout_mean_bps=pl.col(RET_BPS).mean(),
        holdout_std_bps=pl.col(RET_BPS).std(ddof=1),
        holdout_hit_rate=(pl.col(RET_BPS) > 0).mean(),
        holdout_first_ts=pl.col("entry_ts").min(),
        holdout_last_ts=pl.col("entry_ts").max(),
    )
    out = promoted.join(stats, on=list(CANDIDATE_KEYS), how="left", maintain_order="left").with_columns(
        pl.col("holdout_n").fill_null(0)
    )
    stress = {stress_column(m): pl.col("holdout_mean_bps") - m * pl.col("round_trip_cost_bps")
              for m in cfg.cost_stress_multipliers}  # fmt: skip
    out = out.with_columns(**stress).with_columns(
        holdout_after_cost_bps=pl.col(stress_column(1.0)),
        cost_stress_multipliers=pl.lit(list(cfg.cost_stress_multipliers), dtype=pl.List(pl.Float64)),
        cost_stress_curve_bps=pl.concat_list([pl.col(c) for c in stress]),
        holdout_sign_agrees=(pl.col("holdout_mean_bps").sign() == pl.col("shrunk_effect_bps").sign()).fill_null(False),
    )
    checks = {
        "holdout_samples": (pl.col("holdout_n") >= cfg.min_holdout_samples, pl.format(
            "holdout_samples: n={} < {}", pl.col("holdout_n"), pl.lit(cfg.min_holdout_samples))),
        "sign_agreement": (pl.col("holdout_sign_agrees"), pl.format(
            "sign_agreement: holdout mean {} bps vs discovery {} bps",
            pl.col("holdout_mean_bps").round(2).cast(pl.String).fill_null("null"),
            pl.col("shrunk_effect_bps").round(2).cast(pl.String))),
        "holdout_after_cost": ((pl.col("holdout_after_cost_bps") >= 0).fill_null(False), pl.format(
            "holdout_after_cost: {} bps < 0", pl.col("holdout_after_cost_bps").round(2).cast(pl.String)
            .fill_null("null"))),
    }  # fmt: skip
    passed = pl.all_horizontal(*[ok for ok, _ in checks.values()])
    return out.with_columns(
        bridge_pass=passed,
        bridge_status=pl.when(~checks["holdout_samples"][0])
        .then(pl.lit("insufficient_holdout"))
        .when(passed)
        .then(pl.lit("pass"))
        .otherwise(pl.lit("fail")),
        bridge_fail_reasons=pl.concat_str(
            [pl.when(~ok).then(why) for ok, why in checks.values()], separator="; ", ignore_nulls=True
        ),
    )


def bridge_evaluation(
    candidates: pl.DataFrame,
    events: pl.DataFrame,
    bars: pl.DataFrame,
    spec: DiscoverySpec | None = None,
    instrument_classes: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The `bridge_evaluation` asset body: holdout trades from events + bars, then `bridge_from_samples`."""
    spec = spec or load_discovery_spec()
    require_current_spec(candidates, spec, "phase2_candidates")
    promoted_types = candidates.filter(pl.col("promoted"))["event_type"].unique().to_list()
    ev = events.filter(pl.col("event_type").is_in(promoted_types))
    samples = trade_samples(ev, bars, spec, instrument_classes)
    return bridge_from_samples(candidates, samples, spec)
