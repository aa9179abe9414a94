"""Row-major tables shared by the protocols: rows of values → one list per column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pointsman.errors import BadRequest
from pointsman.types import json_type


def rows_to_columns(rows: Sequence[Any], names: Sequence[str], where: str) -> dict[str, list[Any]]:
    """Rows of values in column order → {column: values}; BadRequest names a ragged row."""
    width = len(names)
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            got = f"{len(row)} values" if type(row) is list else f"a {json_type(row)}"
            raise BadRequest(
                f"{where}[{i}] must be a list of {width} values in the order "
                f"{', '.join(names)}, got {got}."
            )
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def check_has_rows(n_rows: int, where: str, example: str) -> None:
    """BadRequest for an empty batch: a request must carry at least one row."""
    if n_rows == 0:
        raise BadRequest(f"{where} is empty; send at least one row, e.g. {example}.")


def check_column_names(names: Any, where: str) -> list[str]:
    """A JSON list of distinct column-name strings, or BadRequest saying what is wrong."""
    if type(names) is not list or not all(type(n) is str for n in names):
        raise BadRequest(f"{where} must be a list of column-name strings, got {names!r:.200}.")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise BadRequest(f"{where} repeats column(s) {', '.join(repeated)}; name each once.")
    return names
