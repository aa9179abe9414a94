"""Docs that are generated from the code are current; every setting is documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pointsman
from pointsman.errors import PointsmanError
from pointsman.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_current() -> None:
    generator = load_generator()
    for name, build in generator.GENERATED.items():
        assert (ROOT / "docs" / name).read_text() == build(), (
            f"docs/{name} is stale: run .venv/bin/python scripts/gen_docs.py"
        )


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`POINTSMAN_{name.upper()}`" in text


def test_every_setting_has_help_text() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_changelog_names_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = [line[3:].strip() for line in changelog.splitlines() if line.startswith("## ")]
    assert versions[0] == "Unreleased" and versions[1] == pointsman.__version__


def test_every_error_class_has_its_own_code() -> None:
    codes: dict[str, str] = {}

    def walk(cls: type[PointsmanError]) -> None:
        for sub in cls.__subclasses__():
            assert sub.code not in codes or sub.code == cls.code, (sub, codes.get(sub.code))
            codes[sub.code] = sub.__name__
            walk(sub)

    walk(PointsmanError)
    assert len(codes) >= 10
