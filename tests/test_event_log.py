"""The pooled sqlite event log: what qlake's dagster.yaml selects, and it stores and reads like Dagster's own."""

from pathlib import Path

import dagster as dg

from lake_assets.event_log import RUN_SHARDS_KEPT, PooledSqliteEventLogStorage, dagster_yaml


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c"]))
def pooled_probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"key": context.partition_key})


def test_instance_from_qlake_yaml_uses_pooled_storage_and_records_runs(tmp_path: Path) -> None:
    home = tmp_path / "home with space"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml(str(home)))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        for key in ("a", "b", "c"):
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
