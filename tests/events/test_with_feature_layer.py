"""Integration: the shipped event specs over frames built by the real feature layer (lake_assets/features)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from synthetic_inputs import synthetic_event_frame

from lake_assets.events.registry import detect_events
from lake_assets.events.spec_model import EventCatalog
from lake_assets.features.calendar import load_calendar_spec
from lake_assets.features.catalog import load_feature_specs
from lake_assets.features.compute import compute_features
from lake_assets.features.context import compute_context_features
from lake_assets.features.market_context import compute_market_context
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, IS_GAP, TS, conform

N = 3000


def _joined(bars: pl.DataFrame, features: pl.DataFrame, market: pl.DataFrame, context: pl.DataFrame) -> pl.DataFrame:
    """bars + features + market_context + context_features, the event layer's input for one instrument."""
    inst = bars[INSTRUMENT][0]
    feats = features.drop([c for c in features.columns if c in bars.columns and c != TS])
    ctx = context.filter(pl.col(INSTRUMENT) == inst)
    ctx = ctx.drop(
        [c for c in ctx.columns if c in bars.columns and c != TS]
        + [c for c in ctx.columns if c in feats.columns and c != TS]
    )
    mkt = market.drop([c for c in market.columns if c != TS and (c in bars.columns or c in feats.columns)])
    return bars.join(feats, on=TS, how="left").join(mkt, on=TS, how="left").join(ctx, on=TS, how="left").sort(TS)


@pytest.fixture(scope="module")
def joined_frames() -> dict[str, pl.DataFrame]:
    perp = conform(synthetic_event_frame(N, instrument="INT-PERP", seed=3, gap_rate=0.002), BARS_SCHEMA)
    spot = conform(synthetic_event_frame(N, instrument="INT", seed=3, perp=False, gap_rate=0.002), BARS_SCHEMA)
    catalog = load_feature_specs()
    market = compute_market_context(perp[TS], load_calendar_spec())
    context = compute_context_features({"INT-PERP": perp, "INT": spot}, {"INT-PERP": "INT"}, catalog)
    return {
        name: _joined(bars, compute_features(bars, catalog), market, context)
        for name, bars in (("perp", perp), ("spot", spot))
    }


def test_feature_layer_frames_feed_the_registry(
    joined_frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog
) -> None:
    events, app = detect_events(joined_frames["perp"], shipped_specs)
    applicable = app.filter(pl.col("applicable"))
    # ~10 days of bars: long-warm-up features (funding z, vol rank) are still all-null, so a few types wait
    assert applicable.height >= 35, app.filter(~pl.col("applicable"))
    missing = app.filter(pl.col("reason").str.contains("missing"))
    assert missing.height == 0, missing  # every column the specs name exists in the joined frame
    assert events["event_type"].n_unique() >= 20
    assert not events.join(joined_frames["perp"].filter(pl.col(IS_GAP)).select(TS), on=TS, how="semi").height


def test_spot_from_the_feature_layer_is_not_applicable_for_funding(
    joined_frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog
) -> None:
    _, app = detect_events(joined_frames["spot"], shipped_specs)
    na = set(app.filter(~pl.col("applicable"))["event_type"].to_list())
    assert {"FUNDING_FLIP", "FUNDING_TIMESTAMP_EVENT", "OI_SPIKE_POSITIVE"} <= na


@pytest.mark.parametrize("cut", [700, 1800, N - 1])
def test_truncation_on_feature_layer_frames(
    joined_frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog, cut: int
) -> None:
    frame = joined_frames["perp"]
    full, _ = detect_events(frame, shipped_specs)
    head, _ = detect_events(frame.head(cut), shipped_specs)
    assert_frame_equal(head, full.filter(pl.col(TS) < frame[TS][cut]))
