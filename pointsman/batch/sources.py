"""Where a batch job reads: CSV or Parquet files, folders and globs of them, S3, SQL tables.

Read as a stream of Arrow batches and cut into chunks of exactly `chunk_rows` rows, so
that chunk N is the same rows on every run of the job: resuming skips finished chunks by
number. CSV columns are read as text (no type guessed from the first block and broken by a
later one); the version's signature reads its own columns.
"""

from __future__ import annotations

import csv
import glob
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pointsman.batch.places import Place, parse_place
from pointsman.errors import BadBatchSource

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CSV_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Source:
    """The files (in reading order) or the SQL table of a job's input."""

    place: Place
    files: tuple[str, ...] = ()  # local paths or s3:// URLs
    fmt: str = ""  # csv | parquet | sql

    @property
    def is_text(self) -> bool:
        return self.fmt == "csv"


def open_source(spec: str) -> Source:
    """The input `spec` names, with its files listed; BadBatchSource says what is wrong."""
    place = parse_place(spec)
    if place.kind == "sql":
        return Source(place, fmt="sql")
    if place.kind == "s3":
        from pointsman.batch.s3files import list_s3

        files = list_s3(place.url)
    else:
        files = _local_files(place.url)
    formats = {SUFFIXES.get(Path(f).suffix.lower()) for f in files}
    if None in formats or len(formats) != 1:
        raise BadBatchSource(
            f"Input {spec!r} mixes formats or holds files that are neither CSV nor Parquet "
            f"({', '.join(Path(f).name for f in files[:5])}); give files of one format "
            "(.csv, .parquet or .pq)."
        )
    return Source(place, tuple(files), formats.pop() or "")


def _local_files(url: str) -> list[str]:
    path = Path(url).expanduser()
    if any(c in url for c in "*?["):
        found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    elif path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
    elif path.is_file():
        found = [str(path)]
    else:
        raise BadBatchSource(f"Input {url!r} does not exist: give a file, a folder or a glob.")
    if not found:
        raise BadBatchSource(
            f"Input {url!r} holds no .csv or .parquet file; give a file, a folder or a glob."
        )
    return found


def column_names(source: Source) -> list[str]:
    """The input's columns (of its first file)."""
    if source.fmt == "sql":
        from pointsman.batch.sql import sql_columns

        return sql_columns(source.place)
    with _opened(source.files[0]) as path:
        if source.fmt == "parquet":
            return list(pq.read_schema(path).names)
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])


def count_rows(source: Source) -> int:
    """Rows in the input: Parquet's metadata, a count of CSV lines, SQL's count(*)."""
    if source.fmt == "sql":
        from pointsman.batch.sql import sql_count

        return sql_count(source.place)
    total = 0
    for name in source.files:
        with _opened(name) as path:
            if source.fmt == "parquet":
                total += pq.ParquetFile(path).metadata.num_rows
            else:  # lines less the header: exact unless a quoted value spans lines
                total += max(_lines(path) - 1, 0)
    return total


def fingerprint(source: Source) -> str:
    """Name, size and modification time of each local input file (S3 objects and tables:
    their names): what a resume compares, since chunk N must be the same rows again."""
    parts = []
    for name in source.files:
        if name.startswith("s3://"):
            parts.append(name)
            continue
        stat = Path(name).stat()
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    text = "\n".join(parts) or str(source.place)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _lines(path: str) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def read_chunks(
    source: Source, columns: list[str], chunk_rows: int, dictionaries: tuple[str, ...] = ()
) -> Iterator[pa.Table]:
    """The input's `columns` in chunks of exactly `chunk_rows` rows (the last one shorter);
    of Parquet, the `dictionaries` columns stored as text read as dictionaries."""
    pending: list[pa.RecordBatch] = []
    size = 0
    yielded = False
    schema: pa.Schema | None = None
    for batch in _batches(source, columns, chunk_rows, dictionaries):
        if schema is None:
            schema = batch.schema
        elif batch.schema != schema:
            batch = cast_to(batch, schema)
        while batch.num_rows:
            take = min(chunk_rows - size, batch.num_rows)
            pending.append(batch.slice(0, take))
            size += take
            batch = batch.slice(take)
            if size == chunk_rows:
                yield pa.Table.from_batches(pending)
                pending, size, yielded = [], 0, True
    if size:
        yield pa.Table.from_batches(pending)
    elif schema is None or not yielded:  # an empty input is one empty chunk: its files exist
        empty = pa.schema([(c, pa.string()) for c in columns]) if schema is None else schema
        yield empty.empty_table()


def cast_to(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A later file's batch as the input's first rows are typed."""
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise BadBatchSource(
            f"The input's files do not share one schema ({exc}); give files of the same "
            "columns and types."
        ) from exc


def parquet_file(path: str, dictionaries: tuple[str, ...] = ()) -> pq.ParquetFile:
    """A Parquet file's reader, its `dictionaries` columns read as Arrow dictionaries where
    the file stores them as text: the categories are checked once per distinct value, and
    the text decoded once, for the model."""
    plain = pq.ParquetFile(path)
    schema = plain.schema_arrow
    text = [c for c in dictionaries if c in schema.names and _is_text(schema.field(c).type)]
    if not text:
        return plain
    return pq.ParquetFile(path, metadata=plain.metadata, read_dictionary=text)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _batches(
    source: Source, columns: list[str], chunk_rows: int, dictionaries: tuple[str, ...]
) -> Iterator[pa.RecordBatch]:
    if source.fmt == "sql":
        from pointsman.batch.sql import sql_batches

        yield from sql_batches(source.place, columns, chunk_rows)
        return
    for name in source.files:
        with _opened(name) as path:
            if source.fmt == "parquet":
                reader = parquet_file(path, dictionaries)
                yield from reader.iter_batches(batch_size=chunk_rows, columns=columns)
            else:
                yield from _csv_batches(path, columns)


def _csv_batches(path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in columns if c not in header]
    if missing:
        raise BadBatchSource(f"{Path(path).name} has no column {', '.join(missing)}.")
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        include_columns=columns,
        strings_can_be_null=True,
        null_values=[""],
    )
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        yield from reader
    except pa.ArrowInvalid as exc:
        raise BadBatchSource(f"{Path(path).name} is not readable CSV: {exc}") from exc


class _opened:
    """A local path for `name`: itself, or an S3 object downloaded for as long as it is read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.download: Path | None = None

    def __enter__(self) -> str:
        if not self.name.startswith("s3://"):
            return self.name
        from pointsman.batch.s3files import download

        self.download = download(self.name)
        return str(self.download)

    def __exit__(self, *exc: object) -> None:
        if self.download is not None:
            self.download.unlink(missing_ok=True)
