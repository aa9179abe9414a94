"""The job's constant columns are added when the output is assembled, not kept in each part:
the output is what the parts held when they had them (a resume over an older pointsman's
parts included)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pointsman.batch.score import write_part
from pointsman.batch.sinks import output_constants, rejects_constants, write_parts

COLUMNS = ["row", "plan", "prediction", "p_0", "p_1", "version", "status", "job_id"]


def parts(folder: Path) -> list[Path]:
    """Chunk 0 as an older pointsman wrote it (constants in the part), chunk 1 with a
    flagged row (its status only), chunk 2 all "ok" (no constant at all)."""
    old = pa.table(
        {
            "row": [0, 1],
            "plan": ["a", "b"],
            "prediction": [0, 1],
            "p_0": [0.9, 0.2],
            "p_1": [0.1, 0.8],
            "version": pa.array([3, 3], pa.int64()),
            "status": ["ok", "flagged"],
            "job_id": ["j1", "j1"],
        }
    )
    flagged = pa.table(
        {
            "row": [2, 3],
            "plan": ["c", "d"],
            "prediction": [1, 1],
            "p_0": [0.3, 0.4],
            "p_1": [0.7, 0.6],
            "status": ["flagged", "ok"],
        }
    )
    plain = pa.table({"row": [4], "plan": ["e"], "prediction": [0], "p_0": [0.6], "p_1": [0.4]})
    paths = [folder / f"out-{i:06d}.arrow" for i in range(3)]
    for table, path in zip([old, flagged, plain], paths, strict=True):
        write_part(table, path)
    return paths


@pytest.mark.parametrize("output", ["out.parquet", "out.csv", "folder"])
def test_constants_are_added_last_with_the_values_the_parts_once_held(
    tmp_path: Path, output: str
) -> None:
    spec = str(tmp_path / output)
    write_parts(spec, parts(tmp_path), "j1", tmp_path, output_constants(3, "j1"))
    if output == "folder":
        files = sorted((tmp_path / output).glob("part-*.parquet"))
        assert len(files) == 3
        assert all(pq.read_schema(f).names == COLUMNS for f in files)
        table = pa.concat_tables([pq.read_table(f) for f in files])
    elif output.endswith(".csv"):
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(spec)
    else:
        table = pq.read_table(spec)
    assert table.column_names == COLUMNS
    assert table.column("row").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("version").to_pylist() == [3] * 5
    assert table.column("status").to_pylist() == ["ok", "flagged", "flagged", "ok", "ok"]
    assert table.column("job_id").to_pylist() == ["j1"] * 5
    assert table.schema.field("version").type == pa.int64()


def test_rejects_get_version_and_job_id_after_the_findings(tmp_path: Path) -> None:
    rejected = pa.table({"row": [7], "plan": ["x"], "findings": ['[{"rule": "null"}]']})
    write_part(rejected, tmp_path / "rej-000000.arrow")
    spec = str(tmp_path / "rejects.parquet")
    write_parts(spec, [tmp_path / "rej-000000.arrow"], "j1", tmp_path, rejects_constants(3, "j1"))
    table = pq.read_table(spec)
    assert table.column_names == ["row", "plan", "findings", "version", "job_id"]
    assert table.to_pylist() == [
        {"row": 7, "plan": "x", "findings": '[{"rule": "null"}]', "version": 3, "job_id": "j1"}
    ]
