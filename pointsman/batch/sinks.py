"""Where a job's output and rejects go: its part files assembled, in chunk order, once.

Each chunk is an Arrow part file of the job's own; the output is built from them when
every chunk is done, so a resumed job writes each row once. The columns every row of a job
shares (its version and id, and the status where no row of the chunk is flagged) are not in
the parts: they are added here, last, as the scorer once wrote them (a part that has them,
from an older pointsman, keeps its own). A file output is written aside
and renamed into place; a SQL table gets the job's rows in one transaction (the rows of an
earlier attempt of the same job deleted first).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pointsman.batch.places import Place, parse_place
from pointsman.errors import BadBatchSource

FILE_SUFFIXES = (".csv", ".parquet", ".pq")


def check_output(spec: str) -> Place:
    """The output place, refused early when it cannot be written."""
    place = parse_place(spec)
    if place.kind == "file":
        if any(c in spec for c in "*?["):
            raise BadBatchSource(f"Output {spec!r} is a glob; give a file or a folder.")
        parent = Path(spec).expanduser().parent
        if not parent.is_dir():
            raise BadBatchSource(f"Output {spec!r}: the folder {parent} does not exist.")
    if place.kind == "s3" and not spec.lower().endswith(FILE_SUFFIXES):
        raise BadBatchSource(f"S3 output {spec!r} must name a .csv or .parquet object.")
    return place


def rejects_of(spec: str) -> str:
    """Where the rejects go unless told: beside the output, `.rejects` before the suffix."""
    place = parse_place(spec)
    if place.kind == "sql":
        return f"{place.url}#{place.table}_rejects"
    for suffix in FILE_SUFFIXES:
        if spec.lower().endswith(suffix):
            return spec[: -len(suffix)] + ".rejects" + spec[-len(suffix) :]
    return spec.rstrip("/") + "/rejects.parquet"


Constants = dict[str, pa.Scalar]


def output_constants(version: int, job_id: str) -> Constants:
    """The output's last columns, and their value where a part has not the column."""
    return {
        "version": pa.scalar(version, pa.int64()),
        "status": pa.scalar("ok", pa.string()),
        "job_id": pa.scalar(job_id, pa.string()),
    }


def rejects_constants(version: int, job_id: str) -> Constants:
    """The rejects' last columns, and their value."""
    return {"version": pa.scalar(version, pa.int64()), "job_id": pa.scalar(job_id, pa.string())}


def write_parts(
    spec: str, parts: list[Path], job_id: str, work: Path, constants: Constants | None = None
) -> None:
    """Assemble `parts` (in order) at the place `spec` names, `constants` added last."""
    constants = constants or {}
    place = parse_place(spec)
    schema = unified_schema(parts, constants)
    if place.kind == "sql":
        from pointsman.batch.sql import write_sql

        write_sql(place, parts, schema, job_id, constants)
        return
    if place.kind == "s3":
        from pointsman.batch.s3files import upload

        local = work / ("assembled" + Path(spec).suffix.lower())
        _write_file(local, parts, schema, constants)
        upload(local, spec)
        local.unlink()
        return
    path = Path(spec).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES:
        _write_file(path, parts, schema, constants)
    else:
        _write_folder(path, parts, constants)


def unified_schema(parts: list[Path], constants: Constants | None = None) -> pa.Schema:
    """One schema for every part: a chunk of rejected rows only has no typed predictions;
    the `constants` last, in their order."""
    schemas = [_part_schema(p) for p in parts]
    typed = [s for s in schemas if all(not pa.types.is_null(f.type) for f in s)]
    try:
        schema = pa.unify_schemas(typed or schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadBatchSource(f"The chunks' outputs differ in type: {exc}") from exc
    return _constants_last(schema, constants)


def _constants_last(schema: pa.Schema, constants: Constants | None) -> pa.Schema:
    if not constants:
        return schema
    fields = [f for f in schema if f.name not in constants]
    return pa.schema([*fields, *(pa.field(name, v.type) for name, v in constants.items())])


def read_part(path: Path, schema: pa.Schema, constants: Constants | None = None) -> pa.Table:
    """A part as `schema`: columns it lacks are their constant's value, else null (e.g. no
    probabilities in a chunk of rejected rows only)."""
    table = read_ipc(path)
    n = table.num_rows
    columns: list[Any] = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif constants and field.name in constants:
            columns.append(_repeated(constants[field.name], n))
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


@functools.lru_cache(maxsize=8)
def _repeated(value: pa.Scalar, n: int) -> pa.Array:
    """A constant column: built once for the many parts of a chunk's size (Arrow arrays are
    immutable, so every part shares it)."""
    return pa.repeat(value, n)


def _part_schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path), "rb") as source:
        return pa.ipc.open_file(source).schema


def _write_file(path: Path, parts: list[Path], schema: pa.Schema, constants: Constants) -> None:
    partial = path.with_name(path.name + ".partial")
    csv = path.suffix.lower() == ".csv"
    writer: pacsv.CSVWriter | pq.ParquetWriter
    if csv:
        writer = pacsv.CSVWriter(partial, schema)
    else:
        writer = pq.ParquetWriter(partial, schema, use_dictionary=dictionary_columns(schema))
    try:
        for part in parts:
            writer.write_table(read_part(part, schema, constants))
    finally:
        writer.close()
    os.replace(partial, path)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth Parquet's dictionary encoding: few distinct values (labels, status,
    version, job id, kept text). Probabilities and row numbers are all distinct, and trying a
    dictionary on them first costs more than the rest of writing them."""
    return [f.name for f in schema if f.name != "row" and not pa.types.is_floating(f.type)]


def read_ipc(part: Path) -> pa.Table:
    """A part file as a table, memory-mapped rather than copied (read once, then written)."""
    with pa.memory_map(str(part), "rb") as source:
        return pa.ipc.open_file(source).read_all()


def _write_folder(folder: Path, parts: list[Path], constants: Constants) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    for i, part in enumerate(parts):  # each file of its part's own columns
        table = read_part(part, _constants_last(_part_schema(part), constants), constants)
        columns = dictionary_columns(table.schema)
        pq.write_table(table, folder / f"part-{i:06d}.parquet", use_dictionary=columns)
