"""Chunks a worker reads from the row groups are the chunks the job's process would read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pointsman.batch.rowgroups import plan_chunks, read_chunk
from pointsman.batch.sources import open_source, read_chunks
from tests.batch.test_jobs import numbers


def write(path: Path, first: int, rows: int, group_rows: int, id_type: pa.DataType) -> None:
    frame = numbers(rows, seed=first)
    frame["id"] = frame["id"] + first * 7
    frame["kind"] = np.where(frame["a"] > 0, "up", "down")  # text as pandas writes it
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "id", table.column("id").cast(id_type))
    pq.write_table(table, path, row_group_size=group_rows)


@pytest.mark.parametrize("dictionaries", [(), ("kind", "a")])
@pytest.mark.parametrize(
    ("group_rows", "chunk_rows"),
    [(100, 100), (37, 100), (100, 37), (1, 7), (250, 250)],
)
def test_each_chunk_read_from_its_row_groups_is_the_chunk_read_in_order(
    tmp_path: Path, group_rows: int, chunk_rows: int, dictionaries: tuple[str, ...]
) -> None:
    # Three files (one empty, the last typing `id` as int32, cast to the first's int64).
    write(tmp_path / "a.parquet", 0, 430, group_rows, pa.int64())
    write(tmp_path / "b.parquet", 430, 0, group_rows, pa.int64())
    write(tmp_path / "c.parquet", 430, 321, group_rows, pa.int32())
    source = open_source(str(tmp_path))
    columns = ["c", "id", "kind", "a"]
    places = plan_chunks(source, columns, chunk_rows, dictionaries)
    expected = list(read_chunks(source, columns, chunk_rows, dictionaries))
    plain = list(read_chunks(source, columns, chunk_rows))
    for wanted, text in zip(expected, plain, strict=True):  # only the text as a dictionary
        kind = wanted.column("kind")
        assert pa.types.is_dictionary(kind.type) == bool(dictionaries)
        assert wanted.column("a").equals(text.column("a"))
        assert kind.to_pylist() == text.column("kind").to_pylist()
    if group_rows > chunk_rows:  # a row group larger than a chunk: read by the job
        assert places is None
        return
    assert places is not None
    read = [(place.chunk, read_chunk(place)) for place in places]
    assert [chunk for chunk, _ in read] == list(range(len(expected)))
    for (_, table), wanted in zip(read, expected, strict=True):
        assert table.schema == wanted.schema
        assert table.equals(wanted)


def test_inputs_a_worker_cannot_read_by_row_group_are_read_by_the_job(tmp_path: Path) -> None:
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    assert plan_chunks(open_source(str(tmp_path / "in.csv")), ["a"], 5) is None
    numbers(0).to_parquet(tmp_path / "empty.parquet")  # an empty input: one empty chunk
    assert plan_chunks(open_source(str(tmp_path / "empty.parquet")), ["a"], 5) is None
