"""Event-registry tests: numba cache location and the shipped spec catalog."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".numba_cache"))

import pytest  # noqa: E402

from lake_assets.events.spec_model import EventCatalog, load_event_specs  # noqa: E402


@pytest.fixture(scope="session")
def shipped_specs() -> EventCatalog:
    return load_event_specs()
