"""`qlake demo` plans the model layer: labels with the instrument-month range, the demo profile's training sets and
variants as tagged ranges (few trials), the leaderboard after them, kept models in the strategy phase."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_assets.backtests.strategies import parse_key, strategy_catalog
from lake_assets.cli import plan_runs
from lake_assets.models.assets import PROFILE_TAG
from lake_assets.models.spec_model import model_spec


def test_demo_plan_runs_the_profile(data_root: Path) -> None:
    runs = plan_runs(None, None, None, "demo")
    labels = [r.label for r in runs]
    assert any("labels" in r.asset_keys and "features" in r.asset_keys for r in runs)
    model = [r for r in runs if r.asset_keys == ["model_runs"]]
    assert [r.label for r in model] == ["model_runs 1d.B1.lightgbm..1d.R.nlinear (demo)"]
    assert model[0].tags[PROFILE_TAG] == "demo" and model_spec().trials_for("demo") == 3
    assert [r.label for r in runs if r.asset_keys == ["training_sets"]] == ["training_sets 1d.B1..1d.R (demo)"]
    assert labels.index(model[0].label) < next(i for i, r in enumerate(runs) if "model_leaderboard" in r.asset_keys)
    # without the profile: every variant in one run, the spec's full trial budget
    full = [r for r in plan_runs(["model_runs"]) if r.asset_keys == ["model_runs"]]
    assert full[0].range_start == "5m.B1.lightgbm" and full[0].range_end == "1d.R.nlinear" and not full[0].tags


def test_model_strategy_keys() -> None:
    assert parse_key("model.1h.B1.lightgbm") == ("model", "1h.B1.lightgbm")
    with pytest.raises(ValueError, match="model.<variant>"):
        parse_key("model.")
    catalog = strategy_catalog({}, [], {"model.1d.R.linear": "abc"})
    assert catalog == {"model.1d.R.linear": "abc"}
