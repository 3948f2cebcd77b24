"""Forward returns: entry strictly after detection, gaps skipped, non-overlapping samples, t equals scipy's."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from discovery_synth import CLASSES, EventKind, simulate
from scipy import stats

from lake_assets.discovery.hypotheses import (
    aggregate_hypotheses,
    expand_templates_states,
    phase2_hypotheses,
    trade_samples,
)
from lake_assets.discovery.spec_model import STATE_ALL

KINDS = [
    EventKind("E_MIX", "fam_a", "mixed", 0.02),
    EventKind("E_LONG", "fam_a", "long", 0.01),
    EventKind("E_BOTH", "fam_b", "both", 0.01),
]


@pytest.fixture(scope="module")
def data():
    return simulate(5, KINDS, n_bars=8_000, gap_rate=0.003)


def test_entries_start_strictly_after_detection(spec, data) -> None:
    bars, events = data
    s = trade_samples(events, bars, spec, CLASSES)
    step = timedelta(minutes=5)
    lag = spec.defaults.discovery.entry_lag_bars
    assert s.height > 500
    assert (s["entry_ts"] > s["ts"]).all()
    assert (s["entry_ts"] == s["ts"] + step * lag).all()  # on a regular grid the entry is exactly lag bars later
    assert (s["exit_ts"] == s["entry_ts"] + step * (s["horizon"] - 1)).all()


def test_forward_return_ignores_everything_up_to_the_detection_bar(spec, data) -> None:
    """Truncation/perturbation: rewriting every bar at or before the detection bar leaves the sample unchanged."""
    bars, events = data
    base = trade_samples(events, bars, spec, CLASSES).filter(pl.col("direction").is_in(["long", "short"]))
    rng = np.random.default_rng(0)
    picks = base.unique("event_id").sort("event_id").sample(8, seed=1)
    for ev in picks.iter_rows(named=True):
        mask = (pl.col("instrument") == ev["instrument"]) & (pl.col("ts") <= ev["ts"]) & ~pl.col("is_gap")
        noise = pl.Series(rng.uniform(0.5, 2.0, bars.height))
        changed = bars.with_columns(
            pl.when(mask).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c) for c in ("open", "close")
        )
        # and drop every bar after the longest window of this event: the future beyond the exit is not needed
        last_exit = base.filter(pl.col("event_id") == ev["event_id"])["exit_ts"].max()
        changed = changed.filter((pl.col("instrument") != ev["instrument"]) | (pl.col("ts") <= last_exit))
        again = trade_samples(events, changed, spec, CLASSES)
        a = base.filter(pl.col("event_id") == ev["event_id"]).sort("horizon")
        b = again.filter(pl.col("event_id") == ev["event_id"]).sort("horizon")
        assert a["horizon"].to_list() == b["horizon"].to_list()
        np.testing.assert_array_equal(a["ret_bps"].to_numpy(), b["ret_bps"].to_numpy())


def test_windows_touching_gaps_are_skipped(spec, data) -> None:
    bars, events = data
    s = trade_samples(events, bars, spec, CLASSES)
    gaps = bars.filter(pl.col("is_gap")).select("instrument", gap_ts="ts")
    assert gaps.height > 10
    hit = s.join(gaps, on="instrument").filter(
        (pl.col("gap_ts") >= pl.col("ts")) & (pl.col("gap_ts") <= pl.col("exit_ts"))
    )
    assert hit.height == 0
    assert s["ret_bps"].is_finite().all()


def test_samples_do_not_overlap_within_event_instrument_horizon(spec, data) -> None:
    bars, events = data
    s = trade_samples(events, bars, spec, CLASSES).sort("event_type", "instrument", "horizon", "entry_ts")
    prev_exit = pl.col("exit_ts").shift(1).over("event_type", "instrument", "horizon")
    assert s.filter(pl.col("entry_ts") <= prev_exit).height == 0


def test_undirected_events_follow_the_detection_bar_body(spec, data) -> None:
    bars, events = data
    s = trade_samples(events, bars, spec, CLASSES).filter(pl.col("direction") == "both")
    body = bars.select("instrument", "ts", sign=(pl.col("close") - pl.col("open")).sign())
    j = s.join(body, on=["instrument", "ts"])
    assert j.height == s.height > 0
    assert (j["base_sign"] == j["sign"]).all()


def test_t_statistics_equal_statsmodels_hac_on_the_same_samples(spec, data) -> None:
    """t = mean / Newey-West se (statsmodels OLS on a constant, HAC with bandwidth ceil(1.3 sqrt(n))); the iid se is
    kept."""
    import statsmodels.api as sm

    from lake_assets.stats.hac import fixed_b_mean, nw_bandwidth, nw_dof

    bars, events = data
    s = trade_samples(events, bars, spec, CLASSES).filter(pl.col("window") == "discovery")
    hyp = aggregate_hypotheses(s, spec)
    long = expand_templates_states(s, spec)
    keys = ["event_type", "instrument", "horizon", "template", "state_col", "state_value"]
    picked = hyp.filter(pl.col("n") >= 3).sort("hypothesis_id").head(250)  # plenty, and keeps the test fast
    rows = {tuple(r[k] for k in keys): r for r in picked.iter_rows(named=True)}
    parts = long.join(picked.select(keys), on=keys, how="semi").sort("entry_ts").partition_by(keys, as_dict=True)
    checked = 0
    for key, part in parts.items():
        row = rows[key]
        x = part["ret_bps"].to_numpy()
        ref = stats.ttest_1samp(x, 0.0)
        assert row["n"] == len(x)
        lags = int(nw_bandwidth(np.array([len(x)]))[0])
        fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
        # divided by the fixed-b mean of the Bartlett estimate, 1 - b + b^2/3 (b = lags / n)
        np.testing.assert_allclose(row["t_stat"], fit.tvalues[0] * np.sqrt(fixed_b_mean(len(x), lags)), rtol=1e-10)
        np.testing.assert_allclose(row["se_iid_bps"], x.mean() / ref.statistic, rtol=1e-10)
        assert row["hac_lags"] == lags and row["t_df"] == nw_dof(np.array([len(x)]), np.array([lags]))[0]
        np.testing.assert_allclose(row["mean_bps"], x.mean(), rtol=1e-12)
        np.testing.assert_allclose(row["median_bps"], np.median(x), rtol=1e-12)
        np.testing.assert_allclose(row["hit_rate"], (x > 0).mean())
        half = len(x) // 2
        assert row["sign_first_half"] == np.sign(x[:half].mean())
        assert row["sign_second_half"] == np.sign(x[half:].mean())
        checked += 1
    assert checked == 250


def test_hypothesis_rows_costs_and_states(spec, data) -> None:
    bars, events = data
    h = phase2_hypotheses(events, bars, spec, CLASSES)
    rt = spec.gates.costs["crypto"].round_trip_bps
    np.testing.assert_allclose(h["after_cost_bps"], h["mean_bps"] - rt)
    np.testing.assert_allclose(
        h["after_cost_conservative_bps"], h["mean_bps"] - spec.gates.conservative_cost_multiplier * rt
    )
    assert set(h["state_col"].unique()) == {STATE_ALL, *spec.families.states.columns}
    assert set(h["horizon"].unique()) == set(spec.defaults.discovery.horizons_bars["5m"])
    assert h["hypothesis_id"].is_unique().all()
    assert (h["spec_hash"] == spec.spec_hash).all()
    # continuation and reversal are mirror images of the same trades
    c = h.filter(pl.col("template") == "continuation").sort("hypothesis_id")
    r = h.filter(pl.col("template") == "reversal").sort("hypothesis_id")
    np.testing.assert_allclose(c["mean_bps"], -r["mean_bps"])


def test_bad_inputs_are_named(spec, data) -> None:
    bars, events = data
    with pytest.raises(ValueError, match="missing column"):
        trade_samples(events.drop("session"), bars, spec, CLASSES)
    with pytest.raises(ValueError, match="direction must be one of"):
        trade_samples(events.with_columns(direction=pl.lit("up")), bars, spec, CLASSES)
    with pytest.raises(ValueError, match="no instrument class"):
        trade_samples(events, bars, spec, {"AAA": "crypto"})
