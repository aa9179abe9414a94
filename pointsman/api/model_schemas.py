"""One version's predict bodies in every protocol, as the decoders check them.

Built from the version's signature (validation/signature.py): every input column required,
its type and nullability, the numbers its dtype can hold, no other column (but the route's
sticky key on a route's path); the training range or categories of its reference profile as
descriptions. What the route's policy may still refuse (a value out of range, an unknown
category) is a 422 documented beside it. A row is a component (`Row_<model>_v<n>`, and its
values in column order `Values_…`) that every form of every protocol refers to.

JSON Schema cannot tie a count in one place to a count in another, so where the decoders
need them equal the schema fixes them: a V2 request documents batches of 1 or 2 rows (each
tensor's shape [n] or [n, 1] with n values), the columnar forms ({column: [values]}) one
row. CSV is text: its schema is a pattern of the header row and of rows of values each
column's type reads back as (pandas' missing-value words left out).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from pointsman.api.predict_schemas import one_key, v2_outputs, v2_parameters, value_schema
from pointsman.types import V2_DATATYPES, ColumnSpec, Signature

V2_BATCHES = (1, 2)  # the row counts a documented V2 request has
CSV_ROWS = 5  # at most this many rows in a generated CSV body
# A CSV cell each column type reads back as, within the type's range.
CSV_CELLS = {
    "double": r"-?[0-9]{1,15}(\.[0-9]{1,15})?([eE][-+]?[0-9]{1,2})?",
    "float": r"-?[0-9]{1,15}(\.[0-9]{1,15})?([eE][-+]?[0-9])?",
    "long": r"-?[0-9]{1,18}",
    "integer": r"-?[0-9]{1,9}",
    "boolean": r"(True|False|true|false)",
    # Starts with "x" or a digit: never one of pandas' missing-value words (NA, null, nan…).
    "string": r"[x0-9][A-Za-z0-9_ .]{0,15}",
}
# Text pandas.read_csv reads as a missing value by default (a category spelt so is left out).
NA_WORDS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})  # fmt: skip
FORMS = {
    "native": 'Rows as objects, or "columns" (in this order) with "data" rows of values.',
    "v1": 'Rows as objects or as lists in column order ("instances"), or one row as '
    '{column: [value]} ("inputs"; n values each for n rows).',
    "v2": "One tensor per input, in signature order here (any order is read): shape [n] or "
    "[n, 1] with n values; also one [n, columns] tensor, and binary tensors with "
    "Inference-Header-Content-Length.",
    "mlflow": 'One of "dataframe_split" (its "index", if sent, one label per row), '
    '"dataframe_records", "instances" or "inputs"; or the table as text/csv.',
}


class VersionSchemas:
    """The bodies of one version's predict paths, and the components they refer to."""

    def __init__(
        self, prefix: str, signature: Signature, profile: dict[str, Any] | None, max_rows: int
    ) -> None:
        self.signature = signature
        self.max_rows = max_rows
        self.features = (profile or {}).get("features", {})
        self.row_name, self.values_name = f"Row_{prefix}", f"Values_{prefix}"
        self.components = {
            self.row_name: self._row(),
            self.values_name: self._values(),
        }

    def _ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def _value(self, column: ColumnSpec) -> dict[str, Any]:
        return value_schema(column, self.features.get(column.name))

    def _row(self) -> dict[str, Any]:
        """One row as an object: every input required, no other key but the sticky key."""
        signature = self.signature
        properties = {c.name: self._value(c) for c in signature.inputs}
        for name in signature.passthrough:
            properties.setdefault(name, {"description": "The route's sticky key; not an input."})
        return {
            "type": "object",
            "properties": properties,
            "required": signature.names,
            "additionalProperties": False,
        }

    def _values(self) -> dict[str, Any]:
        """One row as a list of values in signature order."""
        values = [self._value(c) for c in self.signature.inputs]
        n = len(values)
        return {"type": "array", "prefixItems": values, "items": False, "minItems": n}

    def _rows(self, row: str) -> dict[str, Any]:
        return {"type": "array", "items": self._ref(row), "minItems": 1, "maxItems": self.max_rows}

    def _columns(self) -> dict[str, Any]:
        """One row as {column: [value]}."""
        properties = {
            c.name: {"type": "array", "items": self._value(c), "minItems": 1, "maxItems": 1}
            for c in self.signature.inputs
        }
        return {
            "type": "object",
            "properties": properties,
            "required": self.signature.names,
            "additionalProperties": False,
        }

    def body(self, protocol: str) -> dict[str, Any]:
        """The JSON request body of `protocol`."""
        rows, values = self._rows(self.row_name), self._rows(self.values_name)
        if protocol == "native":
            names = {"const": self.signature.names}
            forms = [one_key("rows", rows, ("columns", "data")),
                     one_key("columns", names, ("rows",), ("data",), data=values)]  # fmt: skip
        elif protocol == "v1":
            forms = [one_key("instances", {"anyOf": [rows, values]}, ("inputs",)),
                     one_key("inputs", self._columns(), ("instances",))]  # fmt: skip
        elif protocol == "v2":
            forms = [self._v2()]
        else:
            # Without "columns" (or with null) the data is in signature order.
            split = one_key("data", values, columns={"enum": [self.signature.names, None]})
            formats = {
                "dataframe_split": split,
                "dataframe_records": rows,
                "instances": {"anyOf": [rows, values]},
                "inputs": self._columns(),
            }
            forms = [
                one_key(key, schema, tuple(k for k in formats if k != key))
                for key, schema in formats.items()
            ]
        body = forms[0] if len(forms) == 1 else {"anyOf": forms}
        return {**body, "description": FORMS[protocol]}

    def _v2(self) -> dict[str, Any]:
        batches = [
            {
                "type": "array",
                "prefixItems": [self._tensor(c, n) for c in self.signature.inputs],
                "items": False,
                "minItems": len(self.signature.inputs),
            }
            for n in V2_BATCHES
        ]
        outputs = list(self.signature.outputs)
        if self.signature.has_probabilities and "probabilities" not in outputs:
            outputs.append("probabilities")
        return one_key(
            "inputs",
            {"anyOf": batches},
            id={"type": ["string", "null"]},
            parameters=v2_parameters(),
            outputs=v2_outputs(outputs),
        )

    def _tensor(self, column: ColumnSpec, n: int) -> dict[str, Any]:
        data = {"type": "array", "items": self._value(column), "minItems": n, "maxItems": n}
        return {
            "type": "object",
            "properties": {
                "name": {"const": column.name},
                "shape": {"enum": [[n], [n, 1]]},
                "datatype": {
                    "const": V2_DATATYPES[column.type],
                    "description": "Numeric columns also read the other numeric datatypes.",
                },
                "data": data,
                # Binary tensors need the Inference-Header-Content-Length header: not JSON.
                "parameters": {
                    **v2_parameters(),
                    "properties": {**v2_parameters()["properties"], "binary_data_size": False},
                },
            },
            "required": ["name", "shape", "datatype", "data"],
        }

    def csv(self) -> dict[str, Any]:
        """The text/csv body: a header row of the inputs, then rows of values."""
        cells = ",".join(self._cell(c) for c in self.signature.inputs)
        header = _escape(csv_line(self.signature.names))
        return {
            "type": "string",
            "pattern": f"^{header}(\\r?\\n{cells}){{1,{CSV_ROWS}}}(\\r?\\n)?$",
            "description": "A header row naming the inputs (any order is read), then one line "
            "per row, as pandas.DataFrame.to_csv(index=False) writes it.",
        }

    def _cell(self, column: ColumnSpec) -> str:
        categories = self.features.get(column.name, {}).get("categories") or []
        words = [csv_line([str(c)]) for c in categories if str(c) not in NA_WORDS]
        cell = CSV_CELLS[column.type]
        if column.type == "string" and words:
            cell = "|".join(map(_escape, words))
        return f"({cell})?" if column.nullable else f"({cell})"


def _escape(text: str) -> str:
    """`text` as a pattern matching itself, in the syntax Python and ECMA-262 share."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def csv_line(values: list[Any]) -> str:
    """One CSV line as pandas writes it (quoted only where needed), without its newline."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()
