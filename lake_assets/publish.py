"""Write-audit-publish for partitioned assets, with every partition's own metadata and check results (Dagster glue).

A run may hold one partition or a range of them (single-run backfills). For each partition the asset computes the
new frame and its check verdicts, then `PartitionPublisher.audit`:

1. audits: if a blocking (error-severity) check failed, the frame is NOT written. The partition keeps its last good
   version (or none) and the failure, with failing samples, goes to the `check_failures` table; a later pass clears it.
2. publishes: otherwise the frame replaces the partition atomically (`Lake.write`), the path the warehouse reads.
3. reports: the partition's metadata (`context.add_asset_metadata(..., partition_key=...)`) describes that partition
   only, and after the materialization is recorded, each verdict becomes an `AssetCheckEvaluation` of that partition
   targeting that partition's materialization. So a failed check stays visible on the partition that failed until the
   partition passes, whatever later runs of other partitions report.

Failed checks are logged, not raised: one bad partition holds back only itself (and, through automation that waits
for blocking checks, what depends on it), never the other partitions of the run or their downstream steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from lake_assets.asset_metadata import metadata_value
from lake_assets.automation import AUTOMATION
from lake_assets.checks.expectations import SuiteResult
from lake_assets.checks.quality import CheckOutcome
from lake_assets.markdown import md_table
from lake_assets.storage.check_failures import CheckFailure, record_failures
from lake_assets.storage.lake import Lake


@dataclass
class Verdict:
    """One check's result on one partition, in plain values."""

    check: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    samples: str = ""  # Markdown table of failing rows

    @classmethod
    def of(cls, check: str, outcome: CheckOutcome) -> Verdict:
        return cls(check, outcome.passed, dict(outcome.metadata), outcome.description, outcome.samples_markdown)

    @classmethod
    def of_suite(cls, suite: SuiteResult) -> Verdict:
        """A partition's Great Expectations suite result as the `expectations` check."""
        samples = "\n\n".join(
            f"{r.expectation} ({', '.join(r.columns)}):\n\n" + md_table(pl.DataFrame(list(r.sample_rows)))
            for r in suite.results
            if not r.success and r.sample_rows
        )
        meta = {"results": suite.to_markdown(), "evaluated_rows": suite.evaluated_rows,
                "failed_errors": len(suite.errors), "failed_warnings": len(suite.warnings)}  # fmt: skip
        text = None if suite.success else f"{suite.layer}.{suite.asset}: {len(suite.errors)} expectation(s) failed"
        return cls("expectations", suite.success, meta, text, samples)

    def summary(self) -> str:
        nums = ", ".join(f"{k}={v}" for k, v in self.metadata.items() if isinstance(v, int | float | bool))
        return (self.description or self.check) + (f" ({nums})" if nums else "")


class PartitionPublisher:
    """Audits, publishes and reports the partitions of one asset within one run."""

    def __init__(self, context: dg.AssetExecutionContext, store: Lake, group: str, asset: str) -> None:
        self.context, self.store, self.group, self.asset = context, store, group, asset
        self.asset_key = dg.AssetKey(asset)
        specs = {s.name: s for s in context.assets_def.check_specs if s.asset_key == self.asset_key}
        self._specs = specs
        selected = context.selected_asset_check_keys
        self._selected = {k.name for k in selected if k.asset_key == self.asset_key}
        self._verdicts: dict[str, list[Verdict]] = {}
        self.published: list[str] = []
        self.held_back: list[str] = []

    def blocking_failures(self, verdicts: list[Verdict]) -> list[Verdict]:
        return [v for v in verdicts if not v.passed and v.check in self._specs and self._specs[v.check].blocking]

    def audit(
        self,
        key: str,
        frame: pl.DataFrame | None,
        dims: Mapping[str, str],
        verdicts: list[Verdict],
        metadata: Mapping[str, Any],
        tables: Mapping[str, pl.DataFrame] | None = None,
        staged: Path | None = None,
    ) -> bool:
        """Publish `frame` as partition `key` of the asset's table (and `tables`, other tables of the asset's group
        with the same dims; or `staged`, the asset's partition already written to `Lake.staging_path`) unless a
        blocking check failed; report its metadata. True if published."""
        failed = self.blocking_failures(verdicts)
        writes = {**({self.asset: frame} if frame is not None else {}), **(tables or {})}
        kept = any(self.store.exists(self.group, name, dims) for name in [*writes, self.asset])
        if not failed:
            for name, df in writes.items():
                self.store.write(df, self.group, name, dims)
            if staged is not None:
                self.store.publish_file(staged, self.group, self.asset, dims)
            self.published.append(key)
        elif staged is not None:
            staged.unlink(missing_ok=True)
        else:
            self.held_back.append(key)
        record_failures(
            self.store,
            self.asset,
            key,
            [CheckFailure(v.check, v.summary(), v.samples) for v in failed],
            run_id=self.context.run_id,
            previous_kept=kept,
        )
        meta = {k: metadata_value(v) for k, v in metadata.items()}
        meta["published"] = dg.MetadataValue.bool(not failed)
        if failed:
            meta["held_back_by"] = dg.MetadataValue.text(
                ", ".join(v.check for v in failed) + ("; the previous version stays published" if kept else
                                                      "; no version is published")
            )  # fmt: skip
        self.context.add_asset_metadata(meta, asset_key=self.asset_key, partition_key=key)
        self._verdicts[key] = verdicts
        return not failed

    def finish(self) -> Iterator[dg.MaterializeResult | dg.Output]:
        """Yield the materialization (each partition's own metadata is already attached; nothing run-wide is added, as
        Dagster would copy it onto every partition), then each partition's check evaluations targeting that
        partition's new materialization."""
        yield dg.MaterializeResult(asset_key=self.asset_key)
        targets = self._materializations()
        for key, verdicts in self._verdicts.items():
            target = targets.get(key)
            for v in verdicts:
                if v.check not in self._selected:
                    continue
                spec = self._specs[v.check]
                meta = {k: metadata_value(x) for k, x in v.metadata.items()}
                if v.samples:
                    meta["failing_samples"] = dg.MetadataValue.md(v.samples)
                if v.description:
                    meta["description"] = dg.MetadataValue.text(v.description)
                self.context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=self.asset_key,
                        check_name=v.check,
                        passed=bool(v.passed),
                        metadata=meta,
                        severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
                        blocking=spec.blocking,
                        partition=key if spec.partitions_def is not None else None,
                        target_materialization_data=target,
                        description=v.description,
                    )
                )
        for check_key in self.context.selected_asset_check_keys:
            if check_key.asset_key == self.asset_key:
                name = self.context.assets_def.get_output_name_for_asset_check_key(check_key)
                yield dg.Output(None, output_name=name)

    def _materializations(self) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
        keys = list(self._verdicts)
        if not keys:
            return {}
        records = self.context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=self.asset_key, asset_partitions=keys), limit=len(keys) * 2
        ).records
        out: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
        for r in records:  # newest first
            if r.run_id == self.context.run_id and r.partition_key is not None:
                out.setdefault(
                    r.partition_key,
                    AssetCheckEvaluationTargetMaterializationData(
                        run_id=r.run_id, storage_id=r.storage_id, timestamp=r.timestamp
                    ),
                )
        return out


def partitioned_asset(
    *,
    partitions_def: dg.PartitionsDefinition,
    checks: list[tuple[str, bool, str]],
    name: str | None = None,
    automation_condition: dg.AutomationCondition | None = AUTOMATION,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` for a partitioned lake asset: backfills of any range run as one run, the lake's automation
    condition, and its checks evaluated per partition ((name, blocking, description) each)."""

    def wrap(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        asset_name = name or fn.__name__
        return dg.asset(
            name=asset_name,
            partitions_def=partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run(),
            automation_condition=automation_condition,
            check_specs=partition_checks(asset_name, checks, partitions_def),
            **kwargs,
        )(fn)

    return wrap


def partition_checks(asset: str, specs: list[tuple[str, bool, str]], partitions_def: dg.PartitionsDefinition
                     ) -> list[dg.AssetCheckSpec]:  # fmt: skip
    """Check specs evaluated per partition: (name, blocking, description) each (partitioned checks are a Dagster
    preview feature in 1.13: its warning is silenced here, where it is chosen on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name, asset=asset, blocking=blocking, description=description, partitions_def=partitions_def
            )
            for name, blocking, description in specs
        ]
