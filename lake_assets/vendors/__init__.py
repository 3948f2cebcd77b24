"""Market-data vendors: clients of the systems data comes from, one `fetch(instrument, start, end, kind)` interface.

`vendor_for(instrument)` returns the vendor the universe names for an instrument. Vendors know nothing of Dagster or
of the lake's layers; `resources.market_data` configures them for the assets.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lake_assets.specs import VENDORS, Instrument
from lake_assets.vendors.base import Vendor, VendorError

__all__ = ["VENDORS", "Vendor", "VendorError", "vendor_for"]

def vendor_for(instrument: Instrument, *, as_of: datetime | None = None, landing_dir: Path | None = None,
               max_retries: int = 5) -> Vendor:
    """The vendor named in the universe for `instrument`, configured (imported on demand: ccxt and yfinance are slow
    to import)."""
    name = instrument.vendor
    if name == "synthetic":
        from lake_assets.vendors.synthetic import SyntheticVendor

        return SyntheticVendor(as_of=as_of)
    if name == "packaged":
        from lake_assets.vendors.packaged import PackagedVendor

        return PackagedVendor()
    if name == "trade_files":
        from lake_assets.settings import landing_root
        from lake_assets.vendors.trade_files import TradeFilesVendor

        return TradeFilesVendor((landing_dir or landing_root()) / "trade_files")
    if name == "ccxt":
        from lake_assets.vendors.ccxt_binance import CcxtBinanceVendor

        # credentials (optional for public data) are read from QLAKE_BINANCE_API_KEY/_SECRET, never logged
        return CcxtBinanceVendor(max_retries=max_retries)
    if name == "yfinance":
        from lake_assets.vendors.yfinance_vendor import YFinanceVendor

        return YFinanceVendor(max_retries=max_retries)
    raise ValueError(f"unknown vendor {name!r} for instrument {instrument.id}; expected one of {list(VENDORS)}")
