"""The data dictionary (lake_assets/tables.py) drives the warehouse: every view and column carries a COMMENT, with or
without data; a table's typed empty view has the columns and types its view over data has; the old view names are
alias views; `qlake sql --describe` prints type, unit and description; every lake asset carries its column schema;
what the feature and event code writes matches its declaration."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_assets import tables
from lake_assets.cli import main
from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import build_catalog, connect_read_only

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import synthetic_bars  # noqa: E402

KEYS = {"instrument": "BTCUSDT", "month": "2026-01", "event_type": "ev", "strategy": "json.s", "asset": "raw_ohlcv",
        "partition_dir": "p-1", "run": "r-1", "session": "s1", "training_set": "5m.B1",
        "variant": "5m.B1.lightgbm"}  # fmt: skip
OLD_NAMES = {"events": "event_registry", "hypotheses": "phase2_hypotheses", "candidates": "phase2_candidates",
             "blueprints": "strategy_blueprints", "equity_curves": "equity", "backtest_metrics": "metrics",
             "backtests": "metrics"}  # fmt: skip


def _catalog(db: Path) -> tuple[dict[str, str | None], dict[tuple[str, str], tuple[str, str | None]]]:
    """(view -> comment, (view, column) -> (type, comment)) of a built catalog, its bookkeeping table included."""
    con = connect_read_only(db)
    try:
        views = dict(con.execute("select view_name, comment from duckdb_views() where database_name = 'lake' "
                                 "and not internal").fetchall())  # fmt: skip
        views.update(con.execute("select table_name, comment from duckdb_tables() where database_name = 'lake'")
                     .fetchall())  # fmt: skip
        cols = {(v, c): (t, m) for v, c, t, m in con.execute(
            "select table_name, column_name, data_type, comment from duckdb_columns() where database_name = 'lake'"
        ).fetchall()}  # fmt: skip
    finally:
        con.close()
    return views, cols


def _assert_all_commented(views: dict[str, str | None], cols: dict[tuple[str, str], tuple[str, str | None]]) -> None:
    assert {v for v, c in views.items() if not (c or "").strip()} == set()
    assert {k for k, (_, c) in cols.items() if not (c or "").strip()} == set()
    assert {v for v, _ in cols} == set(views)


def _one_null_row(t: tables.Table) -> pl.DataFrame:
    return pl.DataFrame([pl.Series(n, [None], dtype=d) for n, d in t.schema.items()])


def test_every_view_and_column_is_commented_with_and_without_data(tmp_path: Path, data_root: Path) -> None:
    lake = Lake(tmp_path / "lake")
    empty_db, full_db = tmp_path / "empty.duckdb", tmp_path / "full.duckdb"
    result = build_catalog(lake, empty_db)
    assert result["skipped"] == []
    views, empty_cols = _catalog(empty_db)
    _assert_all_commented(views, empty_cols)
    expected = {t.name for t in tables.TABLES} | set(OLD_NAMES) | {"strategy_leaderboard", "paper_overview",
                                                                   "qlake_catalog"}
    assert set(views) == expected
    for old, new in OLD_NAMES.items():
        assert views[old].startswith(f"Alias of {new} ")  # type: ignore[union-attr]
    # what quarantine and check_failures would hold, before anything was rejected or held back
    assert [c for (v, c) in empty_cols if v == "quarantine"] == [*tables.QUARANTINE.schema, "month"]
    assert empty_cols["quarantine", "reason"][1] == "why the row was rejected"
    assert "check_name" in {c for (v, c) in empty_cols if v == "check_failures"}
    assert empty_cols["bars", "basis_bps"] == ("DOUBLE", "perp premium over spot: (close / spot_close - 1) x 1e4 [bps]")
    assert "annualised Sharpe" in (empty_cols["walkforward", "oos_sharpe"][1] or "")
    assert "annualised Sharpe" in (empty_cols["metrics", "sharpe"][1] or "")

    for t in tables.TABLES:  # one partition per table, written from its declared schema
        lake.write(_one_null_row(t), t.group, t.name, {d.name: KEYS[d.name] for d in t.partitions})
    surprise = _one_null_row(tables.BRIDGE_EVALUATION).with_columns(
        pl.lit(1.0).alias("holdout_after_cost_bps_x2_5"), pl.lit(1).alias("not_declared")
    )
    lake.write(surprise, "discovery", "bridge_evaluation")
    assert build_catalog(lake, full_db)["skipped"] == []
    views, full_cols = _catalog(full_db)
    _assert_all_commented(views, full_cols)
    assert "2_5 x the round-trip cost" in (full_cols["bridge_evaluation", "holdout_after_cost_bps_x2_5"][1] or "")
    assert full_cols["bridge_evaluation", "not_declared"][1] == "column of bridge_evaluation not in the data dictionary"
    extra = {("bridge_evaluation", "holdout_after_cost_bps_x2_5"), ("bridge_evaluation", "not_declared")}
    # a typed empty view is the view over data: same columns, same types, same comments
    assert {k: v for k, v in full_cols.items() if k not in extra and k[0] != "qlake_catalog"} == {
        k: v for k, v in empty_cols.items() if k[0] != "qlake_catalog"
    }


def test_qlake_sql_describe_prints_types_units_and_descriptions(
    data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_catalog()
    assert main(["sql", "--describe", "bars", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "column,type,unit,description"
    assert "ts,TIMESTAMP WITH TIME ZONE,UTC timestamp,bar open time" in lines
    assert "basis_bps,DOUBLE,bps,perp premium over spot: (close / spot_close - 1) x 1e4" in lines
    assert "month,VARCHAR,,partition key: calendar month of ts, YYYY-MM (UTC)" in [x.replace('"', "") for x in lines]
    assert main(["sql", "--describe", "events"]) == 0  # an alias: the view comment heads the table
    out = capsys.readouterr().out
    assert out.startswith("events: Alias of event_registry (the older view name).") and "severity" in out
    assert main(["sql", "--describe", "no_such_view"]) == 1
    assert "no view named 'no_such_view'" in capsys.readouterr().err
    assert main(["sql", "--format", "csv"]) == 0  # the view list says what each holds
    listing = capsys.readouterr().out
    assert "quarantine,\"Rows that failed row-level validation" in listing


def test_lake_assets_carry_their_column_schema() -> None:
    from lake_assets.definitions import defs

    seen = set()
    for assets_def in defs.assets:  # type: ignore[union-attr]
        assert isinstance(assets_def, dg.AssetsDefinition)
        for key, metadata in assets_def.metadata_by_key.items():
            asset = key.to_user_string()
            if asset not in tables.ASSET_TABLE:
                assert asset == "research_report"  # the one asset without a lake table
                continue
            seen.add(asset)
            t = tables.table(tables.ASSET_TABLE[asset]).resolved()
            schema = metadata["dagster/column_schema"]
            schema = schema.schema if isinstance(schema, dg.TableSchemaMetadataValue) else schema
            names = [c.name for c in schema.columns]
            assert names[: len(t.columns)] == [c.name for c in t.columns], asset
            assert all(c.description for c in schema.columns), asset
            assert metadata["dagster/table_name"] == f"lake.main.{t.name}"
    assert seen == set(tables.ASSET_TABLE)
    assert len(tables.table("features").resolved().columns) > 100  # the catalogue, documented from spec/features


def test_feature_and_event_outputs_match_their_declarations() -> None:
    from lake_assets.events.registry import event_flags
    from lake_assets.events.spec_model import event_specs
    from lake_assets.features.calendar import load_calendar_spec
    from lake_assets.features.catalog import load_feature_specs
    from lake_assets.features.compute import compute_features, window_embeddings
    from lake_assets.features.context import compute_context_features
    from lake_assets.features.market_context import compute_market_context

    catalog = load_feature_specs()
    a, b = synthetic_bars("ETHUSDT-PERP", 600, 1), synthetic_bars("BTCUSDT-PERP", 600, 2)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    outputs = {
        tables.FEATURES: compute_features(a, catalog),
        tables.WINDOW_EMBEDDINGS: window_embeddings(a, (32, 64)),
        tables.CONTEXT_FEATURES: compute_context_features({"ETHUSDT-PERP": a, "BTCUSDT-PERP": b},
                                                          {"ETHUSDT-PERP": "BTCUSDT-PERP"}, catalog),
        tables.MARKET_CONTEXT: compute_market_context((start, start + timedelta(days=1)), load_calendar_spec(),
                                                      bar_period=timedelta(minutes=5)),
        tables.EVENT_FLAGS: event_flags(pl.DataFrame(schema=tables.EVENT_REGISTRY.schema), a.select("ts", "instrument"),
                                        event_specs().names),
    }  # fmt: skip
    for t, frame in outputs.items():
        assert not tables.compare_schema(t, frame.schema), t.name
