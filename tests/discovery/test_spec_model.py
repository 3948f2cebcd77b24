"""The discovery spec: validation errors name file, key and problem; the hash guards consumers."""

from __future__ import annotations

import polars as pl
import pytest

from lake_assets.discovery.spec_model import (
    GATES_FILE,
    GLOBAL_DEFAULTS_FILE,
    SpecHashMismatchError,
    load_discovery_spec,
    require_current_spec,
)
from lake_assets.specs import SpecError


def test_real_spec_loads(spec) -> None:
    assert spec.defaults.discovery.entry_lag_bars >= 1
    assert {t.verb for t in spec.templates} == {"continuation", "reversal"}
    assert spec.gates.costs["crypto"].round_trip_bps == pytest.approx(2 * (4.0 + 0.5 + 1.5))
    assert len(spec.spec_hash) == 16


def test_entry_lag_zero_is_a_spec_error(spec_copy) -> None:
    root = spec_copy({GLOBAL_DEFAULTS_FILE: {"discovery.entry_lag_bars": 0}})
    with pytest.raises(SpecError) as exc:
        load_discovery_spec(root)
    assert exc.value.key == "discovery.entry_lag_bars"
    assert exc.value.file.endswith(GLOBAL_DEFAULTS_FILE)
    assert "lookahead" in exc.value.problem


@pytest.mark.parametrize(
    ("rel", "edit", "key"),
    [
        (GATES_FILE, {"costs.crypto.fee_bps": -1}, "costs.crypto.fee_bps"),
        (GATES_FILE, {"defaults.max_q_value": 1.5}, "defaults.max_q_value"),
        (GATES_FILE, {"tracks.fallback_requires": ["fdr", "luck"]}, "tracks.fallback_requires"),
        (GLOBAL_DEFAULTS_FILE, {"discovery.horizons_bars": {"7m": [3]}}, "discovery.horizons_bars"),
        ("multiplicity/families.yaml", {"fdr.method": "holm"}, "fdr.method"),
    ],
)
def test_invalid_values_name_file_and_key(spec_copy, rel, edit, key) -> None:
    with pytest.raises(SpecError) as exc:
        load_discovery_spec(spec_copy({rel: edit}))
    assert exc.value.key == key and exc.value.file.endswith(rel)


def test_hash_changes_with_any_spec_file_and_frames_are_refused(spec_copy) -> None:
    base = load_discovery_spec(spec_copy())
    changed = load_discovery_spec(spec_copy({GATES_FILE: {"defaults.min_after_cost_bps": 9.0}}))
    assert base.spec_hash != changed.spec_hash
    frame = pl.DataFrame({"spec_hash": [base.spec_hash]})
    require_current_spec(frame, base, "phase2_candidates")
    with pytest.raises(SpecHashMismatchError, match="re-materialize phase2_candidates"):
        require_current_spec(frame, changed, "phase2_candidates")
    with pytest.raises(SpecHashMismatchError, match="no `spec_hash`"):
        require_current_spec(pl.DataFrame({"x": [1]}), base, "phase2_candidates")


def test_per_event_override(spec_copy) -> None:
    s = load_discovery_spec(spec_copy({GATES_FILE: {"overrides": {"E1": {"min_after_cost_bps": 7.5}}}}))
    assert s.gates.thresholds_for("E1").min_after_cost_bps == 7.5
    assert s.gates.thresholds_for("E1").max_q_value == s.gates.defaults.max_q_value
    assert s.gates.thresholds_for("E2") == s.gates.defaults
