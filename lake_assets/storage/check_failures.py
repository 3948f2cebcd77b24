"""Blocking-check failures of partitions that were therefore not published (write-audit-publish).

One file per (asset, partition): written when a partition fails a blocking check, removed when it passes again, so
the warehouse view `check_failures` lists exactly the partitions whose newest data is held back and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import polars as pl

from lake_assets import tables
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import conform

GROUP, ASSET = "quality", "check_failures"
CHECK_FAILURES_SCHEMA: Final = tables.CHECK_FAILURES.schema  # columns, descriptions: lake_assets/tables.py
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class CheckFailure:
    check_name: str
    summary: str
    failing_samples: str = ""


def partition_dir_key(partition: str) -> str:
    """A partition key as a path component: `BTCUSDT-PERP|2026-03` -> `BTCUSDT-PERP_2026-03-<hash>` (readable, and
    unique through a hash of the key itself, which is also a column of the table)."""
    key = partition or "all"
    readable = _UNSAFE.sub("_", key).replace("..", "_")[:48].lstrip("._-") or "p"
    return f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def record_failures(
    lake: Lake,
    asset: str,
    partition: str,
    failures: Sequence[CheckFailure],
    *,
    run_id: str,
    previous_kept: bool,
) -> None:
    """Replace the partition's failure rows; no failures clears them (the partition was published)."""
    dims = {"asset": asset, "partition_dir": partition_dir_key(partition)}
    if not failures:
        if lake.exists(GROUP, ASSET, dims):
            lake.write(pl.DataFrame(), GROUP, ASSET, dims)
        return
    now = datetime.now(UTC)
    rows = pl.DataFrame(
        [
            {
                "asset": asset,
                "partition": partition,
                "check_name": f.check_name,
                "summary": f.summary,
                "failing_samples": f.failing_samples,
                "published_version_kept": previous_kept,
                "run_id": run_id,
                "failed_at": now,
            }
            for f in failures
        ]
    )
    lake.write(conform(rows, CHECK_FAILURES_SCHEMA), GROUP, ASSET, dims)


def read_failures(lake: Lake, asset: str | None = None) -> pl.DataFrame:
    frames = [
        lake.read(GROUP, ASSET, [d], CHECK_FAILURES_SCHEMA)
        for d in lake.partitions(GROUP, ASSET)
        if asset is None or d.get("asset") == asset
    ]
    frames = [f for f in frames if f.height]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CHECK_FAILURES_SCHEMA)
