"""Printing for the CLI: the consoles, rich tables for people, JSON for scripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """JSON on stdout, exactly (no rich markup)."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
    print(text)


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], whole: tuple[str, ...] = ()
) -> None:
    """A readable table on stdout; the last column and those in `whole` fold, never cut."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        fold = i == len(columns) - 1 or column in whole
        out.add_column(column, no_wrap=not fold, overflow="fold" if fold else "ellipsis")
    for row in rows:
        out.add_row(*[cell(v) for v in row])
    console.print(out)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)
