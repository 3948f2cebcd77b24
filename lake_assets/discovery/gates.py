"""Promotion gates and tracks for Phase-2 candidates, with a human-readable reason for every failed gate.

Gates (thresholds from spec/gates.yaml, per event type overrides applied):
- sample: the hypothesis was tested (n >= min_samples, positive standard error);
- fdr: q-value <= max_q_value;
- economic: shrunk effect minus round-trip cost >= min_after_cost_bps;
- conservative: shrunk effect minus cost x conservative_cost_multiplier still > 0;
- stability: the mean has the effect's sign in the first and in the second half of the sample;
- state_information: the state-level shrinkage weight >= min_state_weight (unconditional "all" rows pass: there is
  no state to carry information).
Track `standard` = every gate passes; `fallback_only` = the gates listed in `tracks.fallback_requires` pass but some
other gate fails; otherwise no track (null).
"""

from __future__ import annotations

import polars as pl

from lake_assets.discovery.hypotheses import EVENT_TYPE, STATE_COL
from lake_assets.discovery.spec_model import GATE_NAMES, STATE_ALL, DiscoverySpec


def _thresholds(spec: DiscoverySpec, event_types: list[str]) -> pl.DataFrame:
    rows = [{EVENT_TYPE: e, **spec.gates.thresholds_for(e).model_dump()} for e in event_types]
    schema = {EVENT_TYPE: pl.String, "max_q_value": pl.Float64, "min_after_cost_bps": pl.Float64,
              "min_state_weight": pl.Float64, "require_stable_sign": pl.Boolean}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def _num(col: str, digits: int = 2) -> pl.Expr:
    return pl.col(col).round(digits).cast(pl.String).fill_null("null")


def apply_gates(cands: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Add `gate_<name>` booleans, `failed_gates` (comma-separated names), `fail_reasons` ("; "-separated),
    `promotion_track` and `promoted`. String concatenation, not list columns: 20x faster at 50k rows."""
    mult = spec.gates.conservative_cost_multiplier
    min_n = spec.defaults.discovery.min_samples
    th = _thresholds(spec, cands[EVENT_TYPE].unique().sort().to_list())
    df = cands.join(th, on=EVENT_TYPE, how="left", maintain_order="left").with_columns(
        shrunk_after_cost_bps=pl.col("shrunk_effect_bps") - pl.col("round_trip_cost_bps"),
        shrunk_after_cost_conservative_bps=pl.col("shrunk_effect_bps") - mult * pl.col("round_trip_cost_bps"),
    )
    effect_sign = pl.col("shrunk_effect_bps").sign()
    gates = {
        "sample": pl.col("p_value").is_not_null() & (pl.col("n") >= min_n),
        "fdr": pl.col("q_value") <= pl.col("max_q_value"),
        "economic": pl.col("shrunk_after_cost_bps") >= pl.col("min_after_cost_bps"),
        "conservative": pl.col("shrunk_after_cost_conservative_bps") > 0,
        "stability": ~pl.col("require_stable_sign")
        | (
            (pl.col("sign_first_half") == pl.col("sign_second_half"))
            & (pl.col("sign_first_half").cast(pl.Float64) == effect_sign)
            & (effect_sign != 0)
        ),
        "state_information": (pl.col(STATE_COL) == STATE_ALL) | (pl.col("state_weight") >= pl.col("min_state_weight")),
    }
    reasons = {
        "sample": pl.format("sample: n={} < {} or untestable", pl.col("n"), pl.lit(min_n)),
        "fdr": pl.format("fdr: q={} > {}", _num("q_value", 4), pl.col("max_q_value")),
        "economic": pl.format(
            "economic: shrunk after-cost {} bps < {}", _num("shrunk_after_cost_bps"), pl.col("min_after_cost_bps")
        ),
        "conservative": pl.format(
            "conservative: after {}x cost {} bps <= 0", pl.lit(mult), _num("shrunk_after_cost_conservative_bps")
        ),
        "stability": pl.format(
            "stability: half-sample signs {}/{} vs effect sign {}",
            pl.col("sign_first_half").cast(pl.String).fill_null("null"),
            pl.col("sign_second_half").cast(pl.String).fill_null("null"),
            effect_sign.cast(pl.Int8).cast(pl.String).fill_null("null"),
        ),
        "state_information": pl.format(
            "state_information: state weight {} < {}", _num("state_weight", 3), pl.col("min_state_weight")
        ),
    }
    df = df.with_columns(**{f"gate_{g}": e.fill_null(False) for g, e in gates.items()})
    failed = [pl.when(~pl.col(f"gate_{g}")).then(pl.lit(g)) for g in GATE_NAMES]
    why = [pl.when(~pl.col(f"gate_{g}")).then(reasons[g]) for g in GATE_NAMES]
    all_pass = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in GATE_NAMES])
    fallback = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in spec.gates.tracks.fallback_requires])
    return df.with_columns(
        failed_gates=pl.concat_str(failed, separator=",", ignore_nulls=True),
        fail_reasons=pl.concat_str(why, separator="; ", ignore_nulls=True),
        promotion_track=pl.when(all_pass)
        .then(pl.lit("standard"))
        .when(fallback)
        .then(pl.lit("fallback_only"))
        .otherwise(None),
        promoted=all_pass,
    )
