"""Batch input and output as a table of a SQLite or PostgreSQL database (`URL#table`).

Read in primary-key order (else by every column, in table order): the same chunks on every
run of a job, so resume holds; typed by the table's own column types. The output table is
created if missing, and a job's rows go in one transaction after the rows of any earlier
attempt of the same job are deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.batch.places import Place
from pointsman.errors import BadBatchSource

INSERT_ROWS = 5000


def _engine(place: Place) -> Engine:
    try:
        return sa.create_engine(place.url)
    except Exception as exc:
        raise BadBatchSource(f"Cannot open the database {place.url}: {exc}") from exc


def _reflect(engine: Engine, place: Place) -> sa.Table:
    try:
        return sa.Table(place.table, sa.MetaData(), autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise BadBatchSource(f"The database has no table {place.table!r} ({place}).") from None
    except sa.exc.SQLAlchemyError as exc:
        raise BadBatchSource(f"Cannot read {place}: {exc}") from exc


def sql_columns(place: Place) -> list[str]:
    engine = _engine(place)
    try:
        return [c.name for c in _reflect(engine, place).columns]
    finally:
        engine.dispose()


def sql_count(place: Place) -> int:
    engine = _engine(place)
    try:
        table = _reflect(engine, place)
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def sql_batches(place: Place, columns: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The table's `columns` in primary-key order, `chunk_rows` rows a batch, streamed."""
    engine = _engine(place)
    try:
        table = _reflect(engine, place)
        schema = pa.schema([(c, _arrow_type(table.c[c].type)) for c in columns])
        # Without a primary key, every column in table order: still the same order each run.
        order = list(table.primary_key.columns) or list(table.columns)
        query = sa.select(*[table.c[c] for c in columns]).order_by(*order)
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query)
            while rows := result.fetchmany(chunk_rows):
                values = list(zip(*rows, strict=True))
                arrays = [_array(list(v), f.type) for v, f in zip(values, schema, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        engine.dispose()


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    if pa.types.is_floating(kind):
        values = [None if v is None else float(v) for v in values]  # Decimal from NUMERIC
    return pa.array(values, type=kind)


def _arrow_type(kind: Any) -> pa.DataType:
    python = None
    with contextlib.suppress(NotImplementedError):
        python = kind.python_type
    if python is bool:
        return pa.bool_()
    if python is int:
        return pa.int64()
    if python is not None and python.__name__ in ("float", "Decimal"):
        return pa.float64()
    return pa.string()


def _sql_type(kind: pa.DataType) -> Any:
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_integer(kind):
        return sa.BigInteger()
    if pa.types.is_floating(kind):
        return sa.Float()
    return sa.Text()


def write_sql(
    place: Place,
    parts: list[Path],
    schema: pa.Schema,
    job_id: str,
    constants: dict[str, pa.Scalar] | None = None,
) -> None:
    """The parts into the table (created if missing), replacing this job's earlier rows;
    `constants` as `sinks.read_part` adds them."""
    from pointsman.batch.sinks import read_part

    engine = _engine(place)
    try:
        table = sa.Table(
            place.table, sa.MetaData(), *[sa.Column(f.name, _sql_type(f.type)) for f in schema]
        )
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
            existing = _reflect_in(conn, place)
            missing = [f.name for f in schema if f.name not in existing.c]
            if missing:
                raise BadBatchSource(
                    f"Table {place} exists without column {', '.join(missing)}; write to a new "
                    "table or add the columns."
                )
            conn.execute(existing.delete().where(existing.c.job_id == job_id))
            for part in parts:
                for batch in read_part(part, schema, constants).to_batches(INSERT_ROWS):
                    rows = batch.to_pylist()
                    if rows:
                        conn.execute(existing.insert(), rows)
    except sa.exc.SQLAlchemyError as exc:
        raise BadBatchSource(f"Cannot write {place}: {exc}") from exc
    finally:
        engine.dispose()


def _reflect_in(conn: sa.Connection, place: Place) -> sa.Table:
    return sa.Table(place.table, sa.MetaData(), autoload_with=conn)
