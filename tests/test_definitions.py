"""The code location as Dagster sees it: it loads, every asset carries checks, groups are the layers, and the
`dagster` CLI validates the workspace the UI and the daemon load."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg

from lake_assets.definitions import all_assets, defs
from lake_assets.event_log import dagster_yaml
from lake_assets.partitions import instrument_month_partitions
from lake_assets.settings import PROJECT_ROOT

FOUNDATION = {
    "raw": {"raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades"},
    "cleaned": {"bars", "bars_1h", "bars_1d"},
}


def test_definitions_load_with_checks_on_every_asset() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set().union(*FOUNDATION.values()) <= keys
    checks_by_asset: dict[str, set[str]] = {}
    for check_key in graph.asset_check_keys:
        checks_by_asset.setdefault(check_key.asset_key.to_user_string(), set()).add(check_key.name)
    missing = sorted(k for k in keys if not checks_by_asset.get(k))
    assert missing == [], f"assets without checks: {missing}"
    assert {"expectations", "unique_increasing_ts", "gap_ratio", "staleness"} <= checks_by_asset["bars"]
    assert all("expectations" in checks_by_asset[a] for a in FOUNDATION["raw"])


def test_groups_are_the_layers() -> None:
    groups: dict[str, set[str]] = {}
    for asset in all_assets:
        for key, group in asset.group_names_by_key.items():
            groups.setdefault(group, set()).add(key.to_user_string())
    for group, names in FOUNDATION.items():
        assert names <= groups[group], group
    assert "default" not in groups  # every asset is placed in its layer
    for asset in all_assets:
        if asset.group_names_by_key.keys() & {dg.AssetKey(n) for n in set().union(*FOUNDATION.values())}:
            assert asset.partitions_def == instrument_month_partitions
            assert asset.backfill_policy == dg.BackfillPolicy.single_run()


def test_sensors_schedules_and_jobs_are_registered() -> None:
    assert {s.name for s in defs.sensors or []} >= {"landing_sensor", "automation_sensor", "strategy_sensor"}
    assert {s.name for s in defs.schedules or []} >= {"daily_refresh_schedule"}
    assert defs.resolve_job_def("refresh_current_month").name == "refresh_current_month"
    assert defs.resolve_job_def("ingest_landing_files").name == "ingest_landing_files"
    assert set(defs.resources or {}) >= {"lake", "warehouse", "market_data"}


def test_dagster_cli_validates_the_workspace(data_root: Path, tmp_path: Path) -> None:
    env = os.environ.copy()  # data_root has pointed QLAKE_DATA_ROOT, QLAKE_WAREHOUSE and DAGSTER_HOME at tmp
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(dagster_yaml(env["DAGSTER_HOME"]))
    proc = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lake_assets.definitions" in proc.stdout + proc.stderr
