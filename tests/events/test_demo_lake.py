"""A demo-like lake (the universe's synthetic crypto instruments through the real vendor, cleaned, feature and context
layers): every event type either fires on an instrument, within its prevalence bounds, or says why it cannot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from demo_lake import demo_event_frames

from lake_assets.events.registry import bars_by_instrument, detect_events, prevalence_report, run_registry
from lake_assets.events.spec_model import EventCatalog
from lake_assets.features.catalog import load_feature_specs
from lake_assets.features.compute import compute_features
from lake_assets.vocabulary import CLOSE, INSTRUMENT, TS

SPREAD_EVENTS = {"SPREAD_BLOWOUT", "SPREAD_REGIME_WIDENING_EVENT", "SPREAD_REGIME_NARROWING_EVENT"}


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    return demo_event_frames("2026-01", "2026-11")


@pytest.fixture(scope="module")
def registry(frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog) -> tuple[pl.DataFrame, pl.DataFrame]:
    return run_registry(frames.values(), shipped_specs)


def test_every_applicable_event_type_fires_within_its_prevalence_bounds(
    registry: tuple[pl.DataFrame, pl.DataFrame], shipped_specs: EventCatalog
) -> None:
    events, app = registry
    report = prevalence_report(events, bars_by_instrument(app), shipped_specs, app)
    assert (report["min_per_1000"] > 0).all()  # zero events is a failure wherever the type applies
    applicable = report.filter(pl.col("status") != "not_applicable")
    silent = applicable.filter(pl.col("n_events") == 0)
    assert silent.height == 0, silent.select("event_type", INSTRUMENT)
    failing = report.filter(~pl.col("passed"))
    assert failing.height == 0, failing
    # every type fires somewhere in the demo
    assert set(events["event_type"].unique()) == set(shipped_specs.names) - {"FEE_REGIME_CHANGE_EVENT"}
    # the synthetic vendor quotes top of book: the spread events fire on every synthetic crypto instrument
    spread = events.filter(pl.col("event_type").is_in(SPREAD_EVENTS))
    assert set(spread[INSTRUMENT]) == set(app[INSTRUMENT])


def test_not_applicable_event_types_name_the_missing_inputs(registry: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, app = registry
    na = app.filter(~pl.col("applicable"))
    assert na["reason"].null_count() == 0 and (na["reason"].str.len_chars() > 10).all()
    reason = {(r["event_type"], r[INSTRUMENT]): r["reason"] for r in na.iter_rows(named=True)}
    instruments = set(app[INSTRUMENT])
    for inst in instruments:
        for ev in SPREAD_EVENTS:  # the synthetic vendor has top of book
            assert (ev, inst) not in reason
        assert "taker_fee_bps" in reason[("FEE_REGIME_CHANGE_EVENT", inst)]
    # order flow needs trades: only BTCUSDT-PERP has them in the demo universe
    assert ("ORDERFLOW_IMBALANCE_SHOCK", "BTCUSDT-PERP") not in reason
    assert "buy_volume, sell_volume" in reason[("ORDERFLOW_IMBALANCE_SHOCK", "ETHUSDT-PERP")]
    # the benchmark and its spot leg cannot decouple from themselves; the other crypto pairs can and do
    for inst in ("BTCUSDT-PERP", "BTCUSDT"):
        assert "benchmark" in reason[("CORRELATION_BREAKDOWN_EVENT", inst)]
    for inst in ("ETHUSDT", "ETHUSDT-PERP", "SOLUSDT", "SOLUSDT-PERP"):
        assert ("CORRELATION_BREAKDOWN_EVENT", inst) not in reason
    assert "funding_rate" in reason[("FUNDING_FLIP", "ETHUSDT")]


def test_weekly_open_is_the_sunday_asia_open(registry: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    events, _ = registry
    weekly = events.filter(pl.col("event_type") == "WEEKLY_OPEN_EVENT")
    assert weekly.height > 6 * 40
    assert set(weekly[TS].dt.weekday()) == {7} and set(weekly[TS].dt.hour()) == {21}


def test_spread_and_fee_events_fire_once_their_inputs_exist(
    frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog
) -> None:
    """The same instrument with top-of-book quotes and a venue fee schedule through the real feature layer."""
    frame = frames["ETHUSDT-PERP"]
    n = frame.height
    rng = np.random.default_rng(4)
    half = np.where((np.arange(n) // 9000) % 2 == 1, 2.0, 1.0) * rng.lognormal(0.0, 0.15, n)  # spread regimes, bps
    half[rng.random(n) < 1 / 5000] *= 12.0  # blowouts
    close = frame[CLOSE].to_numpy()
    bars = frame.select(*[c for c in frame.columns if c in ("ts", "instrument", "is_gap", "open", "high", "low",
                                                             "close", "volume")]).with_columns(
        bid=pl.Series(close * (1 - half / 1e4)),
        ask=pl.Series(close * (1 + half / 1e4)),
        taker_fee_bps=pl.Series(np.where(np.arange(n) >= n // 2, 3.5, 5.0)),
    )  # fmt: skip
    feats = compute_features(bars, load_feature_specs(), timeframe="5m")
    with_inputs = frame.with_columns(feats["spread_bps"], feats["fee_bps"])
    events, app = detect_events(with_inputs, shipped_specs, "ETHUSDT-PERP")
    wanted = SPREAD_EVENTS | {"FEE_REGIME_CHANGE_EVENT"}
    assert app.filter(pl.col("event_type").is_in(wanted))["applicable"].all()
    assert wanted <= set(events["event_type"])
    fee = events.filter(pl.col("event_type") == "FEE_REGIME_CHANGE_EVENT")
    assert fee.height == 1 and fee["direction"].item() == "short"  # the fee cut, one day after it
