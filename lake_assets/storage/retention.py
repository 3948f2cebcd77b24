"""Retention of the lake, declared in spec/retention.yaml: old vendor deliveries pruned after N versions, orphan temp
files of dead writers removed, and a disk guard that cleans harder when free space falls under a threshold. Plain
compute: the `lake_retention` asset (lake_assets/maintenance/assets.py) runs it and checks the result."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import Field

from lake_assets.settings import spec_dir
from lake_assets.specs import StrictModel, read_yaml, validate_model
from lake_assets.storage.lake import DELIVERIES, Lake, _writer_alive

__all__ = ["RetentionSpec", "apply_retention", "free_fraction", "guard_needed", "load_retention", "orphan_temp_files"]


class DeliveriesRetention(StrictModel):
    keep_versions: Annotated[int, Field(ge=1)] = 3


class TempFilesRetention(StrictModel):
    min_age_minutes: Annotated[float, Field(ge=0)] = 60.0


class DiskGuard(StrictModel):
    min_free_fraction: Annotated[float, Field(ge=0, le=1)] = 0.10
    keep_versions_when_low: Annotated[int, Field(ge=1)] = 1


class RetentionSpec(StrictModel):
    deliveries: DeliveriesRetention = DeliveriesRetention()
    temp_files: TempFilesRetention = TempFilesRetention()
    disk: DiskGuard = DiskGuard()


def load_retention(path: Path | None = None) -> RetentionSpec:
    path = path or spec_dir() / "retention.yaml"
    return validate_model(RetentionSpec, read_yaml(path) or {}, path)  # type: ignore[no-any-return]


def free_fraction(lake: Lake) -> float:
    """Free share of the disk holding the lake (object storage: 1.0, it has no disk to fill)."""
    if lake.remote:
        return 1.0
    probe = lake.root if lake.root.exists() else lake.root.parent
    usage = shutil.disk_usage(probe)
    return usage.free / usage.total if usage.total else 1.0


def orphan_temp_files(lake: Lake, min_age_s: float) -> list[Path]:
    """Temp files (`.<file>.<pid>.<uuid>.tmp`) whose writer is gone and which are older than `min_age_s`."""
    if lake.remote or not lake.root.exists():
        return []
    now = time.time()
    out = []
    for f in lake.root.rglob(".*.tmp"):
        try:
            old = now - f.stat().st_mtime >= min_age_s
        except FileNotFoundError:
            continue
        if old and not _writer_alive(f):
            out.append(f)
    return out


@dataclass
class RetentionOutcome:
    actions: pl.DataFrame  # one row per removed file: action, path, bytes, reason, at
    free_before: float
    free_after: float
    guard_triggered: bool
    keep_versions: int
    max_versions_left: int
    orphans_left: int


ACTIONS_SCHEMA = pl.Schema(
    [("action", pl.String()), ("path", pl.String()), ("bytes", pl.Int64()), ("reason", pl.String()),
     ("at", pl.Datetime("us", "UTC"))]
)  # fmt: skip


def _delivery_dirs(lake: Lake) -> list[Path]:
    base = lake.root / DELIVERIES
    if lake.remote or not base.exists():
        return []
    return sorted({p.parent for p in base.rglob("*.parquet")})


def apply_retention(lake: Lake, spec: RetentionSpec, free: float | None = None) -> RetentionOutcome:
    """Remove orphan temp files and deliveries beyond the versions kept (fewer when the disk guard triggers: free
    share under `disk.min_free_fraction`). `free` overrides the measured free share (tests)."""
    at = datetime.now(UTC)
    before = free_fraction(lake) if free is None else free
    guard = before < spec.disk.min_free_fraction
    keep = spec.disk.keep_versions_when_low if guard else spec.deliveries.keep_versions
    rows: list[dict[str, object]] = []
    for f in orphan_temp_files(lake, spec.temp_files.min_age_minutes * 60):
        size = f.stat().st_size if f.exists() else 0
        f.unlink(missing_ok=True)
        rows.append({"action": "removed_temp_file", "path": str(f), "bytes": size,
                     "reason": "its writer process is gone", "at": at})  # fmt: skip
    max_left = 0
    for folder in _delivery_dirs(lake):
        files = sorted(p for p in folder.glob("*.parquet"))  # names start with the ingestion time: oldest first
        for old in files[: max(0, len(files) - keep)]:
            size = old.stat().st_size
            old.unlink(missing_ok=True)
            why = f"beyond the newest {keep} deliveries" + (" (disk guard)" if guard else "")
            rows.append({"action": "pruned_delivery", "path": str(old), "bytes": size, "reason": why, "at": at})
        max_left = max(max_left, min(len(files), keep))
    after = free_fraction(lake) if free is None else free
    return RetentionOutcome(pl.DataFrame(rows, schema=ACTIONS_SCHEMA), before, after, guard, keep, max_left,
                            len(orphan_temp_files(lake, spec.temp_files.min_age_minutes * 60)))  # fmt: skip


def guard_needed(lake: Lake, spec: RetentionSpec | None = None) -> bool:
    """Whether free space is under the spec's threshold (the disk guard sensor asks this)."""
    spec = spec or load_retention()
    return free_fraction(lake) < spec.disk.min_free_fraction
