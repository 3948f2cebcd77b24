"""Malformed event specs fail loading with SpecError(file, key, problem)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_assets.events.spec_model import (
    REGISTRY_FILE,
    EventCatalog,
    event_spec_from_dict,
    event_specs,
    load_event_specs,
)
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError


def _event(name: str = "VOL_SPIKE", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "family": "VOLATILITY_TRANSITION",
        "detector": {"template": "zscore_spike", "params": {"column": "rv_12", "window": 288, "z": 3.0}},
        "columns": ["rv_12"],
        "direction": "neutral",
        "cooldown": 12,
        "prevalence": {"min_per_1000": 0.01, "max_per_1000": 5.0},
    }
    data.update(overrides)
    return data


def _write(root: Path, events: dict[str, dict[str, Any]], registry: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for filename, data in events.items():
        (root / filename).write_text(yaml.safe_dump(data, sort_keys=False))
    if registry is None:
        registry = {d["name"]: d["family"] for d in events.values()}
    (root / REGISTRY_FILE).write_text(yaml.safe_dump({"event_types": registry}))
    return root


def _error(root: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_event_specs(root)
    return info.value


def test_a_valid_minimal_catalog_loads(tmp_path: Path) -> None:
    catalog = load_event_specs(_write(tmp_path, {"VOL_SPIKE.yaml": _event()}))
    assert catalog.names == ["VOL_SPIKE"]
    assert catalog.get("VOL_SPIKE").cooldown == 12


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ({"detector": {"template": "magic", "params": {}}}, "detector.template", "unknown template 'magic'"),
        (
            {"detector": {"template": "zscore_spike", "params": {"column": "rv_12", "z": 3.0}}},
            "detector.params.window",
            "Field required",
        ),
        (
            {"detector": {"template": "zscore_spike", "params": {"column": "rv_12", "window": 5, "z": 3, "k": 1}}},
            "detector.params.k",
            "Extra inputs are not permitted",
        ),
        (
            {"detector": {"template": "zscore_spike", "params": {"column": "rv_12", "window": 1, "z": 3.0}}},
            "detector.params.window",
            "greater than or equal to 2",
        ),
        ({"columns": ["rv_12", "rv_13"]}, "columns.1", "unknown column 'rv_13'"),
        ({"columns": ["rv_12", "rv_12"]}, "columns.1", "listed twice"),
        ({"columns": ["rv_48"]}, "detector.params.column", "column 'rv_12' is used but not declared"),
        (
            {
                "detector": {"template": "zscore_spike", "params": {"column": "vol_regime", "window": 5, "z": 3.0}},
                "columns": ["vol_regime"],
            },
            "detector.params.column",
            "needs numeric",
        ),
        ({"family": "VIBES"}, "family", "'VIBES' is not a canonical family"),
        ({"direction": "up"}, "direction", "Input should be 'long', 'short', 'both' or 'neutral'"),
        ({"cooldown": -1}, "cooldown", "greater than or equal to 0"),
        ({"prevalence": {"min_per_1000": 5, "max_per_1000": 1}}, "prevalence", "exceeds max_per_1000"),
        ({"filters": [{"column": "rv_12", "op": "gt", "value": "big"}]}, "filters.0", "needs a numeric `value`"),
        (
            {"filters": [{"column": "trend_state", "op": "gt", "value": 1.0}], "columns": ["rv_12", "trend_state"]},
            "filters.0",
            "needs a numeric column",
        ),
        ({"filters": [{"column": "rv_48", "op": "gt", "value": 1.0}]}, "filters.0.column", "not declared"),
        ({"sign_column": "session"}, "sign_column", "not declared"),
        ({"name": "vol spike"}, "name", "should match pattern"),
        ({"code": "__import__('os')"}, "code", "Extra inputs are not permitted"),
    ],
)
def test_malformed_event_file(tmp_path: Path, override: dict[str, Any], key: str, problem: str) -> None:
    data = _event(**override)
    registry = {"VOL_SPIKE": "VOLATILITY_TRANSITION"}
    err = _error(_write(tmp_path, {"VOL_SPIKE.yaml": data}, registry))
    assert err.file == str(tmp_path / "VOL_SPIKE.yaml")
    assert err.key == key
    assert problem in err.problem
    assert str(err) == f"{err.file}: {key}: {err.problem}"


def test_unknown_column_inside_a_predicate_template(tmp_path: Path) -> None:
    data = _event(
        detector={"template": "onset", "params": {"when": {"column": "funding_zz", "op": "gt", "value": 1.0}}},
    )
    err = _error(_write(tmp_path, {"VOL_SPIKE.yaml": data}))
    assert (err.key, "funding_zz" in err.problem) == ("detector.params.when.column", True)
    assert "not a known column" in err.problem


def test_duplicated_event_name(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, {"A.yaml": _event(), "B.yaml": _event()}, {"VOL_SPIKE": "VOLATILITY_TRANSITION"}))
    assert err.file == str(tmp_path / "B.yaml") and err.key == "name"
    assert "duplicate event type 'VOL_SPIKE'" in err.problem and "A.yaml" in err.problem


def test_registry_lists_a_type_without_a_file(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {"VOL_SPIKE.yaml": _event()},
        {"VOL_SPIKE": "VOLATILITY_TRANSITION", "VOL_SHOCK": "VOLATILITY_TRANSITION"},
    )
    err = _error(root)
    assert (err.file, err.key) == (str(root / REGISTRY_FILE), "event_types.VOL_SHOCK")
    assert "no event spec file" in err.problem


def test_a_file_whose_type_is_not_in_the_registry(tmp_path: Path) -> None:
    root = _write(
        tmp_path, {"VOL_SPIKE.yaml": _event(), "X.yaml": _event("VOL_SHOCK")}, {"VOL_SPIKE": "VOLATILITY_TRANSITION"}
    )
    err = _error(root)
    assert (err.file, err.key) == (str(root / "X.yaml"), "name")
    assert "not listed in canonical_event_registry.yaml" in err.problem


def test_family_must_match_the_registry_and_be_canonical(tmp_path: Path) -> None:
    err = _error(_write(tmp_path / "a", {"VOL_SPIKE.yaml": _event()}, {"VOL_SPIKE": "FORCED_FLOW"}))
    assert err.key == "family" and "FORCED_FLOW" in err.problem
    err = _error(_write(tmp_path / "b", {"VOL_SPIKE.yaml": _event()}, {"VOL_SPIKE": "NOT_A_FAMILY"}))
    assert err.key == "event_types.VOL_SPIKE" and err.file.endswith(REGISTRY_FILE)


def test_missing_registry_and_unparsable_yaml(tmp_path: Path) -> None:
    (tmp_path / "VOL_SPIKE.yaml").write_text(yaml.safe_dump(_event()))
    err = _error(tmp_path)
    assert err.key == "<file>" and err.file.endswith(REGISTRY_FILE)
    _write(tmp_path, {"VOL_SPIKE.yaml": _event()})
    (tmp_path / "BROKEN.yaml").write_text("name: [unclosed\n")
    err = _error(tmp_path)
    assert err.file.endswith("BROKEN.yaml") and err.key.startswith("line")


def test_shipped_specs_reload_when_a_file_changes(tmp_path: Path) -> None:
    root = tmp_path / "events"
    shutil.copytree(spec_dir() / "events", root)
    first = event_specs(root)
    assert event_specs(root) is first  # cached
    path = root / "VOL_SPIKE.yaml"
    path.write_text(path.read_text().replace("cooldown: 4h", "cooldown: 7"))
    import os

    os.utime(path, (1, 1))  # force a different mtime even on coarse clocks
    second = event_specs(root)
    assert second.get("VOL_SPIKE").cooldown == 7 and second.spec_hash != first.spec_hash


def test_windows_and_cooldowns_as_durations_resolve_per_timeframe(shipped_specs: EventCatalog) -> None:
    spike = shipped_specs.get("VOL_SPIKE")  # window {default: 1d, 1d: 20}, cooldown 4h
    assert (spike.params.window, spike.cooldown) == (288, 48)  # type: ignore[attr-defined]
    hourly, daily = spike.at("1h"), spike.at("1d")
    assert (hourly.params.window, hourly.cooldown) == (24, 4)  # type: ignore[attr-defined]
    assert (daily.params.window, daily.cooldown) == (20, 1)  # type: ignore[attr-defined]
    assert spike.at("1d") is daily and spike.at("5m") is spike
    shift = shipped_specs.get("SPREAD_REGIME_WIDENING_EVENT").at("1d")  # short 4h, long 2d
    assert (shift.params.short, shift.params.long) == (1, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ({"cooldown": "soon"}, "cooldown", "expected a duration"),
        ({"cooldown": {"5m": 3}}, "cooldown", "no value for timeframe"),
        ({"detector": {"template": "zscore_spike", "params": {"column": "rv_12", "window": "2 days", "z": 3.0}}},
         "detector.params.window", "expected a duration"),
    ],
)  # fmt: skip
def test_bad_duration_windows_are_spec_errors(override: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        event_spec_from_dict(_event(**override), "E.yaml")
    assert err.value.key == key and problem in err.value.problem
