from __future__ import annotations

from pathlib import Path

import polars as pl

from lake_assets.storage.lake import Lake
from lake_assets.storage.quarantine import quarantine_rows, write_quarantine
from lake_assets.storage.warehouse import build_catalog, query, refresh_catalog


def test_views_appear_and_refresh_only_when_needed(tmp_path: Path, data_root: Path) -> None:
    lake = Lake(tmp_path / "lake")
    db = tmp_path / "wh" / "lake.duckdb"
    build_catalog(lake, db)
    assert query("select count(*) from quarantine", db).item() == 0  # typed and empty before any data
    assert not refresh_catalog(lake, db)  # nothing changed
    bars = pl.DataFrame({"ts": [1, 2], "instrument": ["BTCUSDT", "BTCUSDT"], "close": [1.0, 2.0]})
    lake.write(bars, "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    assert refresh_catalog(lake, db)  # first partition of an asset: its view is created
    lake.write(bars, "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-02"})
    assert not refresh_catalog(lake, db)  # a glob view already sees new partitions
    assert query("select month, count(*) from bars group by 1 order by 1", db).rows() == [
        ("2026-01", 2),
        ("2026-02", 2),
    ]
    bad = quarantine_rows(bars.head(1), asset="raw_ohlcv", instrument="BTCUSDT", source="test", reason="why")
    write_quarantine(lake, bad, asset="raw_ohlcv", instrument="BTCUSDT", month="2026-01")
    assert refresh_catalog(lake, db)  # the empty placeholder view becomes the glob view
    assert query("select reason from quarantine", db).item() == "why"
