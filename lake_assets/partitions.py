"""Partition sets shared by the layers: exactly the instrument-months that can exist, and the months that hold one.

Why static sets, not a multi-partition grid or dynamic keys (see also the README's "Partitions"):
- A `MultiPartitionsDefinition` is always the full cross product of its dimensions: a universe mixing 2017-2018
  indices with 2026 crypto showed 840 of 960 `bars` partitions as "missing" forever and blocked automation.
- One key per instrument-month inside the instrument's life (`BTCUSDT-PERP|2026-03`) is exact. Keys come from
  `spec/universe.yaml` (start/end, and today's month for live instruments) when the code location loads, as every
  other spec-derived value does (code versions embed spec hashes), so a universe edit shows after a reload.
- Static sets let the graph declare which partitions read which with Dagster's built-in `StaticPartitionMapping`:
  a month's bars read the previous month's funding/OI and the spot leg's candles; a month's features read the
  warm-up months before it; a month of cross-instrument context reads every instrument living in it. Automation,
  staleness and the UI's upstream/downstream views follow those declared edges, and the mappings serialize to the
  daemon (custom `PartitionMapping` subclasses are deprecated and dropped there; dynamic sets have no mapping but
  identity/all).
- Keys are ordered instrument by instrument (universe order), month by month, so one instrument's history is one
  contiguous key range: a range backfill in the UI or `qlake materialize` loads it in one run.

A live instrument's new month appears when the code location reloads (`dagster dev` reload, a deploy, or any new
process such as `qlake`); the daily refresh requests only keys that exist and says so when a reload is due.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime

import dagster as dg

from lake_assets.months import month_key, months_between, previous_month, warmup_month_keys
from lake_assets.specs import Instrument, Universe, universe

warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta in 1.13
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

SEPARATOR = "|"  # instrument ids are [A-Z0-9._-]: they can never contain it


def instrument_month_key(instrument: str, month: str) -> str:
    return f"{instrument}{SEPARATOR}{month}"


def split_key(key: str) -> tuple[str, str]:
    """`BTCUSDT-PERP|2026-03` -> ("BTCUSDT-PERP", "2026-03"); ValueError for anything else."""
    instrument, sep, month = str(key).rpartition(SEPARATOR)
    if not sep or not instrument or len(month) != 7:
        raise ValueError(f"not an instrument-month partition key: {key!r} (expected INSTRUMENT{SEPARATOR}YYYY-MM)")
    return instrument, month


def today() -> date:
    return datetime.now(UTC).date()


def life_months(inst: Instrument, as_of: date | None = None) -> list[str]:
    """The months an instrument has data in: from its start to its end, or to today's month while it is live."""
    as_of = as_of or today()
    last = inst.end if inst.end is not None else as_of
    return months_between(month_key(inst.start), month_key(last)) if inst.start <= last else []


def instrument_month_keys(u: Universe, as_of: date | None = None) -> list[str]:
    return [instrument_month_key(i.id, m) for i in u.instruments for m in life_months(i, as_of)]


def month_keys(u: Universe, as_of: date | None = None) -> list[str]:
    return sorted({m for i in u.instruments for m in life_months(i, as_of)})


def month_instruments(u: Universe, month: str, as_of: date | None = None) -> list[Instrument]:
    """Instruments living in `month`, in universe order."""
    return [i for i in u.instruments if month in life_months(i, as_of)]


_UNIVERSE = universe()
instrument_month_partitions = dg.StaticPartitionsDefinition(instrument_month_keys(_UNIVERSE))
month_partitions = dg.StaticPartitionsDefinition(month_keys(_UNIVERSE))
_KEYS = frozenset(instrument_month_partitions.get_partition_keys())


def _mapping(edges: Iterable[tuple[str, str]]) -> dg.StaticPartitionMapping:
    """Upstream key -> downstream keys from (upstream, downstream) edges between existing keys."""
    by_up: dict[str, list[str]] = {}
    for up, down in edges:
        by_up.setdefault(up, [])
        if down not in by_up[up]:
            by_up[up].append(down)
    return dg.StaticPartitionMapping(by_up)


def _bars_for(lookback_bars: int | Mapping[str, int], inst: Instrument) -> int:
    return lookback_bars if isinstance(lookback_bars, int) else lookback_bars[inst.base_timeframe]


def lookback_mapping(lookback_bars: int | Mapping[str, int]) -> dg.StaticPartitionMapping:
    """bars -> an instrument-month asset whose month reads `lookback_bars` bars (or bars per base timeframe) of the
    same instrument before it."""
    edges = []
    for key in instrument_month_partitions.get_partition_keys():
        inst_id, month = split_key(key)
        inst = _UNIVERSE.get(inst_id)
        for m in warmup_month_keys(inst, month, _bars_for(lookback_bars, inst)):
            edges.append((instrument_month_key(inst_id, m), key))
    return _mapping(edges)


def lookahead_mapping() -> dg.StaticPartitionMapping:
    """bars -> labels: a month's labels read the month and the first bars of the next one (a label window that
    starts at the month's last bars ends in the next month), so a new month re-runs the month before it."""
    edges = []
    for key in instrument_month_partitions.get_partition_keys():
        inst_id, month = split_key(key)
        edges.append((key, key))
        prev = instrument_month_key(inst_id, previous_month(month))
        if prev in _KEYS:
            edges.append((key, prev))
    return _mapping(edges)


def to_all_mapping(downstream_of: dict[str, list[str]]) -> dg.StaticPartitionMapping:
    """An instrument-month asset -> a statically partitioned asset: upstream key -> the downstream keys reading it."""
    return _mapping((up, down) for up, downs in downstream_of.items() for down in downs)


def month_context_mapping(lookback_bars: int | Mapping[str, int]) -> dg.StaticPartitionMapping:
    """bars -> a month asset over every instrument living in the month, each read with its warm-up."""
    edges = []
    for month in month_partitions.get_partition_keys():
        for inst in month_instruments(_UNIVERSE, month):
            lookback = _bars_for(lookback_bars, inst)
            edges += [(instrument_month_key(inst.id, m), month) for m in warmup_month_keys(inst, month, lookback)]
    return _mapping(edges)


def bars_inputs_mapping(kind: str) -> dg.StaticPartitionMapping:
    """raw -> bars: a month's bars read that month's candles and trades, funding and open interest from the month
    before as well (as-of joins), and a perp's bars read its spot leg's candles (basis)."""
    edges = []
    for key in instrument_month_partitions.get_partition_keys():
        inst_id, month = split_key(key)
        inst = _UNIVERSE.get(inst_id)
        edges.append((key, key))
        if kind in ("raw_funding", "raw_open_interest"):
            prev = instrument_month_key(inst_id, previous_month(month))
            if prev in _KEYS:
                edges.append((prev, key))
        if kind == "raw_ohlcv" and inst.spot:
            spot = instrument_month_key(inst.spot, month)
            if spot in _KEYS:
                edges.append((spot, key))
    return _mapping(edges)


def instrument_months(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[tuple[str, str]]:
    """(instrument, month) pairs of the run, whether it holds one partition or a range (single-run backfill),
    in key order (instrument by instrument, month by month)."""
    return [split_key(k) for k in context.partition_keys]


def contiguous_ranges(keys: Iterable[str], ordered: Sequence[str]) -> list[tuple[str, str]]:
    """The wanted keys as (first, last) ranges of consecutive keys in `ordered` (one run per range)."""
    wanted = set(keys)
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    prev: str | None = None
    for key in ordered:
        if key in wanted:
            start = start or key
            prev = key
        elif start is not None:
            ranges.append((start, prev))  # type: ignore[arg-type]
            start = None
    if start is not None:
        ranges.append((start, prev))  # type: ignore[arg-type]
    return ranges
