"""Hierarchical shrinkage beats raw estimates on simulated hierarchical data, and pools hard when nothing differs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.discovery.hypotheses import aggregate_hypotheses
from lake_assets.discovery.shrinkage import shrink_hierarchical

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _samples(rng: np.random.Generator, tau_family: float, tau_event: float, tau_state: float, noise: float):
    """Trade samples with true effects family + event + vol-regime state, plus the noise-free truth per trade."""
    rows = []
    for f in range(4):
        mu_f = rng.normal(0, tau_family)
        for e in range(4):
            mu_e = mu_f + rng.normal(0, tau_event)
            gam = {v: rng.normal(0, tau_state) for v in ("low", "mid", "high")}
            for inst in ("AAA", "BBB"):
                n = int(rng.integers(30, 120))
                regimes = rng.choice(["low", "mid", "high"], n)
                truth = mu_e + np.array([gam[v] for v in regimes])
                for k in range(n):
                    rows.append((f"F{f}", f"F{f}E{e}", inst, regimes[k], truth[k], truth[k] + rng.normal(0, noise), k))
    df = pl.DataFrame(rows, orient="row",
                      schema=["family", "event_type", "instrument", "vol_regime", "truth", "ret_bps", "k"])  # fmt: skip
    return df.with_columns(
        event_id=pl.concat_str("event_type", "instrument", pl.col("k").cast(pl.String)),
        instrument_class=pl.lit("crypto"),
        timeframe=pl.lit("5m"),
        horizon=pl.lit(12, dtype=pl.Int64),
        ts=pl.lit(T0) + pl.duration(hours=pl.col("k")),
        direction=pl.lit("long"),
        base_sign=pl.lit(1.0),
        window=pl.lit("discovery"),
        carry_state=pl.lit(None, dtype=pl.String),
        session=pl.lit(None, dtype=pl.String),
        trend_state=pl.lit(None, dtype=pl.String),
    ).with_columns(entry_ts=pl.col("ts") + timedelta(minutes=5), exit_ts=pl.col("ts") + timedelta(minutes=60))


def _estimates(spec, samples: pl.DataFrame) -> pl.DataFrame:
    hyp = aggregate_hypotheses(samples, spec).filter(pl.col("template") == "continuation")
    truth = aggregate_hypotheses(samples.with_columns(ret_bps=pl.col("truth")), spec).select(
        "hypothesis_id", true_bps="mean_bps"
    )
    return shrink_hierarchical(hyp, spec.families.shrinkage.cell_by).join(truth, on="hypothesis_id")


def test_shrunk_estimates_have_lower_mse_than_raw(spec) -> None:
    ratios = []
    for seed in range(6):
        est = _estimates(spec, _samples(np.random.default_rng(seed), 4.0, 4.0, 3.0, 40.0))
        raw = ((est["raw_effect_bps"] - est["true_bps"]) ** 2).mean()
        shrunk = ((est["shrunk_effect_bps"] - est["true_bps"]) ** 2).mean()
        ratios.append(shrunk / raw)
    print(f"shrinkage MSE ratio (shrunk/raw) per seed: {np.round(ratios, 3).tolist()}")
    assert max(ratios) < 1.0
    assert np.mean(ratios) < 0.8


def test_weights_are_probabilities_and_pool_when_homogeneous(spec) -> None:
    est = _estimates(spec, _samples(np.random.default_rng(9), 0.0, 0.0, 0.0, 40.0))
    for w in ("family_weight", "event_weight", "state_weight"):
        assert est[w].is_between(0.0, 1.0).all()
    # no real heterogeneity: the state level carries almost no weight and shrunk effects collapse towards global
    assert est["state_weight"].mean() < 0.3
    assert est["shrunk_effect_bps"].std() < 0.5 * est["raw_effect_bps"].std()


def test_heterogeneous_events_keep_their_own_effects(spec) -> None:
    est = _estimates(spec, _samples(np.random.default_rng(4), 0.0, 30.0, 0.0, 20.0))
    assert est["event_weight"].min() > 0.8
    base = est.filter(pl.col("state_col") == "all")
    assert np.corrcoef(base["shrunk_effect_bps"], base["true_bps"])[0, 1] > 0.95
