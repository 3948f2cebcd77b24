"""The one way compute reads the lake's partitioned tables: an instrument's rows over a time range (with warm-up),
each partition file read once while it is held.

Every layer reads bars (and features, funding, ...) for an instrument and a time range: features read a month plus its
warm-up, events and backtests an instrument's whole history, discovery every instrument. `LakeReader` serves them all
from the table declarations in `lake_assets.tables` (so a table's group and asset are spelled once) and keeps the
partition frames it has read, keyed by the file's (path, mtime, size) (on object storage: path, ETag, size), so a
rewritten partition is read afresh, and the frames held are bounded by `max_bytes` (least recently used dropped
first). A reader lives as long as its `Lake` (`Lake.reader`), which an asset opens once per run, so a run reads each
file once however many steps need it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

import polars as pl

from lake_assets.months import month_bounds, warmup_month_keys
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.tables import Table
from lake_assets.vocabulary import INSTRUMENT, MONTH, TIMEFRAMES, TS, TS_DTYPE

__all__ = ["LakeReader", "warmup_start"]

DEFAULT_MAX_BYTES = 256 * 2**20

_Key = tuple[str, tuple[str, ...] | None]  # (file path or instrument range, column selection)


def warmup_start(month: str, timeframe: str, lookback_bars: int) -> datetime:
    """Where a month's warm-up starts: `lookback_bars` bars of `timeframe` before the month start."""
    return month_bounds(month)[0] - TIMEFRAMES[timeframe] * lookback_bars


class LakeReader:
    """Reads partitions of declared tables, holding each file's frame (per column selection) until it changes."""

    def __init__(self, store: Lake, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.reads = 0  # partition files read from disk so far
        self._held: OrderedDict[_Key, tuple[object, pl.DataFrame]] = OrderedDict()
        self._bytes = 0.0

    # --- partitions -----------------------------------------------------------------------------------------------

    def partition(
        self, table: Table, dims: dict[str, str], columns: Sequence[str] | None = None, *, hold: bool = False
    ) -> pl.DataFrame:
        """One partition's frame (empty when it does not exist); `hold` keeps it for the next request."""
        path = self.store.partition_path(table.group, table.name, dims)
        stamp = self.store.stamp(path)  # (mtime, size) of a file, (ETag, size) of an object
        if stamp is None:
            return pl.DataFrame()
        key = (str(path), tuple(columns) if columns is not None else None)
        held = self._held.get(key)
        if held is not None and held[0] == stamp:
            self._held.move_to_end(key)
            return held[1]
        frame = self.store.read_frame(path, columns)
        self.reads += 1
        if hold:
            self._hold(key, stamp, frame)
        return frame

    def _hold(self, key: _Key, stamp: object, frame: pl.DataFrame) -> None:
        old = self._held.pop(key, None)
        if old is not None:
            self._bytes -= old[1].estimated_size()
        self._held[key] = (stamp, frame)
        self._bytes += frame.estimated_size()
        while self._bytes > self.max_bytes and len(self._held) > 1:
            _, (_, dropped) = self._held.popitem(last=False)
            self._bytes -= dropped.estimated_size()

    def clear(self) -> None:
        self._held.clear()
        self._bytes = 0.0

    def months(self, table: Table, instrument: str) -> list[str]:
        """The months of `instrument` the lake holds for an instrument-month table, sorted."""
        listed = self.store.partitions(table.group, table.name)
        return sorted(d[MONTH] for d in listed if d.get(INSTRUMENT) == instrument)

    def read(
        self,
        table: Table,
        dims_list: Iterable[dict[str, str]],
        columns: Sequence[str] | None = None,
        *,
        hold: bool = False,
    ) -> pl.DataFrame:
        """The given partitions concatenated (missing ones skipped), in the order given."""
        frames = [f for f in (self.partition(table, d, columns, hold=hold) for d in dims_list) if f.width]
        if not frames:
            return pl.DataFrame(schema=table.schema) if columns is None and table.columns else pl.DataFrame()
        return pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]

    def table(self, table: Table, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every partition of a table (read through: nothing is held)."""
        return self.read(table, self.store.partitions(table.group, table.name), columns)

    # --- an instrument over time ----------------------------------------------------------------------------------

    def instrument(
        self,
        table: Table,
        instrument: str,
        columns: Sequence[str] | None = None,
        months: Sequence[str] | None = None,
        *,
        hold: bool = True,
    ) -> pl.DataFrame:
        """An instrument-month table's rows of one instrument (all its months, or `months`), sorted by ts. With
        `hold` the frame is kept (not its partitions) and returned again while none of its files changed: the
        strategies of a run share their instruments' bars."""
        chosen = self.months(table, instrument) if months is None else list(months)
        dims = [{INSTRUMENT: instrument, MONTH: m} for m in chosen]
        stamps = tuple(self.store.stamp(self.store.partition_path(table.group, table.name, d)) for d in dims)
        key = (f"{table.group}/{table.name}@{instrument}:{','.join(chosen)}", tuple(columns) if columns else None)
        held = self._held.get(key)
        if held is not None and held[0] == stamps:
            self._held.move_to_end(key)
            return held[1]
        frame = self.read(table, dims, columns)
        if not frame.is_empty():
            frame = frame.drop(MONTH, strict=False).with_columns(pl.col(TS).cast(TS_DTYPE)).sort(TS)
        if hold:
            self._hold(key, stamps, frame)
        return frame

    def with_warmup(self, table: Table, inst: Instrument, month: str, lookback_bars: int) -> pl.DataFrame:
        """`inst`'s rows from `lookback_bars` base bars before `month` to the month's end, sorted by ts.

        Its month partitions are held for the next months' warm-ups; requests in month order per instrument (as
        partition keys run) drop the months no later request reaches back to."""
        months = warmup_month_keys(inst, month, lookback_bars)
        self._release_before(table, inst.id, months[0])
        frame = self.read(table, [{INSTRUMENT: inst.id, MONTH: m} for m in months], hold=True)
        if frame.is_empty():
            return pl.DataFrame(schema=table.schema)
        start = warmup_start(month, inst.base_timeframe, lookback_bars)
        return frame.filter(pl.col(TS) >= start).sort(TS)

    def _release_before(self, table: Table, instrument: str, first_month: str) -> None:
        prefix = str(self.store.asset_dir(table.group, table.name) / f"{INSTRUMENT}={instrument}") + "/"
        for key in [k for k in self._held if k[0].startswith(prefix)]:
            month = key[0][len(prefix):].split("/", 1)[0].removeprefix(f"{MONTH}=")
            if month < first_month:
                _, frame = self._held.pop(key)
                self._bytes -= frame.estimated_size()
