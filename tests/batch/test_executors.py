"""Where chunks run: one worker scores in the job's own process; text stays in Arrow."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from pointsman.batch import JobBook, JobSpec, create_job, run_job
from pointsman.batch import run as run_module
from pointsman.batch.executors import (
    InProcessExecutor,
    LocalExecutor,
    WorkerSetup,
    local_executor,
)
from pointsman.batch.frames import check_chunk
from pointsman.batch.run import setup_of, version_for
from pointsman.batch.sources import open_source
from pointsman.demo.churn import TARGET, make_data
from pointsman.errors import ChunkFailed
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.validation.checks import ProfileChecks
from tests.batch.test_jobs import numbers, register_slow


def register_churn(project: Project, churn_files: list[tuple[Path, Path]]) -> None:
    model, data = churn_files[0]
    project.registry.register(
        Submission(model="churn", path=model, training_data=data, target=TARGET, user="test")
    )


def churn_table(rows: int) -> pd.DataFrame:
    frame = make_data(rows, 21).drop(columns=[TARGET])
    frame.loc[5, "plan"] = frame.loc[5, "plan"].upper()  # a near miss, flagged
    return frame


def test_one_worker_scores_in_the_jobs_own_process(
    project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    register_churn(project, churn_files)
    frame = churn_table(900)
    frame.to_parquet(tmp_path / "in.parquet")
    spec = JobSpec(
        str(tmp_path / "in.parquet"),
        str(tmp_path / "out.parquet"),
        str(tmp_path / "rejects.parquet"),
        chunk_rows=400,
        workers=1,
    )
    job = create_job(project, "churn", None, spec, "test")
    threads = threadpool_info()
    done = run_job(project, job.id)
    assert done.state == "succeeded" and done.rows_done == 900
    assert multiprocessing.active_children() == []  # no worker, no forkserver
    assert threadpool_info() == threads  # one BLAS thread while scoring only
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = joblib.load(churn_files[0][0])
    good = frame.drop(index=[5])
    expected = model.predict_proba(good)
    scored = out[out["row"] != 5]
    assert np.allclose(scored[[c for c in out.columns if c.startswith("p_")]], expected)
    assert out.loc[out["row"] == 5, "status"].tolist() == ["flagged"]


def test_one_worker_or_many_choose_the_executor(project: Project, tmp_path: Path) -> None:
    register_slow(project, tmp_path)
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"))
    job = create_job(project, "slow", None, spec, "test")
    version = version_for(project, "slow", None)
    setup = setup_of(project, job, version, open_source(spec.input))
    assert isinstance(local_executor(setup, 1, tmp_path), InProcessExecutor)
    assert isinstance(local_executor(setup, 2, tmp_path), LocalExecutor)


def test_an_artifact_that_fails_its_check_fails_the_in_process_chunk_saying_so(
    project: Project, tmp_path: Path
) -> None:
    register_slow(project, tmp_path)
    version = project.registry.get_version("slow", "1")
    stored = project.registry.artifacts.path_of(version.artifact)
    stored.write_text(stored.read_text() + "\n# edited\n")
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(
        str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"), workers=1
    )
    job = create_job(project, "slow", None, spec, "test")
    with pytest.raises(ChunkFailed, match="changed after registration"):
        run_job(project, job.id)
    assert JobBook(project.engine).get(job.id).state == "failed"


@pytest.mark.parametrize("nulls", [False, True])
def test_arrow_text_gives_the_frame_and_findings_of_numpy_text(
    project: Project, churn_files: list[tuple[Path, Path]], nulls: bool
) -> None:
    register_churn(project, churn_files)
    version = version_for(project, "churn", None)
    frame = churn_table(300)
    frame.loc[7, "region"] = "Atlantis"  # unknown category
    if nulls:
        frame.loc[9, "contract"] = None  # refused: text with nulls stays numpy
    table = pa.Table.from_pandas(frame, preserve_index=False)
    numpy_text = check_chunk(version.signature, table, False, arrow_strings=False)
    arrow_text = check_chunk(version.signature, table, False, arrow_strings=True)
    assert numpy_text.refused.keys() == arrow_text.refused.keys() == ({9} if nulls else set())
    assert np.array_equal(numpy_text.rows, arrow_text.rows)
    for name, column in numpy_text.frame.columns.items():
        assert list(column) == list(arrow_text.frame.columns[name])
    contract = arrow_text.frame.columns["contract"]
    assert isinstance(contract, np.ndarray) == nulls or pd.__version__ < "3"
    checks = ProfileChecks.build(version.signature, version.profile, 0.1)
    assert checks.check(numpy_text.frame) == checks.check(arrow_text.frame)
    assert {f.rule for f in checks.check(arrow_text.frame)} >= {
        "near_miss_category",
        "unknown_category",
    }


@pytest.mark.parametrize("null_in", ["region", "contract"])
def test_dictionary_text_gives_the_frame_and_findings_of_plain_text(
    project: Project, churn_files: list[tuple[Path, Path]], null_in: str
) -> None:
    register_churn(project, churn_files)
    version = version_for(project, "churn", None)
    frame = churn_table(3000)  # above HASHED_ROWS: categories looked up in C
    frame.loc[7, "region"] = "Atlantis"  # unknown category
    frame.loc[2500, "region"] = "Atlantis"
    frame.loc[9, null_in] = None  # refused: the dictionary is taken over the kept rows
    plain = pa.Table.from_pandas(frame, preserve_index=False)
    text = [f.name for f in plain.schema if f.type == pa.string()]
    encoded = pa.table(
        {
            name: plain.column(name).dictionary_encode() if name in text else plain.column(name)
            for name in plain.column_names
        }
    )
    checks = ProfileChecks.build(version.signature, version.profile, 0.1)
    for arrow_strings in (False, True):
        want = check_chunk(version.signature, plain, False, arrow_strings)
        got = check_chunk(version.signature, encoded, False, arrow_strings)
        assert set(got.dictionaries) == set(text) and want.dictionaries == {}
        assert want.refused == got.refused and 9 in got.refused
        assert np.array_equal(want.rows, got.rows)
        for name, column in want.frame.columns.items():
            assert list(column) == list(got.frame.columns[name])
        assert all(len(d) == got.frame.n_rows for d in got.dictionaries.values())
        findings = checks.check(want.frame)
        assert checks.check(got.frame, got.dictionaries) == findings
        unknown = [(f.row, f.value) for f in findings if f.rule == "unknown_category"]
        assert unknown == [(7, "Atlantis"), (2499, "Atlantis")]  # frame rows: 9 is refused
        assert {f.rule for f in findings} >= {"near_miss_category", "unknown_category"}


def test_in_process_setup_is_what_a_worker_gets(project: Project, tmp_path: Path) -> None:
    register_slow(project, tmp_path)
    numbers(4).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(
        str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"), workers=1
    )
    job = create_job(project, "slow", None, spec, "test")
    setup = setup_of(project, job, version_for(project, "slow", None), open_source(spec.input))
    assert isinstance(setup, WorkerSetup)
    with InProcessExecutor(setup, tmp_path / "parts") as executor:
        result = executor.submit(0, 0, pa.Table.from_pandas(numbers(4))).result()
    assert result.rows == 4 and (tmp_path / "parts" / "out-000000.arrow").exists()


def test_workers_read_their_chunks_from_row_groups_that_fit_a_chunk(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_slow(project, tmp_path)
    numbers(1000).to_parquet(tmp_path / "in.parquet", row_group_size=64)  # 100-row chunks
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}.parquet"
        spec = JobSpec(
            str(tmp_path / "in.parquet"),
            str(out),
            str(tmp_path / f"rejects-{workers}.parquet"),
            keep=("id",),
            chunk_rows=100,
            workers=workers,
        )
        job = create_job(project, "slow", None, spec, "test")
        if workers == 2:  # the job's process hands out places, never rows
            monkeypatch.setattr(run_module, "read_chunks", refuse_to_read)
        assert run_job(project, job.id).state == "succeeded"
        outputs.append(pd.read_parquet(out).drop(columns=["job_id"]))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    assert outputs[1]["row"].tolist() == list(range(1000))


def refuse_to_read(*args: object) -> None:
    raise AssertionError("the job's process read the input's rows")
