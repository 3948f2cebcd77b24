"""The one interface every market-data vendor implements."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import polars as pl

from lake_assets.specs import Instrument
from lake_assets.vocabulary import DataKind


class VendorError(RuntimeError):
    """A vendor could not deliver; the message names the vendor, instrument and request."""


class Vendor(Protocol):
    name: str

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        """Rows with start <= ts < end in the canonical raw schema for `kind` (vocabulary.RAW_SCHEMAS).

        A kind the vendor does not have for this instrument returns an empty frame of that schema;
        nothing is fabricated. Timestamps are UTC.
        """
        ...


# Optional: a vendor that can tell whether history it delivered was revised implements
#     revised_since(instrument, start, end, kind, since: datetime) -> bool
# (True: data for [start, end) changed since `since`). A closed month is fetched again only when it says True, or
# when the run forces it (lake_assets.raw.ingest.delivery_for_run); a vendor without it is never asked.
