"""Fixtures of the workbench tests: a small SPX lake (spx_lake.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from spx_lake import write_spx_lake

from lake_assets.storage.lake import Lake


@pytest.fixture()
def spx_lake(data_root: Path) -> Lake:
    return write_spx_lake(data_root)
