"""Chunks a worker reads itself from the input's Parquet row groups, so that the job's
process hands it a few numbers instead of the chunk's rows (read, pickled, sent, unpickled).

Chunk N is the same rows as `sources.read_chunks` gives (from row N * chunk_rows, typed
as the input's first rows, later files cast to them), whatever the row groups. Only where
every row group fits in a chunk: a chunk that starts inside a row group is decoded from that
group's start, so a larger group would be decoded again for each chunk it holds.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from pointsman.batch.sources import Source, cast_to, parquet_file


@dataclass(frozen=True)
class ChunkPlace:
    """Where one chunk's rows are: its row groups, in reading order, and how to read them."""

    chunk: int
    rows: int
    pieces: tuple[tuple[str, tuple[int, ...]], ...]  # (file, its row groups)
    skip: int  # rows of the first row group before the chunk's first row
    columns: tuple[str, ...]
    schema: pa.Schema  # of the input's first rows: later files are cast to it
    dictionaries: tuple[str, ...] = ()  # text columns read as dictionaries


@dataclass(frozen=True)
class _Group:
    path: str
    index: int
    start: int  # the group's first row, in the input
    rows: int

    @property
    def end(self) -> int:
        return self.start + self.rows


def plan_chunks(
    source: Source, columns: list[str], chunk_rows: int, dictionaries: tuple[str, ...] = ()
) -> Iterator[ChunkPlace] | None:
    """The input's chunks as places to read, or None when the job's process must read them
    (not local Parquet, no rows, or a row group larger than a chunk); `dictionaries` as
    `sources.read_chunks` reads them."""
    if source.fmt != "parquet" or any(f.startswith("s3://") for f in source.files):
        return None
    groups: list[_Group] = []
    for path in source.files:
        meta = _parquet(path, dictionaries).metadata
        for index in range(meta.num_row_groups):
            rows = meta.row_group(index).num_rows
            if rows:
                start = groups[-1].end if groups else 0
                groups.append(_Group(path, index, start, rows))
    if not groups or any(g.rows > chunk_rows for g in groups):
        return None
    first = groups[0]
    batches = _parquet(first.path, dictionaries).iter_batches(
        1, row_groups=[first.index], columns=columns
    )
    schema = next(batches).schema  # as `read_chunks` types every chunk: by the first rows
    return _places(groups, tuple(columns), chunk_rows, schema, dictionaries)


def _places(
    groups: list[_Group],
    columns: tuple[str, ...],
    chunk_rows: int,
    schema: pa.Schema,
    dictionaries: tuple[str, ...],
) -> Iterator[ChunkPlace]:
    total = groups[-1].end
    g = 0
    for chunk, start in enumerate(range(0, total, chunk_rows)):
        end = min(start + chunk_rows, total)
        while groups[g].end <= start:
            g += 1
        last = g
        while groups[last].end < end:
            last += 1
        pieces: list[tuple[str, list[int]]] = []
        for group in groups[g : last + 1]:
            if pieces and pieces[-1][0] == group.path:
                pieces[-1][1].append(group.index)
            else:
                pieces.append((group.path, [group.index]))
        yield ChunkPlace(
            chunk,
            end - start,
            tuple((path, tuple(indexes)) for path, indexes in pieces),
            start - groups[g].start,
            columns,
            schema,
            dictionaries,
        )


def read_chunk(place: ChunkPlace) -> pa.Table:
    """The chunk's rows, read from its row groups."""
    batches: list[pa.RecordBatch] = []
    skip, need = place.skip, place.rows
    for path, indexes in place.pieces:
        reader = _parquet(path, place.dictionaries).iter_batches(
            place.rows + skip, row_groups=list(indexes), columns=list(place.columns)
        )
        for batch in reader:
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip, need)
            skip, need = 0, need - batch.num_rows
            if batch.schema != place.schema:
                batch = cast_to(batch, place.schema)
            batches.append(batch)
            if not need:
                return pa.Table.from_batches(batches, place.schema)
    return pa.Table.from_batches(batches, place.schema)


def _parquet(path: str, dictionaries: tuple[str, ...]) -> pq.ParquetFile:
    """A file's reader, its footer parsed once per process (a worker reads many chunks) for
    as long as the file is not replaced."""
    stat = os.stat(path)
    return _opened(path, stat.st_size, stat.st_mtime_ns, dictionaries)


@functools.lru_cache(maxsize=8)
def _opened(path: str, size: int, mtime_ns: int, dictionaries: tuple[str, ...]) -> pq.ParquetFile:
    return parquet_file(path, dictionaries)
