"""Imports point down the request path only (STYLE.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pointsman"

# Lower numbers are further down; a module may import its own rank or lower.
RANKS = {
    "__init__": 0,
    "errors": 0,
    "types": 0,
    "settings": 0,
    "store": 1,
    "protocols": 2,
    "validation": 2,
    "runtimes": 2,
    "registry": 2,
    "routing": 2,
    "auth": 2,
    "logstore": 2,
    "demo": 2,
    "project": 4,
    "runners": 4,
    "monitoring": 4,
    "alerts": 4,
    "catalog": 5,
    "manifests": 5,
    "pipeline": 5,
    "gates": 5,
    "batch": 5,
    "worker": 6,
    "ui": 6,
    "api": 7,
    "cli": 8,
    "__main__": 9,
}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    name = "pointsman." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = component(name)
    assert own in RANKS, f"{own} has no rank in tests/test_layers.py: give it one"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
            if node.module == "pointsman":
                targets = [f"pointsman.{a.name}" for a in node.names if a.name in RANKS]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if not target.startswith("pointsman"):
                continue
            other = component(target)
            assert RANKS.get(other, 99) <= RANKS[own], f"{name} imports {target}: upward"


def test_no_class_is_over_300_lines() -> None:
    """A class that grows past this is holding two jobs: split it (STYLE.md §2)."""
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno:
                size = node.end_lineno - node.lineno + 1
                if size > 300:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({size} lines)")
    assert not long, long


def test_the_request_path_has_no_function_over_30_lines() -> None:
    """pipeline.py reads as DESIGN's sequence: each step a short function."""
    tree = ast.parse((PACKAGE / "pipeline.py").read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno
        and node.end_lineno - node.lineno + 1 > 30
    ]
    assert not long, long


def test_the_request_path_imports_neither_alerts_nor_the_drift_monitor() -> None:
    text = (PACKAGE / "pipeline.py").read_text()
    assert "pointsman.alerts" not in text and "monitoring.monitor" not in text
