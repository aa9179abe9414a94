"""The documented examples of one version's predict bodies: one real row in every form.

The row is the first of the version's reference sample (ui/snippets.py), so each example is
a request the version answers; tests/api/test_openapi_models.py posts every one of them.
"""

from __future__ import annotations

from typing import Any

from pointsman.api.model_schemas import csv_line
from pointsman.types import V2_DATATYPES, Signature

Examples = dict[str, dict[str, Any]]


def json_examples(protocol: str, signature: Signature, row: dict[str, Any]) -> Examples:
    """Named examples of `protocol`'s JSON body carrying `row`."""
    names = signature.names
    values = [row.get(n) for n in names]
    columns = {n: [row.get(n)] for n in names}
    if protocol == "native":
        forms: dict[str, Any] = {"rows": {"rows": [row]},
                                 "columns": {"columns": names, "data": [values]}}  # fmt: skip
    elif protocol == "v1":
        forms = {"instances": {"instances": [row]}, "inputs": {"inputs": columns}}
    elif protocol == "v2":
        tensors = [
            {
                "name": c.name,
                "shape": [1],
                "datatype": V2_DATATYPES[c.type],
                "data": [row.get(c.name)],
            }
            for c in signature.inputs
        ]
        forms = {"inputs": {"inputs": tensors}}
    else:
        forms = {
            "dataframe_split": {"dataframe_split": {"columns": names, "data": [values]}},
            "dataframe_records": {"dataframe_records": [row]},
            "instances": {"instances": [row]},
            "inputs": {"inputs": columns},
        }
    return {name: {"summary": f"One row as {name}", "value": body} for name, body in forms.items()}


def csv_example(signature: Signature, row: dict[str, Any]) -> str:
    """`row` as a CSV table: the header row, then its values."""
    cells = [_cell(row.get(n)) for n in signature.names]
    return f"{csv_line(signature.names)}\n{csv_line(cells)}\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is float:
        return repr(value)
    return str(value)
