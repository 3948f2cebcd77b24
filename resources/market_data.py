"""Market-data vendors behind one resource: `vendor_for(instrument)` returns the vendor named in the universe."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lake_assets.raw.vendors.base import Vendor
from lake_assets.settings import landing_root
from lake_assets.specs import Instrument


class MarketDataResource(dg.ConfigurableResource):
    """`as_of` (ISO time) freezes the synthetic vendor for reproducible runs; secrets come from env vars."""

    as_of: str | None = None
    landing_dir: str | None = None
    max_retries: int = 5  # vendor calls retried with exponential backoff on network errors

    def as_of_time(self) -> datetime | None:
        if self.as_of is None:
            return None
        ts = datetime.fromisoformat(self.as_of)
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    def landing_path(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else landing_root()

    def vendor_for(self, instrument: Instrument) -> Vendor:
        name = instrument.vendor
        if name == "synthetic":
            from lake_assets.raw.vendors.synthetic import SyntheticVendor

            return SyntheticVendor(as_of=self.as_of_time())
        if name == "packaged":
            from lake_assets.raw.vendors.packaged import PackagedVendor

            return PackagedVendor()
        if name == "trade_files":
            from lake_assets.raw.vendors.trade_files import TradeFilesVendor

            return TradeFilesVendor(self.landing_path() / "trade_files")
        if name == "ccxt":
            from lake_assets.raw.vendors.ccxt_binance import CcxtBinanceVendor

            # credentials (optional for public data) are read from QLAKE_BINANCE_API_KEY/_SECRET, never logged
            return CcxtBinanceVendor(max_retries=self.max_retries)
        if name == "yfinance":
            from lake_assets.raw.vendors.yfinance_vendor import YFinanceVendor

            return YFinanceVendor(max_retries=self.max_retries)
        raise ValueError(f"unknown vendor {name!r} for instrument {instrument.id}")
