"""A trade-files month is streamed to the lake in slices (bounded memory): the staged partition holds exactly the
accepted trades, rejected rows are returned for quarantine, and the slices' GX and ordering verdicts combine into the
partition's own (counts add up; a duplicate across a slice boundary is still found)."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checks"))
from test_expectations import make_raw_trades  # noqa: E402

from lake_assets.checks.expectations import run_expectations  # noqa: E402
from lake_assets.raw import assets as raw_assets  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import PRICE, TS  # noqa: E402


class FakeScan:
    """What the trade-files scan offers the asset: its trades written (sorted) to a file."""

    def __init__(self, trades: pl.DataFrame) -> None:
        self.trades = trades

    def write_trades(self, path: Path) -> int:
        self.trades.sort(TS).write_parquet(path)
        return self.trades.height


def test_a_clean_month_is_staged_by_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raw_assets, "STREAM_SLICE_ROWS", 7)
    trades = make_raw_trades(20)
    lake = Lake(tmp_path / "lake")
    dims = {"instrument": "BTCUSDT-PERP", "month": "2026-01"}
    written: list[Path] = []

    class Recording(FakeScan):
        def write_trades(self, path: Path) -> int:
            written.append(path)
            return super().write_trades(path)

    part = raw_assets.stream_trades_partition(lake, Recording(trades), "raw_trades", dims)
    assert part.staged == written[0] and part.quarantine.is_empty()  # nothing rejected: no second file
    assert pl.read_parquet(part.staged).equals(trades.sort(TS))


def test_a_month_is_validated_and_checked_slice_by_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raw_assets, "STREAM_SLICE_ROWS", 7)
    trades = make_raw_trades(40)
    trades = trades.with_columns(  # two rows the row validation rejects (non-positive price)
        pl.when(pl.int_range(pl.len()).is_in([3, 30])).then(-1.0).otherwise(pl.col(PRICE)).alias(PRICE)
    )
    # a duplicate timestamp exactly across the boundary of the first two slices (rows 6 and 7 after sorting)
    ts = trades.sort(TS)[TS]
    trades = trades.sort(TS).with_columns(pl.when(pl.int_range(pl.len()) == 7).then(ts[6]).otherwise(TS).alias(TS))
    lake = Lake(tmp_path / "lake")
    dims = {"instrument": "BTCUSDT-PERP", "month": "2026-01"}
    part = raw_assets.stream_trades_partition(lake, FakeScan(trades), "raw_trades", dims)

    staged = pl.read_parquet(part.staged)
    accepted = trades.filter(pl.col(PRICE) > 0).sort(TS)
    assert part.rows == staged.height == accepted.height == 38
    assert staged[TS].to_list() == accepted[TS].to_list()
    assert part.quarantine.height == 2 and part.counts == {"delivered": 40, "accepted": 38, "quarantined": 2}
    whole = run_expectations(accepted, "raw_trades", "raw")
    assert part.suite.evaluated_rows == 38 and part.suite.success == whole.success
    for mine, all_at_once in zip(part.suite.results, whole.results, strict=True):
        assert mine.unexpected_count == all_at_once.unexpected_count, mine.expectation
    assert not part.ordering.passed  # the duplicate straddling the slice boundary
    assert part.time_range is not None and part.time_range.startswith(str(accepted[TS][0]))
    assert list(part.staged.parent.glob(".*.tmp")) == [part.staged]  # the file without the rejects, nothing else
    assert not lake.exists("raw", "raw_trades", dims)  # nothing is published before the audit
