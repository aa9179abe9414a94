"""Where a job reads or writes, from what the user wrote: a path, `s3://…`, `…#table`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pointsman.errors import BadBatchSource

_SQL = re.compile(r"^(sqlite|postgresql|postgres)(\+\w+)?://")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Place:
    """`kind`: file (a path, folder or glob), s3 (a URL) or sql (a database URL and table)."""

    kind: str
    url: str
    table: str = ""

    def __str__(self) -> str:
        return f"{self.url}#{self.table}" if self.table else self.url


def parse_place(spec: str) -> Place:
    """The place `spec` names; BadBatchSource says how to write it when it cannot be read."""
    if _SQL.match(spec):
        url, _, table = spec.partition("#")
        if not _TABLE.match(table):
            raise BadBatchSource(
                f"{spec!r} names a database without a table: write it as URL#table, e.g. "
                "sqlite:///data.db#customers (a table name of letters, digits and _)."
            )
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return Place("sql", url, table)
    if spec.startswith("s3://"):
        return Place("s3", spec)
    if "://" in spec:
        raise BadBatchSource(
            f"{spec!r}: only local paths, s3:// URLs and sqlite:// or postgresql:// tables "
            "(URL#table) are read and written."
        )
    return Place("file", spec)
