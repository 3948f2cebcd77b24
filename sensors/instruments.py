"""Keeps the dynamic `instrument` partitions equal to spec/universe.yaml."""

from __future__ import annotations

import dagster as dg

from lake_assets.partitions import instrument_partitions
from lake_assets.specs import universe


def partition_requests(existing: set[str], wanted: list[str]) -> list[dg.DynamicPartitionsRequest]:
    add = [i for i in wanted if i not in existing]
    remove = sorted(existing - set(wanted))
    reqs: list[dg.DynamicPartitionsRequest] = []
    if add:
        reqs.append(instrument_partitions.build_add_request(add))
    if remove:
        reqs.append(instrument_partitions.build_delete_request(remove))
    return reqs


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def instrument_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    existing = set(context.instance.get_dynamic_partitions(instrument_partitions.name or "instrument"))
    reqs = partition_requests(existing, universe().ids)
    if not reqs:
        return dg.SkipReason("instrument partitions already match spec/universe.yaml")
    return dg.SensorResult(dynamic_partitions_requests=reqs)
