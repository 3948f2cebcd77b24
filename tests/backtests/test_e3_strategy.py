"""E3 (spec/strategies/e3_perp_flow.json) as a spec-declared strategy: profiles, conditions with reasons, and a
backtest through `book_runs` writing `signal_reasons`, on synthetic perps through the real layers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perp_lake import perp, perp_frames, write_perp_lake  # noqa: E402

from lake_assets import tables  # noqa: E402
from lake_assets.backtests import book_runs  # noqa: E402
from lake_assets.backtests.strategy_rules import conditions  # noqa: E402
from lake_assets.backtests.strategy_spec import (  # noqa: E402
    compile_signals,
    load_strategy,
    parse_strategy,
    signal_reasons,
)
from lake_assets.settings import spec_dir  # noqa: E402
from lake_assets.specs import SpecError  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import TS  # noqa: E402

E3 = spec_dir() / "strategies" / "e3_perp_flow.json"
INPUTS = {"body_atr", "volume_z", "depth_imbalance", "basis_bps", "funding_rate", "oi_change", "rv_48", "spread_bps"}


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    bars, feats = perp_frames(perp(5), "2026-01", "2026-02")
    return bars.join(feats.select(TS, *[c for c in feats.columns if c in INPUTS and c not in bars.columns]), on=TS)


def test_e3_spec_declares_its_inputs_thresholds_and_a_high_trade_profile() -> None:
    spec = load_strategy(E3)
    assert spec.reasons and spec.markets == ("perp",)
    assert spec.required_columns() >= INPUTS
    loose = spec.profile_params("high_trade")
    assert loose["body_min"] < spec.defaults()["body_min"] and loose["spread_max"] > spec.defaults()["spread_max"]
    data = json.loads(E3.read_text())
    data["profiles"]["bad"] = {"body_min": 99.0}
    with pytest.raises(SpecError) as err:
        parse_strategy(data, E3)
    assert "profiles.bad" in str(err.value) and "outside" in str(err.value)
    data["profiles"]["bad"] = {"nope": 1.0}
    with pytest.raises(SpecError, match="profiles.bad"):
        parse_strategy(data, E3)


def test_conditions_split_a_rule_into_its_and_terms() -> None:
    got = conditions("close > open and (a < 1 or b > 2) AND x crosses above y")
    assert [c.text for c in got] == ["close > open", "(a < 1 or b > 2)", "x crosses above y"]
    assert [c.op for c in got] == [">", None, "crosses above"]


def test_every_entry_carries_its_reasons_with_values_and_thresholds(frame: pl.DataFrame) -> None:
    spec = load_strategy(E3)
    counts = {}
    for profile in (None, "high_trade"):
        params = spec.profile_params(profile)
        sig = compile_signals(frame, spec, params)
        counts[profile] = int(sig["long_entry"].sum() + sig["short_entry"].sum())
    assert 0 < counts[None] < counts["high_trade"]
    params = spec.profile_params(None)
    sig = compile_signals(frame, spec, params)
    why = signal_reasons(sig, spec, params)
    n_entries = int(sig["long_entry"].sum() + sig["short_entry"].sum())
    assert why.height == n_entries * len(spec.entry_rules.long)  # one row per condition of the side
    assert why["fired"].all()  # the entry rules are ANDed: every condition held
    assert set(why["action"]) == {"entry"}
    imb = why.filter(pl.col("condition") == "depth_imbalance > imb_min")
    assert (imb["threshold"] == params["imb_min"]).all() and (imb["value"] > imb["threshold"]).all()
    short = why.filter(pl.col("condition") == "depth_imbalance < -imb_min")
    assert (short["threshold"] == -params["imb_min"]).all()
    # a value is the frame's value at the signal bar
    row = why.filter(pl.col("condition") == "spread_bps < spread_max").row(0, named=True)
    assert frame.filter(pl.col(TS) == row[TS])["spread_bps"].item() == row["value"]


def test_e3_backtest_writes_signal_reasons(data_root: Path, frame: pl.DataFrame) -> None:
    lake = Lake()
    pair = perp(5)
    write_perp_lake(lake, [pair], "2026-01", "2026-02")
    spec = load_strategy(E3)
    runs = book_runs.run_json_strategy(lake, spec, [pair[0]], params=spec.profile_params("high_trade"))
    [run] = runs
    assert run.execution == "signals" and run.reasons is not None and run.reasons.height
    out = book_runs.result_tables(runs, "h")
    assert not tables.compare_schema(tables.SIGNAL_REASONS, out["signal_reasons"].schema)
    assert out["metrics"]["n_trades"].item() > 10
    entries = out["signal_reasons"].select(TS, "side").unique()
    orders = out["orders"].filter(pl.col("action") == "ENTRY")
    assert orders.height <= entries.height  # every entry order has its reasons (some signals come while in position)
    assert orders.join(entries, on=TS, how="anti").height == 0
