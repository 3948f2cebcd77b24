"""Retention and the disk guard (spec/retention.yaml) as the lake_retention asset with checks: deliveries beyond the
versions kept are pruned (fewer kept when free space is low), orphan temp files of dead writers go while a live
writer's stay, the checks pass afterwards, and the disk guard sensor asks for a run only when space is low."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_assets.settings import PROJECT_ROOT
from lake_assets.storage import retention
from lake_assets.storage.lake import Lake

DIMS = {"instrument": "BTCUSDT", "month": "2026-01"}


def _lake_with_leftovers(lake: Lake) -> tuple[Path, Path]:
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    for i in range(5):
        lake.write_delivery(pl.DataFrame({"x": [i]}), "raw", "raw_ohlcv", DIMS, t0 + timedelta(days=i), closed=True)
    lake.write(pl.DataFrame({"x": [4]}), "raw", "raw_ohlcv", DIMS)
    folder = lake.partition_path("raw", "raw_ohlcv", DIMS).parent
    dead = folder / ".part-0.parquet.999999999.deadbeef.tmp"  # a writer pid that cannot exist
    live = folder / f".part-0.parquet.{os.getpid()}.cafe.tmp"  # this process is writing it
    for f in (dead, live):
        f.write_bytes(b"partial")
        old = time.time() - 7200
        os.utime(f, (old, old))
    return dead, live


@pytest.mark.timeout(180)
def test_retention_asset_prunes_cleans_and_checks(data_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from lake_assets.maintenance.assets import lake_retention
    from resources import LakeResource

    spec = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec)
    (spec / "retention.yaml").write_text((PROJECT_ROOT / "spec" / "retention.yaml").read_text()
                                         .replace("keep_versions: 3", "keep_versions: 2"))  # fmt: skip
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec))
    lake = Lake()
    dead, live = _lake_with_leftovers(lake)

    result = dg.materialize([lake_retention], resources={"lake": LakeResource()})
    assert result.success
    assert [d.ingested_at.day for d in lake.deliveries("raw", "raw_ohlcv", DIMS)] == [4, 5]  # the newest two
    assert not dead.exists() and live.exists()  # a live writer's temp file is never touched
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), checks
    log = lake.read("maintenance", "lake_retention", [{}])
    assert sorted(log["action"].to_list()) == ["pruned_delivery"] * 3 + ["removed_temp_file"]
    mat = result.get_asset_materialization_events()[0].materialization
    assert mat.metadata["disk_guard_triggered"].value is False

    # the disk guard: free space under the threshold keeps only the newest delivery
    monkeypatch.setattr(retention, "free_fraction", lambda _lake: 0.01)
    guarded = dg.materialize([lake_retention], resources={"lake": LakeResource()})
    assert guarded.success
    assert [d.ingested_at.day for d in lake.deliveries("raw", "raw_ohlcv", DIMS)] == [5]
    disk = next(c for c in guarded.get_asset_check_evaluations() if c.check_name == "disk_free")
    assert not disk.passed and disk.severity == dg.AssetCheckSeverity.WARN  # still low: shown, not blocking
    assert lake.read("raw", "raw_ohlcv", [DIMS])["x"].to_list() == [4]  # the published partition is untouched


def test_disk_guard_sensor_requests_retention_only_when_space_is_low(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensors import maintenance

    monkeypatch.setattr(maintenance, "free_fraction", lambda _lake: 0.5)
    assert isinstance(maintenance.disk_guard_sensor(dg.build_sensor_context()), dg.SkipReason)
    monkeypatch.setattr(maintenance, "free_fraction", lambda _lake: 0.02)
    request = maintenance.disk_guard_sensor(dg.build_sensor_context())
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("disk-guard-")
