"""Asset metadata shared by the layers' thin assets: frame metadata, column schemas, PNGs and check-result builders."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl

from lake_assets import tables
from lake_assets.markdown import md_table
from lake_assets.vocabulary import TS


def frame_metadata(df: pl.DataFrame, preview_cols: Sequence[str] | None = None) -> dict[str, Any]:
    """Row count, time range and a preview, the metadata every lake asset reports."""
    meta: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(df.height)}
    if TS in df.columns and df.height:
        lo, hi = df[TS].min(), df[TS].max()
        meta["time_range"] = dg.MetadataValue.text(str(lo) + " .. " + str(hi))
    cols = [c for c in (preview_cols or df.columns) if c in df.columns]
    meta["preview"] = dg.MetadataValue.md(md_table(df.select(cols)))
    return meta


def column_schema(table: tables.Table) -> dg.TableSchema:
    """A lake table's columns (then the partition keys its warehouse view adds) as a Dagster column schema, with the
    data dictionary's descriptions and units."""
    t = table.resolved()
    names = {c.name for c in t.columns}
    cols = [*t.columns, *(d for d in t.partitions if d.name not in names)]
    return dg.TableSchema(columns=[dg.TableColumn(c.name, tables.sql_type(c.dtype), c.comment) for c in cols])


def with_column_schema(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The asset with its lake table's `dagster/column_schema` and `dagster/table_name` (the warehouse view), and
    the views of every table it writes, all from lake_assets/tables.py; assets without a lake table are unchanged."""

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        asset = spec.key.to_user_string()
        name = tables.ASSET_TABLE.get(asset)
        if name is None:
            return spec
        views = [f"{t.name}" + (f" (aliases: {', '.join(t.aliases)})" if t.aliases else "")
                 for t in tables.tables_of_asset(asset)]  # fmt: skip
        return spec.merge_attributes(
            metadata={
                "dagster/column_schema": column_schema(tables.table(name)),
                "dagster/table_name": f"lake.main.{name}",
                "warehouse_views": dg.MetadataValue.text(", ".join(views)),
            }
        )

    return assets_def.map_asset_specs(attach)


def png_metadata(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def metadata_value(v: Any) -> Any:
    """A plain value as Dagster metadata: multi-line text renders as Markdown, bools as bools."""
    if isinstance(v, dg.MetadataValue):
        return v
    if isinstance(v, str) and "\n" in v:
        return dg.MetadataValue.md(v)
    if isinstance(v, bool):
        return dg.MetadataValue.bool(v)
    return v


def check_result(
    check_name: str,
    passed: bool,
    metadata: dict[str, Any] | None = None,
    *,
    asset_key: dg.AssetKey | None = None,
    warn_only: bool = False,
    description: str | None = None,
) -> dg.AssetCheckResult:
    clean = {k: metadata_value(v) for k, v in (metadata or {}).items()}
    if description:
        clean["description"] = dg.MetadataValue.text(description)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=bool(passed),
        asset_key=asset_key,
        metadata=clean,
        severity=dg.AssetCheckSeverity.WARN if warn_only else dg.AssetCheckSeverity.ERROR,
    )


def expectations_check(data: pl.DataFrame, asset: str, layer: str) -> dg.AssetCheckResult:
    """The asset's GX suite as the `expectations` check, run once over every row the run produced (GX startup and
    per-expectation overhead dominate, so one validation per run, not per instrument). Ordering within each
    instrument's series is the separate `unique_increasing_ts` check."""
    from lake_assets.checks.expectations import run_expectations

    suite = run_expectations(data, asset, layer)
    return check_result("expectations", suite.success, {"results": suite.to_markdown(), "evaluated_rows": data.height})
