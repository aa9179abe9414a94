"""Where a job's output and rejects go: its part files assembled, in chunk order, once.

Each chunk is a Parquet part file of the job's own; the output is built from them when
every chunk is done, so a resumed job writes each row once. A file output is written aside
and renamed into place; a SQL table gets the job's rows in one transaction (the rows of an
earlier attempt of the same job deleted first).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def write_parts(spec: str, parts: list[Path], job_id: str, work: Path) -> None:
    """Assemble `parts` (in order) at the place `spec` names."""
    place = parse_place(spec)
    schema = unified_schema(parts)
    if place.kind == "sql":
        from pointsman.batch.sql import write_sql

        write_sql(place, parts, schema, job_id)
        return
    if place.kind == "s3":
        from pointsman.batch.s3files import upload

        local = work / ("assembled" + Path(spec).suffix.lower())
        _write_file(local, parts, schema)
        upload(local, spec)
        local.unlink()
        return
    path = Path(spec).expanduser()
    if path.suffix.lower() in FILE_SUFFIXES:
        _write_file(path, parts, schema)
    else:
        _write_folder(path, parts)


def unified_schema(parts: list[Path]) -> pa.Schema:
    """One schema for every part: a chunk of rejected rows only has no typed predictions."""
    schemas = [_part_schema(p) for p in parts]
    typed = [s for s in schemas if all(not pa.types.is_null(f.type) for f in s)]
    try:
        return pa.unify_schemas(typed or schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadBatchSource(f"The chunks' outputs differ in type: {exc}") from exc


def read_part(path: Path, schema: pa.Schema) -> pa.Table:
    """A part as `schema` (columns it lacks, e.g. no probabilities in an empty chunk, null)."""
    table = read_ipc(path)
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _part_schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path), "rb") as source:
        return pa.ipc.open_file(source).schema


def _write_file(path: Path, parts: list[Path], schema: pa.Schema) -> None:
    partial = path.with_name(path.name + ".partial")
    csv = path.suffix.lower() == ".csv"
    writer: pacsv.CSVWriter | pq.ParquetWriter
    if csv:
        writer = pacsv.CSVWriter(partial, schema)
    else:
        writer = pq.ParquetWriter(partial, schema, use_dictionary=dictionary_columns(schema))
    try:
        for part in parts:
            writer.write_table(read_part(part, schema))
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


def _write_folder(folder: Path, parts: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    for i, part in enumerate(parts):
        table = read_ipc(part)
        columns = dictionary_columns(table.schema)
        pq.write_table(table, folder / f"part-{i:06d}.parquet", use_dictionary=columns)
