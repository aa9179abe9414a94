"""Export prediction records to Parquet or CSV, streamed: one batch in memory at a time."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("parquet", "csv")
JSON_COLUMNS = ("inputs", "outputs", "findings", "extra")  # nested: kept as JSON text
SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("version", pa.int32()),
        ("role", pa.string()),
        ("route_revision", pa.int32()),
        ("client", pa.string()),
        ("n_rows", pa.int32()),
        ("latency_ms", pa.float64()),
        ("model_ms", pa.float64()),
        ("runtime", pa.string()),
        ("error_code", pa.string()),
        ("error", pa.string()),
        *((name, pa.string()) for name in JSON_COLUMNS),
    ]
)
COLUMNS = SCHEMA.names


def format_of(path: Path, given: str | None) -> str | None:
    """The format asked for, or the one the file name says (None if neither)."""
    if given:
        return given
    suffix = path.suffix.lower().lstrip(".")
    return {"parquet": "parquet", "pq": "parquet", "csv": "csv"}.get(suffix)


def export_records(
    records: Iterable[dict[str, Any]], path: Path, fmt: str, batch: int = 5000
) -> int:
    """Write `records` to `path` as `fmt`; returns how many. Holds one batch at a time."""
    if fmt == "csv":
        return _write_csv(records, path)
    count = 0
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        for chunk in _chunks(iter(records), batch):
            columns = {name: [_cell(r.get(name), name) for r in chunk] for name in COLUMNS}
            columns["time"] = [datetime.fromisoformat(t) for t in columns["time"]]
            writer.write_table(pa.Table.from_pydict(columns, schema=SCHEMA))
            count += len(chunk)
    return count


def _write_csv(records: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for r in records:
            writer.writerow(["" if (v := _cell(r.get(n), n)) is None else v for n in COLUMNS])
            count += 1
    return count


def _cell(value: Any, name: str) -> Any:
    if name in JSON_COLUMNS and value is not None:
        return orjson.dumps(value).decode()
    return value


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(items, size)):
        yield chunk
