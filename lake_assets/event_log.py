"""Dagster's sqlite event log with pooled connections: the same databases and schema, ~5x cheaper writes.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine and opens, commits (fsync) and closes a sqlite
connection for every statement: ~13 ms per event on this machine. Loading history writes one materialization
event per partition (hundreds per run), so that alone was ~25 s of `qlake demo`. This subclass keeps one engine per
shard (the index plus the most recent run shards) with a small connection pool, in WAL mode with
`synchronous=NORMAL` (durable across process crashes; an OS crash can lose the last commits, never corrupt the
file): ~2.6 ms per event. Readers (`dagster dev`, the daemon) use the files exactly as before.

`qlake` writes it into the `dagster.yaml` it creates; an existing `dagster.yaml` is left alone. When the environment
names a Postgres database (`QLAKE_DAGSTER_PG_URL`, or `DAGSTER_PG_*`), the yaml selects Dagster's Postgres storage
instead, with its event log holding a connection pool (`PooledPostgresEventLogStorage`).

Why a subclass of private API is kept: Dagster has no supported setting for pooled sqlite connections (its supported
alternative is the Postgres event log, which a deployment should use). `benchmarks/bench_event_log.py` measures 10.2
ms per event with the stock storage against 2.5 ms pooled (4.1x), ~36 s of a ~95 s `qlake demo` (4,750 events). The
members it overrides or uses (`_connect`, `_initdb`, `_initialized_dbs`, `_db_lock`, `conn_string_for_shard`) were
checked against Dagster `VERIFIED_DAGSTER`; `tests/test_event_log.py` fails on any other version until they are
checked again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import Field, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import pg_url_from_config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

__all__ = [
    "VERIFIED_DAGSTER",
    "PooledPostgresEventLogStorage",
    "PooledSqliteEventLogStorage",
    "dagster_yaml",
    "instance_storage",
    "qlake_yamls",
]

log = logging.getLogger(__name__)

VERIFIED_DAGSTER = "1.13.27"  # the Dagster version whose private sqlite event log this subclass was checked against
PG_POOL_OVERFLOW = 4  # connections beyond the one held, for concurrent writers in one process (threads)
RUN_SHARDS_KEPT = 8  # run databases with an open engine; older ones are disposed (a daemon sees thousands of runs)


def default_base_dir() -> str:
    """Where Dagster's own sqlite event log lives in an instance: `$DAGSTER_HOME/history/runs`."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise DagsterInvariantViolationError(
            "PooledSqliteEventLogStorage without a base_dir stores under $DAGSTER_HOME, which is not set"
        )
    return os.path.join(home, "history", "runs")


def _tune(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose shards keep their engine and connections between statements."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._default_base_dir = base_dir is None
        super().__init__(base_dir if base_dir is not None else default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {"base_dir": Field(StringSource, is_required=False)}  # default: $DAGSTER_HOME/history/runs

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        expected = os.path.abspath(os.path.join(instance.root_directory, "history", "runs"))
        if self._default_base_dir and expected != self._base_dir:  # from_config(dir) with DAGSTER_HOME elsewhere
            log.warning(
                "the event log is in %s ($DAGSTER_HOME) but this instance's home is %s: set DAGSTER_HOME to it",
                self._base_dir,
                instance.root_directory,
            )

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=4,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _tune)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in runs[: max(0, len(runs) - RUN_SHARDS_KEPT)]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


PG_URL_ENV = "QLAKE_DAGSTER_PG_URL"  # a whole postgresql+psycopg2:// URL
PG_SCHEME = "postgresql+psycopg2"  # dagster-postgres's driver; SQLAlchemy 2.1's plain postgresql:// means psycopg 3
# or its parts (the names Dagster's own Helm chart and docs use); DAGSTER_PG_HOST selects them
PG_PART_ENVS = {"hostname": "DAGSTER_PG_HOST", "username": "DAGSTER_PG_USERNAME", "password": "DAGSTER_PG_PASSWORD",
                "db_name": "DAGSTER_PG_DB", "port": "DAGSTER_PG_PORT"}  # fmt: skip
_PG_REQUIRED = ("hostname", "username", "db_name")


def instance_storage(environ: Mapping[str, str] | None = None) -> str:
    """Which storage the environment selects for the instance: "postgres_url" ($QLAKE_DAGSTER_PG_URL), "postgres_db"
    ($DAGSTER_PG_HOST, _USERNAME, _DB, optional _PASSWORD and _PORT) or "sqlite" (the local default)."""
    env = os.environ if environ is None else environ
    if env.get(PG_URL_ENV):
        scheme = env[PG_URL_ENV].split(":", 1)[0]
        if scheme != PG_SCHEME:  # only the scheme is named: the URL may hold a password
            raise DagsterInvariantViolationError(
                f"{PG_URL_ENV} must start with {PG_SCHEME}:// (got {scheme}://): SQLAlchemy 2.1 reads postgresql:// "
                "as psycopg 3, and Dagster's Postgres storage runs on psycopg2"
            )
        return "postgres_url"
    if env.get(PG_PART_ENVS["hostname"]):
        missing = [PG_PART_ENVS[k] for k in _PG_REQUIRED if not env.get(PG_PART_ENVS[k])]
        if missing:
            raise DagsterInvariantViolationError(f"DAGSTER_PG_HOST is set but not {', '.join(missing)}")
        return "postgres_db"
    return "sqlite"


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """Dagster's Postgres event log holding a small connection pool, as it does in the webserver
    (`optimize_for_webserver`, public), instead of opening a connection per statement (its default, `NullPool`):
    a run process writes thousands of events. `benchmarks/bench_event_log.py` measures both."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        storage = cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        )
        # statement_timeout 0: none (the webserver sets one for its reads; a run's writes must not time out)
        storage.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=PG_POOL_OVERFLOW)
        return storage


def _storage_yaml(kind: str, environ: Mapping[str, str]) -> str:
    """The yaml of the storage: Postgres settings are `env:` references, so the file holds no credential. Runs and
    schedules in Dagster's Postgres storages, the event log in the pooled one above."""
    if kind in ("postgres_url", "postgres_db"):
        if kind == "postgres_url":
            config = f"    postgres_url:\n      env: {PG_URL_ENV}\n"
        else:
            keys = [k for k in PG_PART_ENVS if k in _PG_REQUIRED or environ.get(PG_PART_ENVS[k])]
            parts = "".join(f"        {k}:\n          env: {PG_PART_ENVS[k]}\n" for k in keys)
            config = f"    postgres_db:\n{parts}        scheme: {PG_SCHEME}\n"
        return "".join(
            f"{key}:\n  module: {module}\n  class: {cls}\n  config:\n{config}"
            for key, module, cls in (
                ("run_storage", "dagster_postgres.run_storage", "PostgresRunStorage"),
                ("event_log_storage", "lake_assets.event_log", "PooledPostgresEventLogStorage"),
                ("schedule_storage", "dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
            )
        )
    return "event_log_storage:\n  module: lake_assets.event_log\n  class: PooledSqliteEventLogStorage\n  config: {}\n"


def dagster_yaml(home: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The `dagster.yaml` qlake writes into a new DAGSTER_HOME. It names no path (`home` is not used): the event log
    defaults to `$DAGSTER_HOME/history/runs` like every other store of the instance, so a copied home is self-contained.

    - telemetry off; the instance's storage chosen from the environment (`instance_storage`): Dagster's Postgres
      storage (runs, event log, schedules) when `QLAKE_DAGSTER_PG_URL` or `DAGSTER_PG_*` is set, as CI and PROD do;
      otherwise sqlite with the pooled event log (above). The yaml names the variables, never their values.
    - run monitoring: the daemon fails runs stuck starting or cancelling (a run worker that died before it started,
      a termination that never finished) instead of showing them in progress forever; nothing is resumed (the default
      run launcher cannot). A run worker that dies mid-run is failed by its code server, which watches its process.
    - run queue: at most 2 runs in progress (this machine has 2 cores) and 1 of them from a backfill, so a burst of
      sensor or backfill requests waits in the queue. `qlake` runs execute in-process and skip the queue, but a
      daemon counts them as in progress.
    """
    del home
    env = os.environ if environ is None else environ
    return """\
# Written by qlake (lake_assets.event_log.dagster_yaml); qlake leaves an existing dagster.yaml alone.
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: dagster/backfill
        limit: 1
""" + _storage_yaml(instance_storage(env), env)


def qlake_yamls(environ: Mapping[str, str] | None = None) -> set[str]:
    """Every `dagster.yaml` this qlake writes, for any storage the environment may select (a home whose file is one of
    them is qlake's own, so qlake may rewrite it when the environment selects another storage)."""
    env = dict(os.environ if environ is None else environ)
    base = {k: v for k, v in env.items() if k != PG_URL_ENV and not k.startswith("DAGSTER_PG_")}
    variants = [base, {**base, PG_URL_ENV: f"{PG_SCHEME}://x"}]
    for extra in ([], ["password"], ["port"], ["password", "port"]):
        parts = {PG_PART_ENVS[k]: "x" for k in (*_PG_REQUIRED, *extra)}
        variants.append({**base, **parts})
    return {dagster_yaml(environ=v) for v in variants}
