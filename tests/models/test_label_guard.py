"""Labels are the only forward-looking columns: no module of the lake but the training sets' may read them.

A module reads the labels table by naming `tables.LABELS` (the reader's and the lake's only handle on it) or its
lake path `"labels"` with the models group; this test scans every module's source for either."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "lake_assets/tables.py",  # declares it
    "lake_assets/models/labels.py",  # computes it
    "lake_assets/models/assets.py",  # writes it (labels) and reads it (training_sets)
}


def _readers() -> list[str]:
    out = []
    for path in sorted([*(ROOT / "lake_assets").rglob("*.py"), *(ROOT / "sensors").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Attribute) and node.attr == "LABELS") or (
                isinstance(node, ast.Name) and node.id == "LABELS") or (
                isinstance(node, ast.alias) and node.name == "LABELS")  # fmt: skip
            lake_path = isinstance(node, ast.Call) and any(
                isinstance(a, ast.Constant) and a.value == "models" for a in node.args
            ) and any(isinstance(a, ast.Constant) and a.value == "labels" for a in node.args)
            if (named or lake_path) and rel not in ALLOWED:
                out.append(f"{rel}:{node.lineno}")
    return out


def test_only_training_reads_labels() -> None:
    assert _readers() == []


def test_the_guard_sees_a_reader(tmp_path: Path) -> None:
    src = "from lake_assets import tables\nx = store.reader.read(tables.LABELS, [])\n"
    tree = ast.parse(src)
    assert any(isinstance(n, ast.Attribute) and n.attr == "LABELS" for n in ast.walk(tree))
