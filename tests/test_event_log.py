"""The pooled sqlite event log and the `dagster.yaml` qlake writes: it stores and reads like Dagster's own, names no
path (a copied DAGSTER_HOME is self-contained), monitors runs and queues them two at a time."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

from lake_assets.cli import _dagster_home
from lake_assets.event_log import RUN_SHARDS_KEPT, VERIFIED_DAGSTER, PooledSqliteEventLogStorage, dagster_yaml


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c"]))
def pooled_probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"key": context.partition_key})


def _home(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(dagster_yaml())
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    return path


def test_instance_from_qlake_yaml_uses_pooled_storage_and_records_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path / "home with space", monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        for key in ("a", "b", "c"):  # in-process runs: the run queue does not stand in their way
            assert dg.materialize([pooled_probe], instance=instance, partition_key=key).success
        assert (home / "history" / "runs" / "index.db").is_file()
        assert instance.get_materialized_partitions(dg.AssetKey("pooled_probe")) == {"a", "b", "c"}
        latest = instance.get_latest_materialization_event(dg.AssetKey("pooled_probe"))
        assert latest is not None and latest.asset_materialization is not None
        assert latest.asset_materialization.metadata["key"].value == "c"
    # a second process (the webserver, the daemon) reads the same files with Dagster's stock storage
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert stock.get_materialized_partitions(dg.AssetKey("pooled_probe")) == {"a", "b", "c"}


def test_qlake_yaml_monitors_runs_and_queues_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path / "home", monkeypatch)
    assert "base_dir" not in dagster_yaml() and str(tmp_path) not in dagster_yaml()
    with dg.DagsterInstance.get() as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_cancel_timeout_seconds == 180
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 1}]
        assert instance.event_log_storage._base_dir == str(home / "history" / "runs")


def test_a_copied_home_keeps_its_own_event_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path / "home", monkeypatch)
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([pooled_probe], instance=instance, partition_key="a").success
    copy = tmp_path / "elsewhere" / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("DAGSTER_HOME", str(copy))
    with dg.DagsterInstance.get() as instance:
        assert instance.event_log_storage._base_dir == str(copy / "history" / "runs")
        assert instance.get_materialized_partitions(dg.AssetKey("pooled_probe")) == {"a"}  # the copied history
        assert dg.materialize([pooled_probe], instance=instance, partition_key="b").success
        assert instance.get_materialized_partitions(dg.AssetKey("pooled_probe")) == {"a", "b"}
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:  # the original never saw the copy's run
        assert instance.get_materialized_partitions(dg.AssetKey("pooled_probe")) == {"a"}


def test_the_default_event_log_needs_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(DagsterInvariantViolationError, match="DAGSTER_HOME"):
        PooledSqliteEventLogStorage()


def test_qlake_writes_its_yaml_and_upgrades_only_its_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    cfg = home / "dagster.yaml"
    assert _dagster_home() == home and cfg.read_text() == dagster_yaml()  # a new home
    legacy = (  # what qlake wrote before: run monitoring off, the event log pinned to an absolute path
        "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\nevent_log_storage:\n"
        "  module: lake_assets.event_log\n  class: PooledSqliteEventLogStorage\n"
        f"  config:\n    base_dir: {json.dumps(str(tmp_path / 'original' / 'history' / 'runs'))}\n"
    )
    cfg.write_text(legacy)
    _dagster_home()
    assert cfg.read_text() == dagster_yaml()
    edited = legacy + "run_retries:\n  enabled: true\n"  # anything else is someone's own configuration
    cfg.write_text(edited)
    _dagster_home()
    assert cfg.read_text() == edited


def test_run_shard_engines_are_bounded(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    for i in range(RUN_SHARDS_KEPT + 5):
        with storage.run_connection(f"run{i}") as conn:
            conn.exec_driver_sql("select 1")
    run_engines = [s for s in storage._engines if s != "index"]
    assert len(run_engines) == RUN_SHARDS_KEPT
    assert run_engines[-1] == f"run{RUN_SHARDS_KEPT + 4}"
    storage.dispose()
    assert not storage._engines


def test_the_private_api_it_subclasses_is_the_version_it_was_checked_against() -> None:
    """Fails loudly on a Dagster upgrade: the subclass overrides private members of Dagster's sqlite event log."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    assert dg.__version__ == VERIFIED_DAGSTER, (
        f"Dagster {dg.__version__} is not {VERIFIED_DAGSTER}, the version lake_assets/event_log.py was checked "
        "against: re-check the private members it overrides (_connect, _initdb, _initialized_dbs, _db_lock, "
        "conn_string_for_shard), rerun benchmarks/bench_event_log.py, then update VERIFIED_DAGSTER"
    )
    for member in ("_connect", "_initdb", "conn_string_for_shard"):
        assert callable(getattr(SqliteEventLogStorage, member, None)), member
