"""Point-in-time raw: every vendor delivery is kept with its `ingested_at`; a closed month is not fetched again unless
the run forces it or the vendor says it changed; a vendor restating history adds a delivery, and the raw layer read
as of a time returns what the lake held then; bars record the delivery they were built from."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake_assets.cli import PlannedRun
from lake_assets.raw.ingest import REFETCH_TAG, raw_as_of
from lake_assets.storage.lake import PART_FILE, Lake
from lake_assets.vendors.synthetic import SyntheticVendor
from lake_assets.vocabulary import CLOSE, INGESTED_AT, INSTRUMENT, DataKind

AS_OF = "2026-03-01T00:00:00+00:00"
SPOT, MONTH = "BTCUSDT", "2026-01"
KEY = f"{SPOT}|{MONTH}"
DIMS = {INSTRUMENT: SPOT, "month": MONTH}


def run(assets: tuple[str, ...], tags: dict[str, str] | None = None) -> dict[str, dg.AssetMaterialization]:
    from lake_assets.definitions import all_assets
    from resources import LakeResource, MarketDataResource, WarehouseResource

    result = dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*assets),
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": LakeResource(), "warehouse": WarehouseResource(),
                   "market_data": MarketDataResource(as_of=AS_OF, refetch_closed_months=False)},  # as deployed
        tags={**PlannedRun("test", list(assets), KEY, KEY).run_tags(), **(tags or {})},
    )  # fmt: skip
    assert result.success
    return {e.materialization.asset_key.to_user_string(): e.materialization
            for e in result.get_asset_materialization_events()}  # fmt: skip


@pytest.mark.timeout(300)
def test_deliveries_are_kept_read_as_of_and_recorded_downstream(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[str] = []
    original = SyntheticVendor.fetch
    restate = {"on": False}

    def fetch(self: SyntheticVendor, inst: Any, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        fetches.append(inst.id)
        df = original(self, inst, start, end, kind)
        return df.with_columns(pl.col(CLOSE) * 1.01) if restate["on"] and kind == DataKind.OHLCV else df

    monkeypatch.setattr(SyntheticVendor, "fetch", fetch)
    monkeypatch.setattr(SyntheticVendor, "revised_since", lambda self, *a: restate["on"])
    lake = Lake()

    first = run(("raw_ohlcv",))["raw_ohlcv"].metadata["delivery"].value
    assert first["fetched"] and first["closed"] and first["deliveries_kept"] == 1 and fetches == [SPOT]
    (d1,) = lake.deliveries("raw", "raw_ohlcv", DIMS)
    original_rows = lake.read("raw", "raw_ohlcv", [DIMS])
    assert original_rows[INGESTED_AT].unique().to_list() == [d1.ingested_at]

    # a closed month, and the vendor reports no change: not fetched again, the partition keeps its delivery
    again = run(("raw_ohlcv",))["raw_ohlcv"].metadata["delivery"].value
    assert not again["fetched"] and again["delivery"] == d1.ingested_at.isoformat() and fetches == [SPOT]
    assert lake.read("raw", "raw_ohlcv", [DIMS]).equals(original_rows)

    # the vendor restates the month: a second delivery, published; bars built from it say so
    restate["on"] = True
    between = datetime.now(UTC)
    mats = run(("raw_ohlcv", "bars"))
    assert mats["raw_ohlcv"].metadata["delivery"].value["fetched"] and len(fetches) == 2
    d1_again, d2 = lake.deliveries("raw", "raw_ohlcv", DIMS)
    assert d1_again == d1 and d2.ingested_at > between
    restated = lake.read("raw", "raw_ohlcv", [DIMS])
    assert restated[CLOSE].to_list() == pytest.approx((original_rows[CLOSE] * 1.01).to_list())
    used = mats["bars"].metadata["raw_deliveries"].value
    assert used[f"raw_ohlcv/{SPOT}|{MONTH}"] == d2.ingested_at.isoformat()

    # read as of a time: what past research saw is still there
    before = raw_as_of(lake, DataKind.OHLCV, SPOT, MONTH, between)
    assert before.equals(original_rows)
    assert raw_as_of(lake, DataKind.OHLCV, SPOT, MONTH, datetime.now(UTC)).equals(restated)
    assert raw_as_of(lake, DataKind.OHLCV, SPOT, MONTH, datetime(2020, 1, 1, tzinfo=UTC)).is_empty()

    # forced: fetched although the vendor reports no change
    restate["on"] = False
    forced = run(("raw_ohlcv",), tags={REFETCH_TAG: "true"})["raw_ohlcv"].metadata["delivery"].value
    assert forced["fetched"] and forced["deliveries_kept"] == 3 and len(fetches) == 3
    # deliveries live outside the table: the partition folder holds only its file, views see only it
    assert [p.name for p in lake.partition_path("raw", "raw_ohlcv", DIMS).parent.iterdir()] == [PART_FILE]
    assert lake.partitions("raw", "raw_ohlcv") == [DIMS]
