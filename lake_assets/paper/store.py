"""The paper loop's tables in the lake: `lake/paper/<table>/session=<session>/part-0.parquet`, each written whole and
atomically (`Lake.write`: temp file + os.replace), conformed to its declaration in `tables.py`."""

from __future__ import annotations

import polars as pl

from lake_assets import tables
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import conform

SESSION = "session"
BY_NAME = {t.name: t for t in tables.PAPER_TABLES}


class LakePaperStore:
    def __init__(self, lake: Lake, session: str) -> None:
        self.lake, self.session = lake, session

    def read(self, table: str) -> pl.DataFrame:
        t = BY_NAME[table]
        dims = {SESSION: self.session}
        if not self.lake.exists(t.group, t.name, dims):
            return pl.DataFrame()
        return self.lake.read(t.group, t.name, [dims])

    def write(self, table: str, df: pl.DataFrame) -> None:
        t = BY_NAME[table]
        self.lake.write(conform(df, t.schema) if df.columns else pl.DataFrame(schema=t.schema), t.group, t.name,
                        {SESSION: self.session})  # fmt: skip
