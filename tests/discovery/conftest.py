"""Fixtures for discovery tests: the real spec, editable copies of it, and synthetic data helpers."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from lake_assets.discovery.spec_model import SPEC_FILES, DiscoverySpec, load_discovery_spec  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402

SPEC_ROOT = PROJECT_ROOT / "spec"


@pytest.fixture(scope="session")
def spec() -> DiscoverySpec:
    return load_discovery_spec(SPEC_ROOT)


@pytest.fixture()
def spec_copy(tmp_path: Path) -> Callable[..., Path]:
    """Copy the discovery spec files to a temp root, applying {file: {dotted.key: value}} edits."""

    def make(edits: dict[str, dict[str, Any]] | None = None) -> Path:
        root = tmp_path / "spec"
        for rel in SPEC_FILES:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SPEC_ROOT / rel, root / rel)
        for rel, changes in (edits or {}).items():
            data = yaml.safe_load((root / rel).read_text())
            for dotted, value in changes.items():
                node = data
                *parents, last = dotted.split(".")
                for p in parents:
                    node = node.setdefault(p, {})
                node[last] = value
            (root / rel).write_text(yaml.safe_dump(data))
        return root

    return make
