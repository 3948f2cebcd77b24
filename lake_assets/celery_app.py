"""Distributed execution: the lake's graph with Dagster's Celery executor and the Celery app its workers run.

A run of `distributed_job` (any selection of the graph, over the instrument-month partitions) sends each step to a
Celery queue; any number of workers on any machines execute them:

    QLAKE_CELERY_BROKER=redis://broker:6379/0 celery -A lake_assets.celery_app worker -n w1@%h --pool solo

Workers need what a run process needs: this code, the same environment (lake root, `DAGSTER_HOME` or the Postgres
instance, vendor credentials) and the broker. The run itself is launched with `dagster.execute_job` (or by the
daemon's run launcher) with `run_config` naming the broker (`celery_run_config`). Broker and backend URLs come from
the environment, never from a file.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

BROKER_ENV = "QLAKE_CELERY_BROKER"
BACKEND_ENV = "QLAKE_CELERY_BACKEND"  # default: the broker (Redis keeps results too)


def broker_url() -> str:
    url = os.environ.get(BROKER_ENV)
    if not url:
        raise RuntimeError(f"{BROKER_ENV} is not set (e.g. redis://127.0.0.1:6379/0)")
    return url


# dagster-celery binds its queue as `dagster.#` and publishes steps with the key `dagster.execute_plan`: a pattern,
# which only a topic exchange matches (on a direct exchange, Redis' included, the steps would be dropped)
CELERY_CONFIG: dict[str, Any] = {"task_default_exchange_type": "topic"}


def celery_run_config() -> dict[str, Any]:
    """The executor config of a run: the broker and result backend from the environment."""
    broker = broker_url()
    backend = os.environ.get(BACKEND_ENV, broker)
    return {"execution": {"config": {"broker": broker, "backend": backend, "config_source": dict(CELERY_CONFIG)}}}


def distributed_job() -> dg.JobDefinition:
    """The instrument-month assets of the graph (raw, cleaned, features) as one job on the Celery executor (a run
    selects its assets and partition); module-level so workers can reconstruct it
    (`dagster.reconstructable(distributed_job)`)."""
    from lake_assets.definitions import all_assets
    from lake_assets.partitions import instrument_month_partitions
    from resources import resources_for

    keys = [a.key for a in all_assets if a.partitions_def == instrument_month_partitions]
    job = dg.define_asset_job(
        "distributed",
        selection=dg.AssetSelection.assets(*keys),
        partitions_def=instrument_month_partitions,
        executor_def=celery_executor,
    )
    defs = dg.Definitions(assets=all_assets, jobs=[job], resources=resources_for())
    return defs.resolve_job_def("distributed")


def _worker_app() -> Any:
    url = os.environ.get(BROKER_ENV)
    if url is None:  # imported outside a worker (docs, tests): no broker, no app
        return None
    app = make_app({"broker": url, "backend": os.environ.get(BACKEND_ENV, url), "config_source": dict(CELERY_CONFIG)})
    create_task(app)  # the task that executes a step: dagster_celery.tasks's execute_plan
    return app


app = _worker_app()
