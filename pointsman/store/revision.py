"""The schema revision the code expects: the newest migration's, read from the file names.

Known without Alembic or SQLAlchemy (files are named after their revision,
`0007_spool_usage.py`), so that a store already at it is recognised at no cost.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


def head_revision() -> str:
    """The newest migration's revision: the number its file name starts with."""
    return max(path.name.partition("_")[0] for path in (MIGRATIONS / "versions").glob("*_*.py"))
