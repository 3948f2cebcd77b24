"""The Dagster instance on Postgres: the `dagster.yaml` qlake writes selects Dagster's Postgres storage from the
environment (naming the variables, never their values) and sqlite with the pooled event log otherwise; against a
throwaway PostgreSQL cluster (tests/services.py) an instance from that yaml records a materialization of the lake's
raw assets, a sensor tick (dynamic partitions, decided from the instance) and the automation sensor's evaluation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.errors import DagsterInvariantViolationError
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_helpers import run_range  # noqa: E402

from lake_assets.cli import _dagster_home  # noqa: E402
from lake_assets.event_log import (  # noqa: E402
    PooledPostgresEventLogStorage,
    PooledSqliteEventLogStorage,
    dagster_yaml,
    instance_storage,
)

SECRET = "postgresql+psycopg2://qlake:s3cr3t-pw@db.internal:5432/dagster"
RAW = ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")
KEY = "BTCUSDT|2026-01"  # the first month of its life: bars read no earlier month


def _no_pg(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QLAKE_DAGSTER_PG_URL", "DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD",
                "DAGSTER_PG_DB", "DAGSTER_PG_PORT"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def test_the_environment_selects_the_storage_and_the_yaml_holds_no_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_pg(monkeypatch)
    assert instance_storage() == "sqlite" and "PooledSqliteEventLogStorage" in dagster_yaml()
    url = yaml.safe_load(dagster_yaml(environ={"QLAKE_DAGSTER_PG_URL": SECRET}))
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        assert url[key]["config"] == {"postgres_url": {"env": "QLAKE_DAGSTER_PG_URL"}}
    assert url["event_log_storage"]["class"] == "PooledPostgresEventLogStorage"
    parts_env = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_USERNAME": "u", "DAGSTER_PG_PASSWORD": "p", "DAGSTER_PG_DB": "d"}
    parts = yaml.safe_load(dagster_yaml(environ=parts_env))["run_storage"]["config"]["postgres_db"]
    assert parts == {"hostname": {"env": "DAGSTER_PG_HOST"}, "username": {"env": "DAGSTER_PG_USERNAME"},
                     "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": {"env": "DAGSTER_PG_DB"},
                     "scheme": "postgresql+psycopg2"}  # fmt: skip
    with pytest.raises(DagsterInvariantViolationError, match="DAGSTER_PG_USERNAME"):
        instance_storage({"DAGSTER_PG_HOST": "db"})
    with pytest.raises(DagsterInvariantViolationError, match=r"postgresql\+psycopg2://") as err:
        instance_storage({"QLAKE_DAGSTER_PG_URL": SECRET.replace("+psycopg2", "")})
    assert "s3cr3t" not in str(err.value)
    # qlake switches its own yaml when the environment changes, and never writes the URL into it
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _dagster_home()
    assert "PooledSqliteEventLogStorage" in (home / "dagster.yaml").read_text()
    monkeypatch.setenv("QLAKE_DAGSTER_PG_URL", SECRET)
    _dagster_home()
    text = (home / "dagster.yaml").read_text()
    assert "QLAKE_DAGSTER_PG_URL" in text and "s3cr3t" not in text and "db.internal" not in text
    (home / "dagster.yaml").write_text(text + "run_retries:\n  enabled: true\n")  # someone's own edit stays
    monkeypatch.delenv("QLAKE_DAGSTER_PG_URL")
    _dagster_home()
    assert "run_retries" in (home / "dagster.yaml").read_text()


@pytest.mark.timeout(240)
def test_materialization_sensor_tick_and_automation_on_postgres(
    postgres: Any, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from lake_assets.definitions import defs
    from lake_assets.settings import PROJECT_ROOT
    from resources import LakeResource
    from sensors.strategies import strategy_sensor

    _no_pg(monkeypatch)
    monkeypatch.setenv("QLAKE_DAGSTER_PG_URL", postgres.create_database("qlake_instance"))
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(PROJECT_ROOT / "spec"))
    home = _dagster_home()
    with dg.DagsterInstance.get() as instance:
        # runs, event log and schedules in Postgres
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert not isinstance(instance.event_log_storage._engine.pool, NullPool)  # held connections
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert not isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert not (home / "history").exists()  # nothing went to sqlite

        selection = dg.AssetSelection.assets("bars")  # the automation sensor's baseline tick: nothing to do yet
        base = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert base.total_requested == 0

        # a materialization: the raw assets of one instrument-month, one run
        assert run_range(RAW, KEY, KEY, instance, as_of="2026-03-01T00:00:00+00:00").success
        assert instance.get_materialized_partitions(dg.AssetKey("raw_ohlcv")) == {KEY}

        # a sensor tick: the strategy sensor adds its partitions (one per spec) to the instance and requests backtests
        tick = strategy_sensor(dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}))
        assert isinstance(tick, dg.SensorResult)
        for req in tick.dynamic_partitions_requests or []:
            assert isinstance(req, dg.AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        specs = {f"json.{p.stem}" for p in (PROJECT_ROOT / "spec" / "strategies").glob("*.json")}
        assert set(instance.get_dynamic_partitions("strategy")) == specs
        assert {str(r.partition_key) for r in tick.run_requests or []} == specs

        # the automation sensor's evaluation, with its cursor: the new raw month reaches exactly its bars partition
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                  cursor=base.cursor)  # fmt: skip
        assert first.get_requested_partitions(dg.AssetKey("bars")) == {KEY}
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                  cursor=first.cursor)  # fmt: skip
        assert again.total_requested == 0  # requested once, not on every tick
    assert "s3cr3t" not in caplog.text and str(postgres.port) not in caplog.text  # no URL in the logs
