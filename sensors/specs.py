"""`spec_sensor`: a spec edit re-runs exactly the partitions that read the edited entry, and the UI shows them stale.

Each spec-versioned partition records the version of the spec entry it was written from (`spec_version` metadata;
an event type's version hashes its own spec file). The sensor compares each materialized partition's recorded version
with the current one. A partition whose entry changed gets a failed, non-blocking `spec_current` check (so the UI
lists exactly the stale partitions) and a run request keyed by the new version (so it runs once). Partitions that
were never materialized are left to automation and backfills. Nothing is remembered between ticks: the lake decides.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from lake_assets.events.assets import SPEC_VERSION
from lake_assets.events.spec_model import event_specs
from sensors.materialized import latest_recorded

SPEC_CHECK = "spec_current"


def _model_version(asset: str) -> Callable[[str], str]:
    """The version of the spec/models parts a training set or model variant reads (KeyError: not in the spec)."""

    def current(key: str) -> str:
        from lake_assets.models.spec_model import model_spec

        spec = model_spec()
        if asset == "training_sets":
            if key not in spec.training_keys:
                raise KeyError(key)
            return spec.training_hash(key)
        if key not in spec.variant_keys:
            raise KeyError(key)
        return spec.variant_hash(key)

    return current


# asset -> (partition key -> the current version of the spec entry that partition reads)
SPEC_VERSIONED: dict[str, Callable[[str], str]] = {
    "event_registry": lambda key: event_specs().entry_hash(key),
    # a model spec edit re-runs exactly the training sets and variants whose settings changed (the trial budget and
    # the retrain schedule are not part of a variant's version: more trials continue its study)
    "training_sets": _model_version("training_sets"),
    "model_runs": _model_version("model_runs"),
}


def stale_partitions(instance: dg.DagsterInstance) -> dict[str, dict[str, tuple[str | None, str]]]:
    """asset -> stale partition -> (recorded version, current version)."""
    out: dict[str, dict[str, tuple[str | None, str]]] = {}
    for asset, current in SPEC_VERSIONED.items():
        for partition, (_, recorded) in sorted(latest_recorded(instance, asset, SPEC_VERSION).items()):
            try:
                want = current(partition)
            except KeyError:  # a partition whose entry left the spec: nothing to re-run
                continue
            if recorded != want:
                out.setdefault(asset, {})[partition] = (recorded, want)
    return out


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=list(SPEC_VERSIONED),
    description="re-runs exactly the partitions whose spec entry changed; marks them stale (spec_current check)",
)
def spec_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    stale = stale_partitions(context.instance)
    if not stale:
        return dg.SkipReason("every materialized partition was written from its current spec entry")
    requests, events = [], []
    for asset, partitions in stale.items():
        for partition, (recorded, want) in partitions.items():
            requests.append(dg.RunRequest(run_key=f"{asset}:{partition}:{want}", partition_key=partition,
                                          asset_selection=[dg.AssetKey(asset)]))  # fmt: skip
            events.append(
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(asset),
                    check_name=SPEC_CHECK,
                    passed=False,
                    partition=partition,
                    severity=dg.AssetCheckSeverity.WARN,
                    blocking=False,
                    metadata={"recorded_spec_version": str(recorded), "current_spec_version": want},
                    description=f"the spec of {partition} changed since it was written; a re-run is requested",
                )
            )
        context.log.info(f"{asset}: {len(partitions)} stale partition(s): {', '.join(list(partitions)[:5])}")
    return dg.SensorResult(run_requests=requests, asset_events=events)
