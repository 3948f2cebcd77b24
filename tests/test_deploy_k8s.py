"""The Kubernetes path (dagster-k8s), validated, not run: the instance of deploy/k8s/dagster.yaml (K8sRunLauncher,
Postgres storage, qlake's pooled event log) and the per-step run config of deploy/k8s/run_config.yaml
(k8s_job_executor) pass Dagster's config validation, and the manifest of a step's Kubernetes Job renders."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._config.field_utils import Shape

from lake_assets.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy" / "k8s"


def _valid(schema: Any, value: Any) -> dict[str, Any]:
    result = process_config(schema, value)
    assert result.success, [e.message for e in result.errors or []]
    return result.value  # type: ignore[return-value]


def test_the_k8s_instance_and_run_config_validate_and_a_step_job_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    dagster_k8s = pytest.importorskip("dagster_k8s")
    monkeypatch.setenv("QLAKE_DAGSTER_PG_URL", "postgresql+psycopg2://u@db/dagster")  # as the Secret provides it
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job

    from lake_assets.event_log import PooledPostgresEventLogStorage

    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    launcher = _valid(Shape(dagster_k8s.K8sRunLauncher.config_type()), instance["run_launcher"]["config"])
    assert launcher["job_namespace"] == "qlake" and "qlake-postgres" in launcher["env_secrets"]
    assert instance["event_log_storage"]["class"] == PooledPostgresEventLogStorage.__name__
    _valid(Shape(PooledPostgresEventLogStorage.config_type()), instance["event_log_storage"]["config"])
    assert "postgresql" not in (DEPLOY / "dagster.yaml").read_text().split("# QLAKE_DAGSTER_PG_URL=")[0]

    run_config = yaml.safe_load((DEPLOY / "run_config.yaml").read_text())
    executor = _valid(dagster_k8s.k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    assert executor["max_concurrent"] == 16

    job_config = DagsterK8sJobConfig(
        job_image=launcher["job_image"], dagster_home=launcher["dagster_home"],
        instance_config_map=launcher["instance_config_map"], env_secrets=launcher["env_secrets"],
        env_vars=launcher["env_vars"],
    )  # fmt: skip
    manifest = construct_dagster_k8s_job(
        job_config, args=["dagster", "api", "execute_step"], job_name="qlake-step-bars", labels={"app": "qlake"}
    ).to_dict()
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == launcher["job_image"]
    assert {s["secret_ref"]["name"] for s in container["env_from"] if s.get("secret_ref")} >= {"qlake-postgres"}
    assert not any("s3cr" in str(v) for v in container.get("env") or [])  # secrets by reference only
