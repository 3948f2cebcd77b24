"""Promotion gates and tracks for Phase-2 candidates, with a human-readable reason for every failed gate.

Gates (thresholds from spec/gates.yaml, per event type overrides applied):
- sample: the hypothesis was tested (n >= min_samples, positive standard error);
- fdr: q-value <= max_q_value;
- economic: shrunk effect minus round-trip cost >= min_after_cost_bps;
- conservative: shrunk effect minus cost x conservative_cost_multiplier still > 0;
- stability: the mean has the effect's sign in the first and in the second half of the sample;
- state_information: the state-level shrinkage weight >= min_state_weight (unconditional "all" rows pass: there is
  no state to carry information);
- spa: Hansen's SPA p-value (consistent) of the set that passed every gate above <= max_spa_pvalue: the best of the
  set beats doing nothing by more than luck across that many tries;
- stepm: Romano-Wolf StepM (at gates.yaml `snooping.stepm_size`) finds this row superior to doing nothing, when
  require_stepm. The snooping gates bootstrap the rows that passed every other gate (`apply_snooping_gates`); rows
  that failed an earlier gate are not bootstrapped and fail them as "not evaluated".
Track `standard` = every gate passes; `fallback_only` = the gates listed in `tracks.fallback_requires` pass but some
other gate fails; otherwise no track (null).
"""

from __future__ import annotations

import polars as pl

from lake_assets.discovery.hypotheses import EVENT_TYPE, STATE_COL
from lake_assets.discovery.spec_model import GATE_NAMES, SNOOPING_GATES, STATE_ALL, DiscoverySpec

BASE_GATES = tuple(g for g in GATE_NAMES if g not in SNOOPING_GATES)


def _thresholds(spec: DiscoverySpec, event_types: list[str]) -> pl.DataFrame:
    rows = [{EVENT_TYPE: e, **spec.gates.thresholds_for(e).model_dump()} for e in event_types]
    schema = {EVENT_TYPE: pl.String, "max_q_value": pl.Float64, "min_after_cost_bps": pl.Float64,
              "min_state_weight": pl.Float64, "require_stable_sign": pl.Boolean, "max_spa_pvalue": pl.Float64,
              "require_stepm": pl.Boolean}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def _num(col: str, digits: int = 2) -> pl.Expr:
    return pl.col(col).round(digits).cast(pl.String).fill_null("null")


def apply_gates(cands: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Add `gate_<name>` booleans for every gate but the snooping ones, `failed_gates` (comma-separated names),
    `fail_reasons` ("; "-separated), `promotion_track` and `promoted` (over those gates; `apply_snooping_gates`
    then adds spa / stepm and recomputes them). String concatenation, not list columns: 20x faster at 50k rows."""
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
    return _tracks(df.with_columns(**{f"_why_{g}": reasons[g] for g in BASE_GATES}), spec, BASE_GATES)


def _tracks(df: pl.DataFrame, spec: DiscoverySpec, names: tuple[str, ...]) -> pl.DataFrame:
    """failed_gates, fail_reasons, promotion_track and promoted from the `gate_<g>` / `_why_<g>` columns of `names`
    (the `_why_` columns are dropped)."""
    failed = [pl.when(~pl.col(f"gate_{g}")).then(pl.lit(g)) for g in names]
    why = [pl.when(~pl.col(f"gate_{g}")).then(pl.col(f"_why_{g}")) for g in names]
    all_pass = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in names])
    fallback = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in spec.gates.tracks.fallback_requires])
    return df.with_columns(
        failed_gates=pl.concat_str(failed, separator=",", ignore_nulls=True),
        fail_reasons=pl.concat_str(why, separator="; ", ignore_nulls=True),
        promotion_track=promotion_track(all_pass, fallback),
        promoted=all_pass,
    ).drop([f"_why_{g}" for g in names])


SNOOPING_SCHEMA = {"hypothesis_id": pl.String, "spa_pvalue": pl.Float64, "spa_pvalue_lower": pl.Float64,
                   "spa_pvalue_upper": pl.Float64, "stepm_superior": pl.Boolean,
                   "snooping_n_models": pl.Int64}  # fmt: skip


def apply_snooping_gates(cands: pl.DataFrame, snoop: pl.DataFrame | None, spec: DiscoverySpec) -> pl.DataFrame:
    """Join the SPA / StepM results of the rows that passed every other gate (`promoted` after `apply_gates`) and
    add the `spa` and `stepm` gates; recompute failed gates, reasons, track and promotion over every gate.

    `snoop` None means no trade samples were given (unit use of `phase2_candidates`): the snooping gates are then
    not evaluated and pass (`snooping_evaluated` False); the asset always evaluates them.
    """
    evaluated = snoop is not None
    snoop = snoop if snoop is not None else pl.DataFrame(schema=SNOOPING_SCHEMA)
    df = cands.join(snoop, on="hypothesis_id", how="left", maintain_order="left")
    tried = pl.col("promoted")  # passed every other gate: the set SPA / StepM bootstrap
    if evaluated:
        spa_ok = tried & (pl.col("spa_pvalue") <= pl.col("max_spa_pvalue")).fill_null(False)
        stepm_ok = tried & (~pl.col("require_stepm") | pl.col("stepm_superior").fill_null(False))
    else:
        spa_ok = stepm_ok = tried
    not_tried = "{}: not evaluated (an earlier gate failed)"
    spa_why = (
        pl.when(~tried)
        .then(pl.lit(not_tried.format("spa")))
        .when(pl.col("spa_pvalue").is_null())
        .then(pl.lit("spa: not testable (too few periods of PnL for the bootstrap)"))
        .otherwise(pl.format("spa: p={} > {}", _num("spa_pvalue", 4), pl.col("max_spa_pvalue")))
    )
    stepm_why = (
        pl.when(~tried)
        .then(pl.lit(not_tried.format("stepm")))
        .when(pl.col("spa_pvalue").is_null())
        .then(pl.lit("stepm: not testable (too few periods of PnL for the bootstrap)"))
        .otherwise(pl.format("stepm: not superior at size {}", pl.lit(spec.gates.snooping.stepm_size)))
    )
    df = df.with_columns(gate_spa=spa_ok, gate_stepm=stepm_ok, snooping_evaluated=pl.lit(evaluated))
    why = {"spa": spa_why, "stepm": stepm_why}
    blank = pl.when(pl.col("failed_gates") != "").then(pl.col("failed_gates"))
    blank_why = pl.when(pl.col("fail_reasons") != "").then(pl.col("fail_reasons"))
    all_pass = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in GATE_NAMES])
    fallback = pl.all_horizontal(*[pl.col(f"gate_{g}") for g in spec.gates.tracks.fallback_requires])
    return df.with_columns(
        failed_gates=pl.concat_str(
            [blank, *[pl.when(~pl.col(f"gate_{g}")).then(pl.lit(g)) for g in SNOOPING_GATES]],
            separator=",", ignore_nulls=True,
        ),
        fail_reasons=pl.concat_str(
            [blank_why, *[pl.when(~pl.col(f"gate_{g}")).then(why[g]) for g in SNOOPING_GATES]],
            separator="; ", ignore_nulls=True,
        ),
        promotion_track=promotion_track(all_pass, fallback),
        promoted=all_pass,
    )  # fmt: skip


def promotion_track(all_pass: pl.Expr, fallback: pl.Expr) -> pl.Expr:
    """"standard" when every gate passed, "fallback_only" when the fallback track's gates did, else null."""
    return pl.when(all_pass).then(pl.lit("standard")).when(fallback).then(pl.lit("fallback_only")).otherwise(None)
