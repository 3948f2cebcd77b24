"""The market-data vendors as a Dagster resource: configuration (freeze time, landing directory, retries) only; the
vendors themselves and the choice among them are `lake_assets.vendors`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lake_assets.settings import landing_root
from lake_assets.specs import Instrument
from lake_assets.vendors import Vendor, vendor_for


class MarketDataResource(dg.ConfigurableResource):
    """`as_of` (ISO time) freezes the synthetic vendor for reproducible runs; secrets come from env vars."""

    as_of: str | None = None
    landing_dir: str | None = None
    max_retries: int = 5  # vendor calls retried with exponential backoff on network errors
    # True: every requested raw partition is fetched again (a bare resource: tests, scripts). The graph's resources
    # (resources_for) set False: a month whose latest delivery is closed is reused, unless the run is tagged
    # qlake/refetch=true or the vendor says it changed (lake_assets.raw.ingest.delivery_for_run)
    refetch_closed_months: bool = True

    def as_of_time(self) -> datetime | None:
        if self.as_of is None:
            return None
        ts = datetime.fromisoformat(self.as_of)
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    def landing_path(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else landing_root()

    def vendor_for(self, instrument: Instrument) -> Vendor:
        return vendor_for(instrument, as_of=self.as_of_time(), landing_dir=self.landing_path(),
                          max_retries=self.max_retries)  # fmt: skip
