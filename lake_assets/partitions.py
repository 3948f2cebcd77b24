"""Partition sets shared by the layers. `instrument` is dynamic and kept equal to spec/universe.yaml by a sensor."""

from __future__ import annotations

import warnings

import dagster as dg

from lake_assets.raw.ingest import month_key
from lake_assets.specs import universe

warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta in 1.13
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

INSTRUMENT_DIM, MONTH_DIM = "instrument", "month"

instrument_partitions = dg.DynamicPartitionsDefinition(name="instrument")
month_partitions = dg.MonthlyPartitionsDefinition(
    start_date=month_key(min(i.start for i in universe().instruments)), fmt="%Y-%m", end_offset=1
)
instrument_month_partitions = dg.MultiPartitionsDefinition(
    {INSTRUMENT_DIM: instrument_partitions, MONTH_DIM: month_partitions}
)


def instrument_months(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[tuple[str, str]]:
    """(instrument, month) pairs of the run, whether it holds one partition or a range (single-run backfill)."""
    pairs = []
    for key in context.partition_keys:
        mpk = key if isinstance(key, dg.MultiPartitionKey) else dg.MultiPartitionKey(_split(key))
        pairs.append((mpk.keys_by_dimension[INSTRUMENT_DIM], mpk.keys_by_dimension[MONTH_DIM]))
    return sorted(set(pairs))


def _split(key: str) -> dict[str, str]:
    instrument, month = key.split("|")
    return {INSTRUMENT_DIM: instrument, MONTH_DIM: month}


def multi_key(instrument: str, month: str) -> str:
    return str(dg.MultiPartitionKey({INSTRUMENT_DIM: instrument, MONTH_DIM: month}))
